"""People and their second factor: sign-in and its throttle, enrolment, the fresh-code check
that guards every approval."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_backends, get_user_model
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import audit_event_record

from .utils import client_ip


class TotpRefused(Exception):
    """The code was wrong, already used, or the device is throttled. Message is user-facing."""


class SigninThrottled(Exception):
    """Too many failed sign-ins for this account or from this address. Message is user-facing."""


# --- sign-in throttle -------------------------------------------------------------------------
#
# Failures are counted in the cache (Redis in production, shared by every web process) per
# account and per client address, over a window that starts at the first failure. Reaching a
# limit locks that account or address for a while: every attempt is refused before any
# password or code is checked, so guessing stops, and the right password cannot be told apart.


@dataclass(frozen=True)
class _Limits:
    account: int
    address: int
    window: int
    lock: int


def _limits() -> _Limits:
    # Read on every call so tests and deployments can tune them without a restart of the module.
    return _Limits(
        account=getattr(settings, "COUNTERSIGN_SIGNIN_ACCOUNT_FAILURES", 10),
        address=getattr(settings, "COUNTERSIGN_SIGNIN_ADDRESS_FAILURES", 30),
        window=getattr(settings, "COUNTERSIGN_SIGNIN_WINDOW_SECONDS", 15 * 60),
        lock=getattr(settings, "COUNTERSIGN_SIGNIN_LOCK_SECONDS", 15 * 60),
    )


def _throttle_keys(*, username: str, ip: str | None) -> dict[str, str]:
    # Usernames are hashed: the cache (and its keys) may be readable by more people than the app.
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()
    return {"account": f"signin:account:{account}", "address": f"signin:address:{ip or '-'}"}


def signin_throttle_check(*, username: str, ip: str | None) -> None:
    """Raise SigninThrottled while the account or the address is locked."""
    now = time.time()
    keys = _throttle_keys(username=username, ip=ip)
    until = max(
        (cache.get(f"{key}:locked") or 0.0 for key in keys.values()),
        default=0.0,
    )
    if until > now:
        minutes = max(1, math.ceil((until - now) / 60))
        unit = "minute" if minutes == 1 else "minutes"
        raise SigninThrottled(
            f"Too many failed sign-ins. Try again in {minutes} {unit}, "
            "or ask a user admin if you are locked out."
        )


def signin_failure_record(
    *, username: str, ip: str | None, step: str, request: HttpRequest | None = None
) -> None:
    """Count one failed password or code, lock at the limit, and audit the burst.

    A burst costs the chain at most one ``login.failed`` event per address and window (sent
    through Django's ``user_login_failed`` signal, which the audit app records) plus one
    ``auth.signin_throttled`` event, with the count, when a lock starts. Strangers cannot
    flood the chain; the lock event and the next good sign-in carry the numbers.
    """
    limits = _limits()
    keys = _throttle_keys(username=username, ip=ip)
    counts = {}
    for scope, key in keys.items():
        cache.add(f"{key}:failures", 0, timeout=limits.window)
        try:
            counts[scope] = cache.incr(f"{key}:failures")
        except ValueError:  # the window ended between add and incr
            cache.set(f"{key}:failures", 1, timeout=limits.window)
            counts[scope] = 1
    if counts["address"] == 1:
        user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
    locked_until = time.time() + limits.lock
    for scope, limit in (("account", limits.account), ("address", limits.address)):
        if counts[scope] != limit:
            continue
        cache.set(f"{keys[scope]}:locked", locked_until, timeout=limits.lock)
        known = get_user_model().objects.filter(username=username).first()
        with transaction.atomic():
            audit_event_record(
                action="auth.signin_throttled",
                actor_name=username[:150] or "(blank)",
                ip=ip,
                target=known,
                message=f"{limit} failed sign-ins ({step}) for this {scope}: locked for "
                f"{math.ceil(limits.lock / 60)} minutes",
                data={
                    "scope": scope,
                    "failures": limit,
                    "username": username[:150],
                    "known_user": known is not None,
                    "step": step,
                    "window_seconds": limits.window,
                    "locked_seconds": limits.lock,
                },
            )


def signin_failures_clear(*, username: str) -> int:
    """After a complete sign-in: forget the account's failures. Returns how many there were."""
    key = _throttle_keys(username=username, ip=None)["account"]
    failures = cache.get(f"{key}:failures") or 0
    cache.delete(f"{key}:failures")
    return failures


def signin_password_check(*, request: HttpRequest, username: str, password: str) -> Any | None:
    """The password step: the user, or None for a wrong username or password.

    Raises SigninThrottled while locked. Asks the authentication backends directly rather
    than through ``django.contrib.auth.authenticate``, which would announce every failure
    (and the audit app would record each one): ``signin_failure_record`` announces a burst once.
    """
    ip = client_ip(request)
    signin_throttle_check(username=username, ip=ip)
    for backend in get_backends():
        try:
            user = backend.authenticate(request, username=username, password=password)
        except PermissionDenied:
            break
        if user is not None:
            user.backend = f"{backend.__module__}.{backend.__class__.__name__}"
            return user
    signin_failure_record(username=username, ip=ip, step="password", request=request)
    return None


def signin_code_verify(
    *, user: Any, code: str, ip: str | None, request: HttpRequest | None = None
) -> TOTPDevice:
    """The second sign-in step: a fresh TOTP code, throttled per account and address like the
    password. Returns the device to mark the session verified with. Call outside ``atomic()``."""
    username = user.get_username()
    signin_throttle_check(username=username, ip=ip)
    try:
        totp_code_verify(user=user, code=code, ip=ip, purpose="login")
    except TotpRefused:
        signin_failure_record(username=username, ip=ip, step="totp", request=request)
        raise
    device = totp_device_for(user)
    failures = signin_failures_clear(username=username)
    with transaction.atomic():
        audit_event_record(
            action="auth.signed_in",
            actor=user,
            ip=ip,
            target=user,
            message="Signed in with password and TOTP"
            + (f" after {failures} failed attempt(s)" if failures else ""),
            data={"failures_before": failures, "second_factor": "totp"},
        )
    return device


def totp_device_for(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def totp_code_verify(*, user: Any, code: str, ip: str | None = None, purpose: str) -> int:
    """Check a fresh TOTP code and consume it. Returns the time step the code proved.

    Runs in its own transaction and commits before any business change starts, so a later
    rollback cannot undo the throttle or the replay mark. Call it outside ``atomic()``.
    """
    code = (code or "").strip()
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=True)
            .order_by("id")
            .first()
        )
        if device is None:
            raise TotpRefused("You have no authenticator enrolled.")
        allowed, _ = device.verify_is_allowed()
        if not allowed:
            reason = "Too many wrong codes. Wait a moment before trying again."
        elif not code.isdigit() or len(code) != device.digits:
            device.throttle_increment()
            reason = f"Enter the {device.digits}-digit code from your authenticator."
        elif device.verify_token(code):
            return device.last_t
        else:
            # verify_token refuses a code whose step is not newer than the last one used.
            reason = "That code is wrong or was already used. Wait for a new code."
        audit_event_record(
            action="totp.refused",
            actor=user,
            ip=ip,
            target=user,
            message=f"TOTP refused for {purpose}: {reason}",
            data={"purpose": purpose, "throttled": not allowed},
        )
    raise TotpRefused(reason)


def totp_device_start_enrolment(*, user: Any) -> TOTPDevice:
    """An unconfirmed device for ``user`` (reused across page loads until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def totp_device_confirm(*, user: Any, code: str, ip: str | None = None) -> TOTPDevice:
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        if device is None:
            raise TotpRefused("Start enrolment again.")
        # verify_token records a failure (throttle) itself: raise only after this commits.
        verified = device.verify_token((code or "").strip())
        if verified:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            audit_event_record(action="totp.enrolled", actor=user, ip=ip, target=user)
    if not verified:
        raise TotpRefused("That code does not match. Check the time on your phone.")
    return device


def role_groups_ensure() -> None:
    """Create the four role groups with exactly the permissions of accounts.roles."""
    from django.contrib.auth.models import Group, Permission

    from .roles import ROLE_PERMISSIONS

    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                wanted.append(perm)
        group.permissions.set(wanted)
