"""Every page needs password plus TOTP; users without a device are sent to enrolment first."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_otp import user_has_device

# Paths reachable before the second factor: the login steps themselves, static files, health,
# and metrics (which admits only its configured addresses or bearer token, config.metrics).
OPEN_PREFIXES = ("/static/", "/healthz", "/metrics")


class RequireVerifiedUserMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._open: tuple[set[str], str] | None = None

    def _open_paths(self) -> tuple[set[str], str]:
        # Reversed on the first request, not per request: five reverse() calls cost more than
        # the rest of this check.
        if self._open is None:
            names = ("accounts:login", "accounts:verify", "accounts:enrol", "accounts:logout")
            # An enrolment link is opened by someone who cannot sign in yet (enrol_link).
            self._open = ({reverse(name) for name in names}, reverse("accounts:enrol"))
        return self._open

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        open_paths, enrol_links = self._open_paths()
        if path in open_paths or path.startswith((*OPEN_PREFIXES, enrol_links)):
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
