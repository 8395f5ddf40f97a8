"""Second-factor services: enrolment and the fresh-code check that guards every approval."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import audit_event_record


class TotpRefused(Exception):
    """The code was wrong, already used, or the device is throttled. Message is user-facing."""


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
