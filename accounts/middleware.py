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

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        open_paths = {
            reverse("accounts:login"),
            reverse("accounts:verify"),
            reverse("accounts:enrol"),
            reverse("accounts:logout"),
        }
        # An enrolment link is opened by someone who cannot sign in yet (accounts:enrol_link).
        enrol_links = reverse("accounts:enrol")
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
