"""Every audit event is written in the transaction of the change it records: notifications
written here share that transaction's fate."""

from __future__ import annotations

from typing import Any

from audit.models import AuditEvent

from .services import event_notify


def audit_event_notify(sender: Any, instance: AuditEvent, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        event_notify(event=instance)
