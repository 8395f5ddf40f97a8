"""Every audit event is written in the transaction of the change it records: notifications
written here, just before the event itself (``audit.services.event_appending``), share that
transaction's fate."""

from __future__ import annotations

from typing import Any

from audit.models import AuditEvent

from .services import event_notify


def audit_event_notify(sender: Any, event: AuditEvent, **kwargs: Any) -> None:
    event_notify(event=event)
