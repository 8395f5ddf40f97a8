"""Venue configuration under four eyes, and a read-only connection check.

A venue's base URL, account, options and credentials decide where its keys are sent and whose
money moves. One whitelist admin proposes a new venue or a change (``venue_change_propose``); a
second approves it with a fresh TOTP code (``venue_change_approve``); until then the venue keeps
its old configuration. Turning a venue off or on is immediate: it changes no destination.

Credentials are write-only: they are encrypted on the way in and never returned, logged,
audited or exported. Audit events name which credential fields change, never their values.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.roles import WHITELIST_ADMIN, has_role
from accounts.services import TotpRefused, totp_code_verify
from audit.actions import AuditAction
from audit.services import audit_event_record
from core.errors import ApplicationError

from .crypto import encrypt_json, reencrypt
from .hosts import base_url_refusal
from .interface import VenueError
from .models import Venue, VenueChange, VenueChangeState, VenueKind
from .registry import client_for
from .verdicts import CheckResult, check_failed, check_passed

OPTION_KEYS = ("fee_deduct_type", "path_prefix", "key_version")
SECRET_FIELDS = ("api_key", "api_secret", "passphrase")
# Shown instead of a user where an operator acted at the command line.
COMMAND_LINE = "command line"


class VenueConfigError(ApplicationError):
    """A refusal of a venue's settings or credentials change."""


def _require_admin(actor: Any) -> None:
    if actor is None or not has_role(actor, WHITELIST_ADMIN):
        raise PermissionDenied("Only whitelist admins manage venues.")


def _base_url(kind: str, base_url: str) -> str:
    base_url = (base_url or "").strip().rstrip("/")
    if why := base_url_refusal(kind=kind, base_url=base_url):
        raise VenueConfigError(why, field="base_url")
    return base_url


def _clean_options(options: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (options or {}).items() if k in OPTION_KEYS and v}


def _given_secrets(**secrets: str | None) -> dict[str, str]:
    return {k: v for k, v in secrets.items() if k in SECRET_FIELDS and v}


def _check_new(*, kind: str, name: str) -> str:
    if kind not in VenueKind.values:
        raise VenueConfigError(
            f"Unknown kind {kind!r}; choose one of {', '.join(VenueKind.values)}.", field="kind"
        )
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise VenueConfigError("Give the venue a name of up to 80 characters.", field="name")
    if Venue.objects.filter(name=name).exists():
        raise VenueConfigError(f"A venue named {name!r} already exists.", field="name")
    return name


# --- bootstrap ------------------------------------------------------------------------------


def venue_bootstrap(
    *,
    kind: str,
    name: str,
    base_url: str,
    account: str = "",
    api_key: str = "",
    api_secret: str = "",
    passphrase: str = "",
    options: dict[str, str] | None = None,
) -> Venue:
    """A new venue straight away, for an operator setting up an installation from its shell
    (``manage.py venue add``). Only a new name: an existing venue changes by proposal only.

    One person suffices here because a new venue moves nothing: its addresses still need four
    eyes before any withdrawal can use it. The URL rules apply as on the page.
    """
    name = _check_new(kind=kind, name=name)
    base_url = _base_url(kind, base_url)
    with transaction.atomic():
        venue = Venue(kind=kind, name=name, base_url=base_url, account=account.strip())
        venue.options_json = _clean_options(options)
        venue.set_credentials(api_key=api_key, api_secret=api_secret, passphrase=passphrase)
        venue.save()
        audit_event_record(
            action=AuditAction.VENUE_CREATED,
            actor_name=COMMAND_LINE,
            target=venue,
            message=f"Venue {venue.name} ({kind}) added from the command line",
            data={
                "kind": kind,
                "base_url": venue.base_url,
                "account": venue.account,
                "options": venue.options_json,
                "credentials_set": sorted(
                    _given_secrets(api_key=api_key, api_secret=api_secret, passphrase=passphrase)
                ),
            },
        )
    return venue


# --- proposals ------------------------------------------------------------------------------


def venue_change_propose(
    *,
    actor: Any,
    venue_id: int | None = None,
    kind: str = "",
    name: str = "",
    base_url: str | None = None,
    account: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    passphrase: str | None = None,
    options: dict[str, str] | None = None,
    ip: str | None = None,
) -> VenueChange:
    """Propose a new venue (no ``venue_id``) or a change to one. ``actor`` None is an operator
    at the command line. A value left None (or a blank credential) stays as it is; an option
    given blank is removed."""
    if actor is not None:
        _require_admin(actor)
    secrets = _given_secrets(api_key=api_key, api_secret=api_secret, passphrase=passphrase)
    if venue_id is None:
        change = _creation(
            kind=kind,
            name=name,
            base_url=base_url or "",
            account=account or "",
            options=options,
            secrets=secrets,
        )
    else:
        change = _modification(
            venue_id=venue_id, base_url=base_url, account=account, options=options, secrets=secrets
        )
    change.proposed_by = actor
    change.credentials_encrypted = encrypt_json(secrets) if secrets else ""
    what = "a new venue" if change.is_creation else "a change"
    try:
        with transaction.atomic():
            change.save()
            audit_event_record(
                action=AuditAction.VENUE_CHANGE_PROPOSED,
                actor=actor,
                actor_name="" if actor is not None else COMMAND_LINE,
                ip=ip,
                target=change.venue or change,
                message=f"Proposed {what} to {change.name}: {', '.join(change.summary)}; "
                "a second whitelist admin must approve it",
                data={"change": change.pk, **change.summary},
            )
    except IntegrityError:
        raise VenueConfigError(
            f"{change.name} already has a change waiting for approval: approve or reject "
            "that one first."
        ) from None
    return change


def _creation(
    *,
    kind: str,
    name: str,
    base_url: str,
    account: str,
    options: dict[str, str] | None,
    secrets: dict[str, str],
) -> VenueChange:
    name = _check_new(kind=kind, name=name)
    base_url = _base_url(kind, base_url)
    clean = _clean_options(options)
    return VenueChange(
        kind=kind,
        name=name,
        base_url=base_url,
        account=account.strip(),
        options_json=clean,
        summary={
            "kind": kind,
            "base_url": base_url,
            "account": account.strip(),
            "options": clean,
            "credentials_set": sorted(secrets),
        },
    )


def _modification(
    *,
    venue_id: int,
    base_url: str | None,
    account: str | None,
    options: dict[str, str] | None,
    secrets: dict[str, str],
) -> VenueChange:
    venue = Venue.objects.filter(pk=venue_id).first()
    if venue is None:
        raise VenueConfigError("No such venue.")
    summary: dict[str, Any] = {}
    new_url = venue.base_url
    if base_url is not None and base_url.strip().rstrip("/") != venue.base_url:
        new_url = _base_url(venue.kind, base_url)
        summary["base_url"] = [venue.base_url, new_url]
    new_account = venue.account
    if account is not None and account.strip() != venue.account:
        new_account = account.strip()
        summary["account"] = [venue.account, new_account]
    merged = dict(venue.options_json)
    for key, value in (options or {}).items():
        if key in OPTION_KEYS:
            merged[key] = value
    merged = _clean_options(merged)
    if merged != _clean_options(venue.options_json):
        summary["options"] = [venue.options_json, merged]
    if secrets:
        summary["credentials_replaced"] = sorted(secrets)
    if not summary:
        raise VenueConfigError(f"Nothing to change: {venue.name} is configured like that already.")
    return VenueChange(
        venue=venue,
        kind=venue.kind,
        name=venue.name,
        base_url=new_url,
        account=new_account,
        options_json=merged,
        summary=summary,
    )


def _change(change_id: Any) -> VenueChange:
    try:
        return VenueChange.objects.select_related("venue").get(pk=int(change_id))
    except (TypeError, ValueError, VenueChange.DoesNotExist):
        raise VenueConfigError("No such venue change.") from None


def _check_approvable(change: VenueChange, approver: Any) -> None:
    if change.state != VenueChangeState.PROPOSED:
        raise VenueConfigError(f"This change is already {change.get_state_display().lower()}.")
    if change.proposed_by_id is not None and change.proposed_by_id == approver.pk:
        raise VenueConfigError(
            "You proposed this change: a second whitelist admin must approve it."
        )


def venue_change_approve(
    *, change_id: Any, approver: Any, code: str, ip: str | None = None
) -> Venue:
    """A second whitelist admin approves with a fresh TOTP code; the change takes effect."""
    _require_admin(approver)
    current = _change(change_id)
    _check_approvable(current, approver)
    # The rules may have tightened since the proposal (another deployment, fewer extra hosts).
    _base_url(current.kind, current.base_url)
    try:
        step = totp_code_verify(user=approver, code=code, ip=ip, purpose="venue change approval")
    except TotpRefused as exc:
        raise VenueConfigError(str(exc), field="code") from None
    with transaction.atomic():
        change = VenueChange.objects.select_for_update().get(pk=current.pk)
        _check_approvable(change, approver)
        if change.is_creation:
            if Venue.objects.filter(name=change.name).exists():
                raise VenueConfigError(f"A venue named {change.name!r} already exists.")
            venue = Venue(kind=change.kind, name=change.name)
            secrets = change.new_credentials
            venue.set_credentials(
                api_key=secrets.get("api_key", ""),
                api_secret=secrets.get("api_secret", ""),
                passphrase=secrets.get("passphrase", ""),
            )
            action = AuditAction.VENUE_CREATED
        else:
            venue = Venue.objects.select_for_update().get(pk=change.venue_id)
            if secrets := change.new_credentials:
                held = venue.credentials
                venue.set_credentials(
                    api_key=secrets.get("api_key", held.api_key),
                    api_secret=secrets.get("api_secret", held.api_secret),
                    passphrase=secrets.get("passphrase", held.passphrase),
                )
            action = AuditAction.VENUE_UPDATED
        venue.base_url = change.base_url
        venue.account = change.account
        venue.options_json = change.options_json
        venue.save()
        change.venue = venue
        change.state = VenueChangeState.APPLIED
        change.approved_by = approver
        change.decided_at = timezone.now()
        # The secrets now live in the venue row only.
        change.credentials_encrypted = ""
        change.save()
        proposer = change.proposed_by.get_username() if change.proposed_by else COMMAND_LINE
        audit_event_record(
            action=action,
            actor=approver,
            ip=ip,
            target=venue,
            message=f"Venue {venue.name}: {', '.join(change.summary)} approved with TOTP "
            f"(proposed by {proposer})",
            data={
                "change": change.pk,
                "proposed_by": proposer,
                "totp_step": step,
                **change.summary,
            },
        )
    return venue


def venue_change_reject(
    *, change_id: Any, actor: Any, reason: str = "", ip: str | None = None
) -> VenueChange:
    """Any whitelist admin, the proposer included (a withdrawal of the proposal), stops a
    change. No TOTP: stopping a change gives nobody power."""
    _require_admin(actor)
    reason = (reason or "").strip()
    if len(reason) > 300:
        raise VenueConfigError("Keep the reason under 300 characters.", field="reason")
    with transaction.atomic():
        try:
            change = VenueChange.objects.select_for_update().get(pk=int(change_id))
        except (TypeError, ValueError, VenueChange.DoesNotExist):
            raise VenueConfigError("No such venue change.") from None
        if change.state != VenueChangeState.PROPOSED:
            raise VenueConfigError(f"This change is already {change.get_state_display().lower()}.")
        change.state = VenueChangeState.REJECTED
        change.rejected_by = actor
        change.decided_at = timezone.now()
        change.reason = reason
        change.credentials_encrypted = ""
        change.save()
        audit_event_record(
            action=AuditAction.VENUE_CHANGE_REJECTED,
            actor=actor,
            ip=ip,
            target=change.venue or change,
            message=f"Rejected the proposed change to {change.name}"
            + (f": {reason}" if reason else ""),
            data={"change": change.pk, "reason": reason},
        )
    return change


def venue_set_enabled(*, actor: Any, venue_id: int, enabled: bool, ip: str | None = None) -> Venue:
    """Turn a venue off (or back on with its approved configuration), at once and audited."""
    _require_admin(actor)
    with transaction.atomic():
        venue = Venue.objects.select_for_update().get(pk=venue_id)
        if venue.enabled == enabled:
            return venue
        venue.enabled = enabled
        venue.save(update_fields=["enabled", "updated_at"])
        audit_event_record(
            action=AuditAction.VENUE_ENABLED if enabled else AuditAction.VENUE_DISABLED,
            actor=actor,
            ip=ip,
            target=venue,
            message=f"Venue {venue.name} turned {'on' if enabled else 'off'}",
            data={"enabled": enabled},
        )
    return venue


# --- keys -----------------------------------------------------------------------------------


def venue_credentials_rotate() -> int:
    """Re-encrypt every venue's credentials (and those waiting in open proposals) under the
    newest key in COUNTERSIGN_CREDENTIALS_KEYS. Returns how many venues were re-encrypted."""
    done = 0
    with transaction.atomic():
        for venue in Venue.objects.select_for_update().exclude(credentials_encrypted=""):
            venue.credentials_encrypted = reencrypt(venue.credentials_encrypted)
            venue.save(update_fields=["credentials_encrypted"])
            done += 1
        pending = VenueChange.objects.select_for_update().filter(state=VenueChangeState.PROPOSED)
        for change in pending.exclude(credentials_encrypted=""):
            change.credentials_encrypted = reencrypt(change.credentials_encrypted)
            change.save(update_fields=["credentials_encrypted"])
        audit_event_record(
            action=AuditAction.VENUE_CREDENTIALS_ROTATED,
            actor_name=COMMAND_LINE,
            message=f"Venue credentials re-encrypted under the newest key ({done} venues)",
            data={"venues": done},
        )
    return done


# --- checks ---------------------------------------------------------------------------------


def venue_check(*, venue: Venue) -> CheckResult:
    """One authenticated read-only call with the venue's approved configuration. The message
    is ours (or the venue's documented error), one line, and never holds a secret."""
    if not venue.has_credentials:
        return CheckResult(False, "no credentials configured")
    client = client_for(venue)
    try:
        client.check_connection()
    except VenueError as exc:
        return check_failed(venue.kind, exc)
    finally:
        client.close()
    return check_passed(venue.kind)
