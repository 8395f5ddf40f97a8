"""Venue configuration: create, update, and a read-only connection check.

Credentials are write-only: they are encrypted on the way in and never returned, logged,
audited or exported. Audit events name which credential fields changed, never their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from accounts.roles import WHITELIST_ADMIN, has_role
from audit.services import audit_event_record

from .interface import VenueError, VenueRejected
from .models import Venue, VenueKind
from .registry import SANDBOX_SCHEME, client_for

OPTION_KEYS = ("fee_deduct_type", "path_prefix", "key_version")


class VenueConfigError(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def _require_admin(actor: Any) -> None:
    # None means a trusted operator at the command line (manage.py venue ...).
    if actor is not None and not has_role(actor, WHITELIST_ADMIN):
        raise PermissionDenied("Only whitelist admins manage venues.")


def _validate(*, kind: str, name: str, base_url: str) -> None:
    if kind not in VenueKind.values:
        raise VenueConfigError(
            f"Unknown kind {kind!r}; choose one of {', '.join(VenueKind.values)}.", field="kind"
        )
    if not name.strip():
        raise VenueConfigError("Give the venue a name.", field="name")
    if not (base_url.startswith(("https://", "http://")) or base_url.startswith(SANDBOX_SCHEME)):
        raise VenueConfigError(
            "The base URL must start with https://, http:// or sandbox://.", field="base_url"
        )


def venue_create(
    *,
    actor: Any,
    kind: str,
    name: str,
    base_url: str,
    account: str = "",
    api_key: str = "",
    api_secret: str = "",
    passphrase: str = "",
    options: dict[str, str] | None = None,
    ip: str | None = None,
) -> Venue:
    _require_admin(actor)
    _validate(kind=kind, name=name, base_url=base_url)
    if Venue.objects.filter(name=name.strip()).exists():
        raise VenueConfigError(f"A venue named {name!r} already exists.", field="name")
    with transaction.atomic():
        venue = Venue(kind=kind, name=name.strip(), base_url=base_url.rstrip("/"), account=account)
        venue.options_json = {k: v for k, v in (options or {}).items() if k in OPTION_KEYS and v}
        venue.set_credentials(api_key=api_key, api_secret=api_secret, passphrase=passphrase)
        venue.save()
        audit_event_record(
            action="venue.created",
            actor=actor,
            ip=ip,
            target=venue,
            message=f"Venue {venue.name} ({kind}) added",
            data={
                "kind": kind,
                "base_url": venue.base_url,
                "account": account,
                "options": venue.options_json,
                "credentials_set": [
                    f for f, v in _secret_fields(api_key, api_secret, passphrase) if v
                ],
            },
        )
    return venue


def _secret_fields(api_key: str, api_secret: str, passphrase: str) -> list[tuple[str, str]]:
    return [("api_key", api_key), ("api_secret", api_secret), ("passphrase", passphrase)]


def venue_update(
    *,
    actor: Any,
    venue_id: int,
    base_url: str | None = None,
    account: str | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    passphrase: str | None = None,
    options: dict[str, str] | None = None,
    enabled: bool | None = None,
    ip: str | None = None,
) -> Venue:
    """Change what is given; a credential left None (or blank from a form) is kept as it is."""
    _require_admin(actor)
    with transaction.atomic():
        venue = Venue.objects.select_for_update().get(pk=venue_id)
        changes: dict[str, Any] = {}
        if base_url is not None and base_url.rstrip("/") != venue.base_url:
            _validate(kind=venue.kind, name=venue.name, base_url=base_url)
            changes["base_url"] = [venue.base_url, base_url.rstrip("/")]
            venue.base_url = base_url.rstrip("/")
        if account is not None and account != venue.account:
            changes["account"] = [venue.account, account]
            venue.account = account
        if enabled is not None and enabled != venue.enabled:
            changes["enabled"] = [venue.enabled, enabled]
            venue.enabled = enabled
        if options:
            merged = {**venue.options_json}
            merged.update({k: v for k, v in options.items() if k in OPTION_KEYS})
            merged = {k: v for k, v in merged.items() if v}
            if merged != venue.options_json:
                changes["options"] = [venue.options_json, merged]
                venue.options_json = merged
        new_secrets = {
            k: v for k, v in _secret_fields(api_key or "", api_secret or "", passphrase or "") if v
        }
        if new_secrets:
            current = venue.credentials
            venue.set_credentials(
                api_key=new_secrets.get("api_key", current.api_key),
                api_secret=new_secrets.get("api_secret", current.api_secret),
                passphrase=new_secrets.get("passphrase", current.passphrase),
            )
            changes["credentials_replaced"] = sorted(new_secrets)
        if not changes:
            return venue
        venue.save()
        audit_event_record(
            action="venue.updated",
            actor=actor,
            ip=ip,
            target=venue,
            message=f"Venue {venue.name} changed: {', '.join(changes)}",
            data=changes,
        )
    return venue


def venue_check(*, venue: Venue) -> CheckResult:
    """One authenticated read-only call. The message is one line and never holds a secret."""
    if not venue.has_credentials:
        return CheckResult(False, "no credentials configured")
    client = client_for(venue)
    try:
        description = client.check_connection()
    except VenueRejected as exc:
        return CheckResult(False, f"venue refused: {exc.message}")
    except VenueError as exc:
        return CheckResult(False, f"unreachable: {exc.message}")
    finally:
        client.close()
    return CheckResult(True, description)
