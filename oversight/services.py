"""What oversight writes: its own access events and its rollup, never a domain change."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_event_record, json_safe

from . import selectors
from .models import DailyWithdrawalTotals

_TOTALS_KEY = ("day", "venue", "asset", "state")


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


def daily_totals_refresh(*, days: Collection[date] | None) -> int:
    """Recompute the daily rollup for ``days`` (every day when None, the backfill): upsert each
    group's count and sum, and remove the groups no withdrawal is in any more (a withdrawal
    that changed state left its old one). Idempotent: a second run writes the same rows."""
    if days is not None and not days:
        return 0
    now = timezone.now()
    with transaction.atomic():
        fresh = [
            DailyWithdrawalTotals(refreshed_at=now, **row)
            for row in selectors.daily_totals_computed(days=days)
        ]
        held = DailyWithdrawalTotals.objects.all()
        if days is not None:
            held = held.filter(day__in=days)
        keep = {(t.day, t.venue_id, t.asset, t.state) for t in fresh}
        gone = [
            pk
            for pk, *key in held.values_list("pk", "day", "venue_id", "asset", "state")
            if tuple(key) not in keep
        ]
        DailyWithdrawalTotals.objects.filter(pk__in=gone).delete()
        DailyWithdrawalTotals.objects.bulk_create(
            fresh,
            update_conflicts=True,
            unique_fields=_TOTALS_KEY,
            update_fields=("count", "amount_sum", "refreshed_at"),
            batch_size=1000,
        )
    return len(fresh)


def daily_totals_refresh_recent() -> int:
    """The periodic refresh: the recent days, or every day on a first run."""
    if not DailyWithdrawalTotals.objects.exists():
        return daily_totals_refresh(days=None)
    days = selectors.daily_totals_days_to_refresh(today=timezone.localdate())
    return daily_totals_refresh(days=days)
