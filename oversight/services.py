"""What the auditors' pages write: only their own access events, never a domain change."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_event_record, json_safe


def audit_export_record(
    *,
    actor: Any,
    ip: str | None,
    dataset: str,
    fmt: str,
    filters: dict[str, Any],
    rows: int | None = None,
) -> AuditEvent:
    """Record who exported what, with the filter that chose the rows and how many there were
    (an evidence pack is one withdrawal and carries no count)."""
    with transaction.atomic():
        return audit_event_record(
            action=AuditAction.EXPORT_CREATED,
            actor=actor,
            ip=ip,
            message=f"Exported {dataset} as {fmt.upper()}",
            data={
                "dataset": dataset,
                "format": fmt,
                "filters": json_safe(filters),
                **({"rows": rows} if rows is not None else {}),
            },
        )
