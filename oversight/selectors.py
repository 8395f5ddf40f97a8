"""Reads for the auditors' pages: history, evidence and chart data."""

from __future__ import annotations

import operator
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any

from django.db.models import BigIntegerField, CharField, Count, Max, Q, QuerySet, Sum
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.selectors import audit_events_for, date_range_q
from core.urls import url_for_each
from whitelist.models import WhitelistedAddress
from withdrawals.models import State, WithdrawalRequest

from .models import DailyWithdrawalTotals

PAGE_SIZE = 50
WHITELIST_TYPE = "whitelistedaddress"
WITHDRAWAL_TYPE = "withdrawalrequest"


def audit_events_filtered(*, filters: dict[str, Any]) -> QuerySet[AuditEvent]:
    """Audit events matching the history filters. ``whitelist_only`` narrows to address-book
    changes, where venue and asset filter through the addresses themselves."""
    qs = AuditEvent.objects.all()
    if filters.get("whitelist_only"):
        qs = qs.filter(object_type=WHITELIST_TYPE)
        if filters.get("venue") or filters.get("asset"):
            addresses = WhitelistedAddress.objects.all()
            if filters.get("venue"):
                addresses = addresses.filter(venue_id=filters["venue"].pk)
            if filters.get("asset"):
                addresses = addresses.filter(asset__iexact=filters["asset"])
            qs = qs.filter(
                object_id__in=addresses.annotate(key=Cast("pk", CharField())).values("key")
            )
    elif filters.get("object_type"):
        qs = qs.filter(object_type=filters["object_type"])
    if filters.get("object_id"):
        qs = qs.filter(object_id=filters["object_id"])
    if filters.get("action"):
        qs = qs.filter(action__startswith=filters["action"])
    if filters.get("user"):
        qs = qs.filter(actor_name=filters["user"])
    qs = qs.filter(
        **date_range_q("created_at", since=filters.get("since"), until=filters.get("until"))
    )
    return qs


def export_rows_bounded(*, qs: QuerySet, key: str) -> QuerySet:
    """The rows an export may hold: bounded by the highest key now, so that the export's own
    audit event, written before the file streams, stays out of it wherever the export reads
    (inside a caller's transaction, or on SQLite, there is no earlier snapshot to keep it
    out)."""
    top = qs.order_by(f"-{key}").values_list(key, flat=True).first()
    if top is None:
        return qs.none()
    return qs.filter(**{f"{key}__lte": top})


def audit_events_after(
    *, qs: QuerySet[AuditEvent], before: int | None, by_time: bool
) -> QuerySet[AuditEvent]:
    """``qs`` newest first, from just past ``before`` (the last seq shown). A date range
    (``by_time``) goes in (created_at, seq) order, the order its index holds, so thirty days are
    read from the index rather than by walking every seq back to them."""
    if not by_time:
        return (qs.filter(seq__lt=before) if before else qs).order_by("-seq")
    at = None
    if before:
        at = AuditEvent.objects.filter(seq=before).values_list("created_at", flat=True).first()
    if at is not None:
        # The bound on created_at alone is where the index scan starts; the OR is the exact
        # keyset (events of one instant go on by seq).
        qs = qs.filter(Q(created_at__lt=at) | Q(created_at=at, seq__lt=before), created_at__lte=at)
    elif before:
        qs = qs.filter(seq__lt=before)
    return qs.order_by("-created_at", "-seq")


@dataclass(frozen=True, slots=True)
class EventRow:
    """One line of the audit-event table, every value already as the page shows it: the table
    renders plain lookups, no filter, tag or model method per row."""

    seq: int
    when: str
    actor: str
    ip: str
    action: str
    action_label: str
    object_type: str
    object_id: str
    evidence_url: str
    message: str
    hash_short: str
    prev_hash: str


_EVENT_COLUMNS = (
    "seq",
    "created_at",
    "actor_name",
    "ip",
    "action",
    "object_type",
    "object_id",
    "message",
    "hash",
    "prev_hash",
)


def _event_rows(values: list[tuple[Any, ...]]) -> list[EventRow]:
    # One reverse() and one time zone for the page: per row they cost more than the query.
    evidence_url = url_for_each("audit:evidence")
    zone = timezone.get_current_timezone()
    return [
        EventRow(
            seq=seq,
            when=created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
            actor=actor or "",
            ip=str(ip) if ip else "",
            action=action,
            action_label=AuditAction.label_of(action),
            object_type=object_type,
            object_id=object_id,
            evidence_url=evidence_url(object_id)
            if object_type == WITHDRAWAL_TYPE and object_id.isdigit()
            else "",
            message=message,
            # As the hash column always showed it: 12 characters and an ellipsis.
            hash_short=f"{hash_[:12]}…" if len(hash_) > 13 else hash_,
            prev_hash=prev_hash,
        )
        for (
            seq,
            created_at,
            actor,
            ip,
            action,
            object_type,
            object_id,
            message,
            hash_,
            prev_hash,
        ) in values
    ]


def audit_event_page(
    *, qs: QuerySet[AuditEvent], before: int | None, size: int, by_time: bool = False
) -> tuple[list[EventRow], int | None]:
    """Keyset pagination, newest first: no OFFSET, no COUNT(*)."""
    page = audit_events_after(qs=qs, before=before, by_time=by_time)
    rows = _event_rows(list(page.values_list(*_EVENT_COLUMNS)[: size + 1]))
    next_before = rows[size - 1].seq if len(rows) > size else None
    return rows[:size], next_before


# --- evidence -------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _amount(value: Any) -> str | None:
    return format(value.normalize(), "f") if value is not None else None


def evidence_pack(*, withdrawal: Any) -> dict[str, Any]:
    """Everything an auditor needs about one withdrawal, as plain JSON-ready data."""
    w = withdrawal
    events = list(audit_events_for(target=w).order_by("seq"))
    return {
        "withdrawal": {
            "id": w.pk,
            "request_id": str(w.request_id),
            "venue": {"id": w.venue_id, "name": w.venue.name, "kind": w.venue.kind},
            "account": w.venue.account,
            "asset": w.asset,
            "network": w.network,
            "address": w.address,
            "memo": w.memo,
            "venue_key": w.venue_key,
            "whitelisted_address": {
                "id": w.whitelisted_address_id,
                "label": w.whitelisted_address.label,
            },
            "amount": _amount(w.amount),
            "fee_cap": _amount(w.fee_cap),
            "fee_deduct_type": w.fee_deduct_type,
            "note": w.note,
            "requested_by": w.requested_by.get_username(),
            "created_at": _iso(w.created_at),
            "state": w.state,
            "reason": w.reason,
        },
        "payload_hash": w.payload_hash,
        "payload_hash_recomputed": w.compute_payload_hash(),
        "quotes": [
            {
                "id": q.pk,
                "fetched_at": _iso(q.fetched_at),
                "shown_to": q.shown_to.get_username() if q.shown_to else None,
                "fee": _amount(q.fee),
                "net_amount": _amount(q.net_amount),
                "minimum": _amount(q.minimum),
                "limit": _amount(q.limit),
                "expires_at": _iso(q.expires_at),
                "has_token": bool(q.token),
                "confirmed": q.pk == w.confirmed_quote_id,
            }
            for q in w.quotes.select_related("shown_to").order_by("fetched_at", "id")
        ],
        "approvals": [
            {
                "approver": a.approver.get_username(),
                "at": _iso(a.created_at),
                "ip": a.ip,
                "totp_step": a.totp_step,
                "payload_hash": a.payload_hash,
                "quote_id": a.quote_id,
                "voided": a.voided,
            }
            for a in w.approvals.select_related("approver").order_by("created_at", "id")
        ],
        "venue": {
            "reference": w.venue_reference,
            "txid": w.venue_txid,
            "status": w.venue_status,
            "status_detail": w.status_detail,
            "submitted_at": _iso(w.submitted_at),
            "finished_at": _iso(w.finished_at),
            "last_checked_at": _iso(w.last_checked_at),
        },
        "status_history": [
            {"seq": e.seq, "at": _iso(e.created_at), "from": e.data.get("from"), "to": e.data["to"]}
            for e in events
            if isinstance(e.data, dict) and "to" in e.data
        ],
        "venue_exchanges": [
            {
                "purpose": x.purpose,
                "at": _iso(x.started_at),
                "method": x.method,
                "url": x.url,
                "request_headers": x.request_headers,
                "request_body": x.request_body,
                "status_code": x.status_code,
                "response_headers": x.response_headers,
                "response_body": x.response_body,
                "error": x.error,
            }
            for x in w.venue_exchanges.order_by("started_at", "id")
        ],
        "audit_events": [
            {
                "seq": e.seq,
                "at": _iso(e.created_at),
                "actor": e.actor_name,
                "ip": e.ip,
                "action": e.action,
                "message": e.message,
                "data": e.data,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in events
        ],
    }


# --- charts: from the daily rollup, never the withdrawals table -----------------------------


def withdrawal_volume_by_day(*, since: date) -> list[dict[str, Any]]:
    """Completed volume per venue, asset and day since ``since`` (one grouped query)."""
    return list(
        DailyWithdrawalTotals.objects.filter(state=State.COMPLETED, day__gte=since)
        .values("venue__name", "asset", "day")
        .annotate(total=Sum("amount_sum"), n=Sum("count"))
        .order_by("venue__name", "asset", "day")
    )


def withdrawal_counts_by_state(*, since: date) -> dict[str, int]:
    rows = (
        DailyWithdrawalTotals.objects.filter(day__gte=since)
        .values("state")
        .annotate(n=Sum("count"))
        .order_by()
    )
    return {row["state"]: row["n"] for row in rows}


def daily_totals_refreshed_at() -> datetime | None:
    return DailyWithdrawalTotals.objects.aggregate(at=Max("refreshed_at"))["at"]


def daily_totals_days_to_refresh(*, today: date) -> set[date]:
    """Today, yesterday, and the day each withdrawal was requested whose trail moved since
    yesterday began: a late completion changes the totals of the day it was asked for."""
    yesterday = today - timedelta(days=1)
    touched = AuditEvent.objects.filter(
        object_type=WITHDRAWAL_TYPE,
        **date_range_q("created_at", since=yesterday, until=None),
    ).annotate(withdrawal_id=Cast("object_id", BigIntegerField()))
    requested = WithdrawalRequest.objects.filter(pk__in=touched.values("withdrawal_id")).dates(
        "created_at", "day"
    )
    return {today, yesterday, *requested}


def daily_totals_computed(*, days: Collection[date] | None) -> list[dict[str, Any]]:
    """The rollup's rows straight from the withdrawals, for ``days`` (every day when None)."""
    qs = WithdrawalRequest.objects.all()
    if days is not None:
        ranges = (Q(**date_range_q("created_at", since=day, until=day)) for day in days)
        qs = qs.filter(reduce(operator.or_, ranges))
    rows = (
        qs.annotate(day=TruncDate("created_at"))
        .values("day", "venue_id", "asset", "state")
        .annotate(count=Count("id"), amount_sum=Sum("amount"))
        .order_by()
    )
    # SQLite hands the truncated date back as text.
    return [{**row, "day": _as_date(row["day"])} for row in rows]


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
