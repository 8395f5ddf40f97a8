"""Appending to the audit trail. Call inside the transaction of the change being recorded."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.utils import timezone

from .chain import event_content, event_digest
from .models import AuditChainHead, AuditEvent


def audit_event_record(
    *,
    action: str,
    actor: Any = None,
    ip: str | None = None,
    target: models.Model | None = None,
    message: str = "",
    data: dict[str, Any] | None = None,
    actor_name: str = "",
) -> AuditEvent:
    """Append one event to the chain.

    The chain head row is locked, so concurrent appends serialise and ``seq`` has no gaps. When
    the caller's transaction rolls back, the event and the head move back with it.
    """
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
        user = actor if getattr(actor, "is_authenticated", False) else None
        event = AuditEvent(
            seq=head.seq + 1,
            created_at=timezone.now(),
            actor=user,
            actor_name=actor_name or (user.get_username() if user else "system"),
            ip=ip or None,
            action=action,
            object_type=target._meta.model_name if target is not None else "",
            object_id=str(target.pk) if target is not None else "",
            message=message[:500],
            data=_jsonable(data or {}),
            prev_hash=head.hash,
        )
        event.hash = event_digest(prev_hash=head.hash, content=event_content(event))
        event.save(force_insert=True)
        head.seq, head.hash = event.seq, event.hash
        head.save(update_fields=["seq", "hash"])
        return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)  # Decimal, UUID, datetime: stored as their exact text, never as float
