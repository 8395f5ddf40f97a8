"""Every page needs password plus TOTP; users without a device are sent to enrolment first."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import get_script_prefix, get_urlconf, reverse
from django_otp import DEVICE_ID_SESSION_KEY, user_has_device
from django_otp.middleware import OTPMiddleware
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

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


class SessionDeviceMiddleware(OTPMiddleware):
    """django-otp's middleware (``request.user.otp_device``, ``is_verified()``), taking the
    session's authenticator app from the confirmed ids its user was loaded with
    (accounts.backends) instead of a query of its own. A recovery code's device, or a user
    loaded some other way, is looked up as django-otp does."""

    def _verify_user_sync(self, request: HttpRequest, user: Any) -> Any:
        self._init_user_fields(user)
        if user.is_authenticated:
            persistent_id = request.session.get(DEVICE_ID_SESSION_KEY)
            device = self._session_device(user, persistent_id) if persistent_id else None
            user.otp_device = self._finalize_device(request, user, device)
        return user

    def _session_device(self, user: Any, persistent_id: str) -> Device | None:
        confirmed = getattr(user, "confirmed_totp_ids", None)
        label, _, pk = persistent_id.rpartition("/")
        if confirmed is None or label != TOTPDevice.model_label() or not pk.isdigit():
            return self._device_from_persistent_id(persistent_id)
        if int(pk) not in confirmed:
            return None
        # The rest of the device's fields load if something reads them; a page never does.
        return TOTPDevice.from_db(None, ["id", "user_id", "confirmed"], [int(pk), user.pk, True])
