"""Every page needs password plus TOTP; users without a device are sent to enrolment first."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import get_script_prefix, get_urlconf, reverse
from django_otp import user_has_device

# Paths reachable before the second factor: the login steps themselves, static files, health,
# and metrics (which admits only its configured addresses or bearer token, config.metrics).
OPEN_PREFIXES = ("/static/", "/healthz", "/metrics")


@functools.cache
def _open_paths(urlconf: str, script_prefix: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(exact paths, path prefixes) reachable before the second factor, per URLconf and script
    prefix (``reverse`` reads the latter): resolved once, not on every request."""
    exact = frozenset(
        reverse(name, urlconf=urlconf)
        for name in ("accounts:login", "accounts:verify", "accounts:enrol", "accounts:logout")
    )
    # An enrolment link is opened by someone who cannot sign in yet (accounts:enrol_link).
    return exact, (*OPEN_PREFIXES, reverse("accounts:enrol", urlconf=urlconf))


class RequireVerifiedUserMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        exact, prefixes = _open_paths(get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())
        if path in exact or path.startswith(prefixes):
            return self.get_response(request)
        user = request.user
        if not user.is_authenticated:
            return redirect(f"{reverse('accounts:login')}?next={request.get_full_path()}")
        if not user.is_verified():
            target = "accounts:verify" if user_has_device(user) else "accounts:enrol"
            response = redirect(target)
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=204, headers={"HX-Redirect": reverse(target)})
            return response
        return self.get_response(request)
