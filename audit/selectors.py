"""Reads of the trail itself: one object's events, day ranges, the latest chain check."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Model, QuerySet
from django.utils import timezone

from .models import AuditEvent, ChainCheck


def audit_events_for(*, target: Model) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(
        object_type=target._meta.model_name, object_id=str(target.pk)
    ).select_related("actor")


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def date_range_q(field: str, *, since: date | None, until: date | None) -> dict[str, datetime]:
    """Lookups for an inclusive day range, as half-open datetimes so an index can serve them."""
    lookups = {}
    if since:
        lookups[f"{field}__gte"] = _day_start(since)
    if until:
        lookups[f"{field}__lt"] = _day_start(until + timedelta(days=1))
    return lookups


def chain_check_latest() -> ChainCheck | None:
    return ChainCheck.objects.order_by("-checked_at", "-id").first()


def chain_break_is_news(check: ChainCheck) -> bool:
    """Whether a broken ``check`` (recorded) tells people something the trail has not: the walk
    before it found the chain whole, or broken at another event. The periodic walk runs every
    few minutes, and one break must not become an alert every few minutes."""
    previous = ChainCheck.objects.filter(id__lt=check.pk).order_by("-id").first()
    return previous is None or previous.ok or previous.first_broken_seq != check.first_broken_seq
