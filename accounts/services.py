"""People and their second factor: sign-in and its throttle, the fresh-code check that guards
every approval, enrolment by invitation, recovery codes, and changes to who may do what under
four eyes.

A state change locks its row, re-checks it, changes it and writes its audit event in one
transaction. TOTP codes are checked (and consumed) in their own committed transaction first.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_backends, get_user_model, password_validation
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from audit.actions import AuditAction
from audit.services import audit_event_record
from core.errors import ApplicationError

from . import rules, selectors
from .models import AccessChange, ChangeKind, ChangeState, Invitation
from .roles import ROLE_PERMISSIONS, ROLES, role_label
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

    A burst of wrong passwords costs the chain at most one ``login.failed`` event per address
    and window (sent through Django's ``user_login_failed`` signal, which the audit app
    records) plus one ``auth.signin_throttled`` event, with the count, when a lock starts.
    Strangers cannot flood the chain; the lock event and the next good sign-in carry the
    numbers. (A wrong code comes from someone who knew the password: totp_code_verify records
    each, and the lock bounds them.)
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
    if step == "password" and counts["address"] == 1:
        user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
    locked_until = time.time() + limits.lock
    for scope, limit in (("account", limits.account), ("address", limits.address)):
        if counts[scope] != limit:
            continue
        cache.set(f"{keys[scope]}:locked", locked_until, timeout=limits.lock)
        known = get_user_model().objects.filter(username=username).first()
        with transaction.atomic():
            audit_event_record(
                action=AuditAction.AUTH_SIGNIN_THROTTLED,
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
) -> TOTPDevice | StaticDevice:
    """The second sign-in step: a fresh TOTP code, or one of the person's recovery codes,
    throttled per account and address like the password. Returns the device to mark the
    session verified with. Call outside ``atomic()``."""
    username = user.get_username()
    signin_throttle_check(username=username, ip=ip)
    code = (code or "").strip()
    # A recovery code has its own length; anything else is taken as a TOTP code, so a typo
    # gets the authenticator's message.
    by_totp = len(recovery_code_normalise(code)) != RECOVERY_CODE_LENGTH
    try:
        if by_totp:
            totp_code_verify(user=user, code=code, ip=ip, purpose="login")
            device: TOTPDevice | StaticDevice | None = totp_device_for(user)
        else:
            device = recovery_code_use(user=user, code=code, ip=ip)
    except TotpRefused:
        signin_failure_record(username=username, ip=ip, step="totp", request=request)
        raise
    failures = signin_failures_clear(username=username)
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.AUTH_SIGNED_IN,
            actor=user,
            ip=ip,
            target=user,
            message=f"Signed in with password and {'TOTP' if by_totp else 'a recovery code'}"
            + (f" after {failures} failed attempt(s)" if failures else ""),
            data={
                "failures_before": failures,
                "second_factor": "totp" if by_totp else "recovery_code",
            },
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
            action=AuditAction.TOTP_REFUSED,
            actor=user,
            ip=ip,
            target=user,
            message=f"TOTP refused for {purpose}: {reason}",
            data={"purpose": purpose, "throttled": not allowed},
        )
    raise TotpRefused(reason)


def role_groups_ensure() -> None:
    """Create the role groups with exactly the permissions of accounts.roles."""
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


# --- people: errors and helpers ---------------------------------------------------------------


class PeopleError(ApplicationError):
    """A refusal of a person, role or authenticator change, or of an enrolment."""


RECOVERY_CODE_COUNT = 10
# django-otp's StaticToken.random_token(): 5 random bytes in lower-case base32.
RECOVERY_CODE_LENGTH = 8
# Wrong codes or passwords on an enrolment link before the link is voided.
INVITATION_MAX_FAILURES = 5


def _invitation_lifetime() -> timedelta:
    return timedelta(hours=getattr(settings, "COUNTERSIGN_INVITATION_HOURS", 72))


def _require_user_admin(user: Any) -> None:
    if not rules.may_manage_people(user):
        raise PermissionDenied("Only user admins manage people and roles.")


def _person(user_id: Any) -> Any:
    try:
        return get_user_model().objects.get(pk=int(user_id))
    except (TypeError, ValueError, get_user_model().DoesNotExist):
        raise PeopleError("No such person.") from None


def _lock_person(user_id: int) -> Any:
    return get_user_model().objects.select_for_update().get(pk=user_id)


def _invitations_void(*, user: Any, now: Any) -> int:
    return Invitation.objects.filter(
        user=user, used_at__isnull=True, voided_at__isnull=True
    ).update(voided_at=now)


def _issue_link(*, admin: Any, user: Any, ip: str | None, now: Any) -> str:
    """Caller holds the transaction. Voids earlier open links; returns the new token."""
    _invitations_void(user=user, now=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        user=user,
        token_hash=selectors.token_hash(token),
        issued_by=admin,
        issued_at=now,
        expires_at=now + _invitation_lifetime(),
    )
    audit_event_record(
        action=AuditAction.PEOPLE_ENROLMENT_LINK_ISSUED,
        actor=admin,
        ip=ip,
        target=user,
        message=f"Enrolment link for {user.get_username()}, valid until "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC (shown once to {admin.get_username()})",
        data={"invitation": invitation.pk, "expires_at": invitation.expires_at},
    )
    return token


# --- people: invitation and enrolment ---------------------------------------------------------


def person_invite(
    *, admin: Any, username: str, email: str, ip: str | None = None
) -> tuple[Any, str]:
    """A user admin invites a person: an account with no password, no roles and no device, and
    a single-use enrolment link (the token is returned once and never stored). Roles come only
    through proposals a second user admin approves."""
    _require_user_admin(admin)
    username = (username or "").strip()
    email = (email or "").strip()
    if not username or len(username) > 150:
        raise PeopleError("Give a username of up to 150 characters.", field="username")
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise PeopleError(
            "A username may contain letters, digits and @ . + - _ only.", field="username"
        ) from None
    try:
        validate_email(email)
    except ValidationError:
        raise PeopleError("Enter a valid email address.", field="email") from None
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise PeopleError("Someone already has this username.", field="username")
    now = timezone.now()
    try:
        with transaction.atomic():
            user = User(username=username, email=email)
            user.set_unusable_password()
            user.save()
            audit_event_record(
                action=AuditAction.PEOPLE_INVITED,
                actor=admin,
                ip=ip,
                target=user,
                message=f"Invited {username} <{email}>",
                data={"username": username, "email": email},
            )
            token = _issue_link(admin=admin, user=user, ip=ip, now=now)
    except IntegrityError:
        raise PeopleError("Someone already has this username.", field="username") from None
    return user, token


def enrolment_link_issue(*, admin: Any, user_id: Any, ip: str | None = None) -> str:
    """A new single-use link for someone without an authenticator (after a device reset, or when
    the first link expired). Earlier open links stop working."""
    _require_user_admin(admin)
    current = _person(user_id)
    with transaction.atomic():
        user = _lock_person(current.pk)
        has_device = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        if not rules.may_issue_enrolment_link(admin, user, has_device=has_device):
            if not user.is_active:
                raise PeopleError(f"{user.get_username()} is deactivated.")
            raise PeopleError(
                f"{user.get_username()} already has an authenticator: propose a device reset."
            )
        return _issue_link(admin=admin, user=user, ip=ip, now=timezone.now())


def enrolment_secret_new() -> str:
    """A fresh TOTP key (hex) for one session on an enrolment link; stored nowhere else."""
    return random_hex(20)


def enrolment_config_url(*, user: Any, secret: str) -> str:
    """The otpauth:// URL an authenticator app scans, for a key not yet saved as a device."""
    return TOTPDevice(user=user, name="authenticator", key=secret).config_url


@dataclass(frozen=True)
class Enrolled:
    user: Any
    device: TOTPDevice
    recovery_codes: list[str]


class _WrongCode(Exception):
    pass


def _device_from_code(*, user: Any, secret: str, code: str) -> TOTPDevice | None:
    """Save ``secret`` as ``user``'s confirmed device if ``code`` proves it, else save nothing.

    django-otp's own check is used (drift, replay mark), on a device not yet in the database: it
    saves the device when the code is right, and would save a throttled one when it is wrong,
    hence the savepoint. Caller holds the transaction.
    """
    device = TOTPDevice(user=user, name="authenticator", key=secret, confirmed=True)
    try:
        with transaction.atomic():
            if not (code.isdigit() and device.verify_token(code)):
                raise _WrongCode
    except _WrongCode:
        return None
    return device


def _recovery_codes_replace(*, user: Any) -> list[str]:
    """Caller holds the transaction. New single-use codes; the old ones stop working."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="recovery codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def enrolment_confirm(
    *,
    token: str,
    secret: str,
    code: str,
    password: str,
    password_again: str = "",
    ip: str | None = None,
) -> Enrolled:
    """The person on the link proves the secret shown to their session with a code.

    A new person chooses their password here (nobody else ever knew it); someone whose device
    was reset types their current password, so the link alone is not enough. On success the
    device is saved, the link is used up and recovery codes are made (returned once). Wrong
    codes or passwords count against the link, and are committed even though this raises.
    """
    code = (code or "").strip()
    failure: PeopleError | None = None
    with transaction.atomic():
        found = selectors.invitation_open_get(token=token)
        if found is None:
            raise PeopleError("This enrolment link is not valid any more. Ask a user admin.")
        invitation = Invitation.objects.select_for_update().get(pk=found.pk)
        user = _lock_person(invitation.user_id)
        if invitation.used_at is not None or invitation.voided_at is not None:
            raise PeopleError("This enrolment link is not valid any more. Ask a user admin.")
        new_person = not user.has_usable_password()
        if new_person:
            if password != password_again:
                raise PeopleError("The two passwords differ.", field="password_again")
            try:
                password_validation.validate_password(password, user)
            except ValidationError as exc:
                raise PeopleError(" ".join(exc.messages), field="password") from None
        elif not user.check_password(password):
            failure = PeopleError("That is not your password.", field="password")
        device = None if failure else _device_from_code(user=user, secret=secret, code=code)
        if failure is None and device is None:
            failure = PeopleError(
                "That code does not match. Check the time on your phone and try the next code.",
                field="code",
            )
        if failure is not None:
            invitation.failures += 1
            fields = ["failures"]
            if invitation.failures >= INVITATION_MAX_FAILURES:
                invitation.voided_at = timezone.now()
                fields.append("voided_at")
                failure = PeopleError(
                    "Too many wrong attempts: this link no longer works. Ask a user admin for a "
                    "new one."
                )
            invitation.save(update_fields=fields)
        else:
            now = timezone.now()
            if new_person:
                user.set_password(password)
                user.save(update_fields=["password"])
            invitation.used_at = now
            invitation.save(update_fields=["used_at"])
            codes = _recovery_codes_replace(user=user)
            audit_event_record(
                action=AuditAction.PEOPLE_ENROLLED,
                actor=user,
                ip=ip,
                target=user,
                message=f"{user.get_username()} enrolled an authenticator from link "
                f"#{invitation.pk} issued by {invitation.issued_by}",
                data={
                    "invitation": invitation.pk,
                    "issued_by": invitation.issued_by_id,
                    "password_chosen": new_person,
                    "recovery_codes": len(codes),
                },
            )
    if failure is not None:
        raise failure
    return Enrolled(user=user, device=device, recovery_codes=codes)


# --- recovery codes ---------------------------------------------------------------------------


def recovery_code_normalise(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def recovery_code_use(*, user: Any, code: str, ip: str | None) -> StaticDevice:
    """Sign in with one recovery code instead of a TOTP code: it works once, and each use is
    audited with how many remain. Raises TotpRefused. Call outside ``atomic()``."""
    with transaction.atomic():
        device = StaticDevice.objects.select_for_update().filter(user=user).first()
        used = device is not None and device.verify_token(recovery_code_normalise(code))
        if used:
            left = device.token_set.count()
            audit_event_record(
                action=AuditAction.AUTH_RECOVERY_CODE_USED,
                actor=user,
                ip=ip,
                target=user,
                message=f"Signed in with a recovery code; {left} left",
                data={"remaining": left},
            )
        else:
            audit_event_record(
                action=AuditAction.TOTP_REFUSED,
                actor=user,
                ip=ip,
                target=user,
                message="Recovery code refused for login",
                data={"purpose": "login", "recovery_code": True},
            )
    if not used:
        raise TotpRefused("That recovery code is wrong or was already used.")
    return device


def recovery_codes_regenerate(*, user: Any, code: str, ip: str | None = None) -> list[str]:
    """New recovery codes (shown once) for a signed-in user who proves their device."""
    step = totp_code_verify(user=user, code=code, ip=ip, purpose="new recovery codes")
    with transaction.atomic():
        _lock_person(user.pk)
        codes = _recovery_codes_replace(user=user)
        audit_event_record(
            action=AuditAction.PEOPLE_RECOVERY_CODES_REPLACED,
            actor=user,
            ip=ip,
            target=user,
            message="New recovery codes; the old ones no longer work",
            data={"totp_step": step, "recovery_codes": len(codes)},
        )
    return codes


# --- people: changes under four eyes ----------------------------------------------------------


def _change_label(change: AccessChange) -> str:
    if change.kind == ChangeKind.DEVICE_RESET:
        return f"reset the authenticator of {change.subject.get_username()}"
    verb = "grant" if change.kind == ChangeKind.GRANT else "remove"
    preposition = "to" if change.kind == ChangeKind.GRANT else "from"
    return f"{verb} {role_label(change.role)} {preposition} {change.subject.get_username()}"


def access_change_propose(
    *,
    admin: Any,
    subject_id: Any,
    kind: str,
    role: str = "",
    reason: str = "",
    ip: str | None = None,
) -> AccessChange:
    """One user admin proposes a role grant, a role removal or a device reset. It changes
    nothing until a second user admin approves it."""
    _require_user_admin(admin)
    if kind not in ChangeKind.values:
        raise PeopleError("Choose what to change.", field="kind")
    role = (role or "").strip() if kind != ChangeKind.DEVICE_RESET else ""
    if kind != ChangeKind.DEVICE_RESET and role not in ROLES:
        raise PeopleError("Choose a role.", field="role")
    reason = (reason or "").strip()
    if len(reason) > 500:
        raise PeopleError("Keep the reason under 500 characters.", field="reason")
    current = _person(subject_id)
    with transaction.atomic():
        subject = _lock_person(current.pk)
        holds = subject.groups.filter(name=role).exists() if role else False
        if not subject.is_active:
            raise PeopleError(f"{subject.get_username()} is deactivated.")
        if kind == ChangeKind.GRANT and holds:
            raise PeopleError(f"{subject.get_username()} already has the {role_label(role)} role.")
        if kind == ChangeKind.REMOVE and not holds:
            raise PeopleError(
                f"{subject.get_username()} does not have the {role_label(role)} role."
            )
        if kind == ChangeKind.DEVICE_RESET and not TOTPDevice.objects.filter(user=subject).exists():
            raise PeopleError(
                f"{subject.get_username()} has no authenticator: issue an enrolment link instead."
            )
        if AccessChange.objects.filter(
            subject=subject, kind=kind, role=role, state=ChangeState.PROPOSED
        ).exists():
            raise PeopleError("The same change is already waiting for approval.")
        change = AccessChange.objects.create(
            kind=kind,
            subject=subject,
            role=role,
            reason=reason,
            proposed_by=admin,
            proposed_at=timezone.now(),
        )
        audit_event_record(
            action=AuditAction.PEOPLE_CHANGE_PROPOSED,
            actor=admin,
            ip=ip,
            target=subject,
            message=f"Proposed to {_change_label(change)}" + (f": {reason}" if reason else ""),
            data={"change": change.pk, "kind": kind, "role": role, "reason": reason},
        )
    return change


def _change(change_id: Any) -> AccessChange:
    try:
        return AccessChange.objects.select_related("subject").get(pk=int(change_id))
    except (TypeError, ValueError, AccessChange.DoesNotExist):
        raise PeopleError("No such proposal.") from None


def _check_approvable(change: AccessChange, approver: Any) -> None:
    if change.state != ChangeState.PROPOSED:
        raise PeopleError(f"This proposal is {change.get_state_display().lower()} already.")
    if change.proposed_by_id == approver.pk:
        raise PeopleError("You proposed this change: a second user admin must approve it.")
    if change.subject_id == approver.pk:
        raise PeopleError("This change is about your own access: another user admin decides.")


def access_change_approve(
    *, approver: Any, change_id: Any, code: str, ip: str | None = None
) -> AccessChange:
    """A second user admin approves with a fresh TOTP code, and the change takes effect."""
    _require_user_admin(approver)
    current = _change(change_id)
    _check_approvable(current, approver)
    step = totp_code_verify(user=approver, code=code, ip=ip, purpose="access change approval")
    with transaction.atomic():
        subject = _lock_person(current.subject_id)
        change = AccessChange.objects.select_for_update().get(pk=current.pk)
        _check_approvable(change, approver)
        change.subject = subject
        data: dict[str, Any] = {
            "change": change.pk,
            "totp_step": step,
            "proposed_by": change.proposed_by_id,
        }
        if change.kind == ChangeKind.DEVICE_RESET:
            removed = TOTPDevice.objects.filter(user=subject).delete()[0]
            StaticDevice.objects.filter(user=subject).delete()
            _invitations_void(user=subject, now=timezone.now())
            action, data["devices_removed"] = AuditAction.PEOPLE_DEVICE_RESET, removed
        else:
            if not subject.is_active:
                raise PeopleError(f"{subject.get_username()} is deactivated.")
            group = Group.objects.get(name=change.role)
            if change.kind == ChangeKind.GRANT:
                subject.groups.add(group)
                action = AuditAction.PEOPLE_ROLE_GRANTED
            else:
                subject.groups.remove(group)
                action = AuditAction.PEOPLE_ROLE_REMOVED
            data["role"] = change.role
        change.state = ChangeState.APPROVED
        change.decided_by = approver
        change.decided_at = timezone.now()
        change.save(update_fields=["state", "decided_by", "decided_at"])
        audit_event_record(
            action=action,
            actor=approver,
            ip=ip,
            target=subject,
            message=f"Approved with TOTP: {_change_label(change)} "
            f"(proposed by {change.proposed_by})",
            data=data,
        )
    return change


def access_change_reject(
    *, admin: Any, change_id: Any, reason: str = "", ip: str | None = None
) -> AccessChange:
    """Any user admin stops a proposal (the proposer withdraws it the same way)."""
    _require_user_admin(admin)
    current = _change(change_id)
    with transaction.atomic():
        change = AccessChange.objects.select_for_update().get(pk=current.pk)
        if not rules.may_reject_change(admin, change):
            raise PeopleError(f"This proposal is {change.get_state_display().lower()} already.")
        change.state = ChangeState.REJECTED
        change.decided_by = admin
        change.decided_at = timezone.now()
        change.save(update_fields=["state", "decided_by", "decided_at"])
        audit_event_record(
            action=AuditAction.PEOPLE_CHANGE_REJECTED,
            actor=admin,
            ip=ip,
            target=current.subject,
            message=f"Rejected the proposal to {_change_label(current)}"
            + (f": {reason.strip()[:400]}" if reason.strip() else ""),
            data={"change": change.pk, "kind": change.kind, "role": change.role},
        )
    return change


def person_deactivate(*, admin: Any, user_id: Any, reason: str, ip: str | None = None) -> Any:
    """One step and immediate: it only removes power. The person's sessions stop working at
    their next request (Django refuses inactive users), open links are voided."""
    _require_user_admin(admin)
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise PeopleError("Say why, in up to 500 characters.", field="reason")
    current = _person(user_id)
    with transaction.atomic():
        user = _lock_person(current.pk)
        if not rules.may_deactivate(admin, user):
            if user.pk == admin.pk:
                raise PeopleError("You cannot deactivate yourself: ask another user admin.")
            raise PeopleError(f"{user.get_username()} is deactivated already.")
        user.is_active = False
        user.save(update_fields=["is_active"])
        voided = _invitations_void(user=user, now=timezone.now())
        audit_event_record(
            action=AuditAction.PEOPLE_DEACTIVATED,
            actor=admin,
            ip=ip,
            target=user,
            message=f"Deactivated {user.get_username()}: {reason}",
            data={
                "reason": reason,
                "roles": sorted(user.groups.values_list("name", flat=True)),
                "links_voided": voided,
            },
        )
    return user
