"""Password logins, successful or not, go on the audit trail. The password never does."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from .actions import AuditAction
from .services import audit_event_record


def _ip(request: Any) -> str | None:
    # Same rule as accounts.utils.client_ip: X-Forwarded-For is client-controlled.
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def login_succeeded_record(sender: Any, request: Any = None, user: Any = None, **kwargs: Any):
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.LOGIN_SUCCEEDED,
            actor=user,
            ip=_ip(request),
            target=user,
            message="Password accepted; TOTP verification follows",
        )


def login_failed_record(
    sender: Any, credentials: dict[str, Any] | None = None, request: Any = None, **kwargs: Any
):
    # Only the username is kept: Django already masks the password in ``credentials``, but
    # nothing from that dict beyond the name is trusted to be safe to store.
    username = str((credentials or {}).get("username", ""))[:150]
    known = get_user_model().objects.filter(username=username).first()
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.LOGIN_FAILED,
            actor=None,
            actor_name=username or "(blank)",
            ip=_ip(request),
            target=known,
            message="Wrong username or password",
            data={"username": username, "known_user": known is not None},
        )
