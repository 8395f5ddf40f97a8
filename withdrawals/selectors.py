"""Reads for withdrawal pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import F, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.fields.tuple_lookups import Tuple
from django.db.models.lookups import LessThan
from django.utils import timezone
from django.utils.timesince import timesince

from accounts.roles import APPROVER, AUDITOR, has_role
from audit.models import AuditEvent
from audit.selectors import audit_events_for, date_range_q
from core.templatetags.display import amount as amount_text
from core.urls import url_for_each

from . import rules
from .models import (
    Approval,
    DuplicatePayment,
    Resolution,
    State,
    VenueExchange,
    WithdrawalRequest,
)
from .policy import Flag

PAGE_SIZE = 50


def withdrawals_visible_to(*, user: Any) -> QuerySet[WithdrawalRequest]:
    """Approvers and auditors see every withdrawal; a requester sees their own."""
    qs = WithdrawalRequest.objects.select_related("venue", "requested_by", "whitelisted_address")
    if has_role(user, APPROVER) or has_role(user, AUDITOR):
        return qs
    return qs.filter(requested_by=user)


def withdrawal_get_for(*, user: Any, pk: int) -> WithdrawalRequest:
    """Object-level authorisation: a tampered id the user may not see is a plain 404."""
    return withdrawals_visible_to(user=user).get(pk=pk)


def approval_queue_for(*, user: Any) -> QuerySet[WithdrawalRequest]:
    if not has_role(user, APPROVER):
        return WithdrawalRequest.objects.none()
    return (
        WithdrawalRequest.objects.filter(state=State.PENDING_APPROVAL)
        .exclude(requested_by=user)
        .exclude(approvals__approver=user, approvals__voided=False)
        .select_related("venue", "requested_by", "whitelisted_address")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of an approver's queue, every value already as the page shows it."""

    pk: int
    url: str
    age: str
    requester: str
    venue: str
    amount: str
    to: str


QUEUE_SIZE = 20
# What a line of the queue and of the history shows of a withdrawal (the history adds its state).
_ROW_COLUMNS = (
    "id",
    "created_at",
    "requested_by__username",
    "venue__name",
    "amount",
    "asset",
    "whitelisted_address__label",
)


def approval_queue_rows(*, user: Any, size: int = QUEUE_SIZE) -> list[QueueRow]:
    """The oldest ``size`` withdrawals waiting for ``user``'s approval, in one query."""
    values = approval_queue_for(user=user).values_list(*_ROW_COLUMNS)[:size]
    url = url_for_each("withdrawals:detail")
    now = timezone.now()
    return [
        QueueRow(
            pk=pk,
            url=url(pk),
            age=timesince(created_at, now),
            requester=requester,
            venue=venue,
            amount=amount_text(amount, asset),
            to=to or "",
        )
        for pk, created_at, requester, venue, amount, asset, to in values
    ]


def withdrawals_filtered(*, user: Any, filters: dict[str, Any]) -> QuerySet[WithdrawalRequest]:
    qs = withdrawals_visible_to(user=user)
    if filters.get("venue"):
        qs = qs.filter(venue_id=filters["venue"].pk)
    if filters.get("state"):
        qs = qs.filter(state=filters["state"])
    if filters.get("asset"):
        qs = qs.filter(asset__iexact=filters["asset"])
    if filters.get("q"):
        q = filters["q"]
        qs = qs.filter(
            Q(address__icontains=q) | Q(venue_reference__icontains=q) | Q(note__icontains=q)
        )
    if filters.get("user"):
        # The requester's id first, so PostgreSQL plans with a value it has statistics for
        # (a join, or a subquery's parameter, made it walk every withdrawal for an unknown name)
        # and an unknown name costs no walk at all.
        users = get_user_model().objects.filter(username=filters["user"])
        requester = users.values_list("pk", flat=True).first()
        qs = qs.filter(requested_by_id=requester) if requester else qs.none()
    if filters.get("amount_min") is not None:
        qs = qs.filter(amount__gte=filters["amount_min"])
    if filters.get("amount_max") is not None:
        qs = qs.filter(amount__lte=filters["amount_max"])
    if flag := filters.get("red_flag"):
        approvals = Approval.objects.filter(
            Q(rubber_stamp=True) if flag == Flag.RUBBER_STAMP else Q(red_flags__contains=flag)
        )
        qs = qs.filter(pk__in=approvals.values("withdrawal_id"))
    qs = qs.filter(
        **date_range_q("created_at", since=filters.get("since"), until=filters.get("until"))
    )
    return qs.order_by("-created_at", "-id")


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One line of the history table, every value already as the page shows it: the table
    renders plain lookups, no filter, tag or model method per row."""

    pk: int
    url: str
    created: str
    requester: str
    venue: str
    amount: str
    asset: str
    to: str
    state: str
    state_label: str


_HISTORY_COLUMNS = (*_ROW_COLUMNS, "state")
_STATE_LABELS = dict(State.choices)


def _history_rows(values: list[tuple[Any, ...]]) -> list[HistoryRow]:
    # One reverse() and one time zone for the page: per row they cost more than the query.
    url = url_for_each("withdrawals:detail")
    zone = timezone.get_current_timezone()
    return [
        HistoryRow(
            pk=pk,
            url=url(pk),
            created=created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            requester=requester,
            venue=venue,
            amount=amount_text(amount),
            asset=asset,
            to=to or "",
            state=state,
            state_label=_STATE_LABELS.get(state, state),
        )
        for pk, created_at, requester, venue, amount, asset, to, state in values
    ]


def withdrawal_history_query(
    *, user: Any, filters: dict[str, Any], size: int = PAGE_SIZE
) -> QuerySet[WithdrawalRequest]:
    """The one query of a history page: ``size`` rows and one more (is there an older page?),
    newest first, by keyset (no OFFSET, no COUNT(*)); ``before`` is the id of the last row of
    the previous page.

    Without a date range the page walks ids, the order the venue, state, asset and requester
    indexes keep. With one it walks (created_at, id): the range and the order are then one
    stretch of that index, where walking ids would read and discard every newer row first.
    Both orders agree, as created_at is stamped at insert."""
    qs = withdrawals_filtered(user=user, filters=filters)
    before = filters.get("before")
    if filters.get("since") or filters.get("until"):
        if before:
            cursor_time = (
                WithdrawalRequest.objects.filter(pk=before).order_by().values("created_at")
            )
            qs = qs.filter(
                LessThan(
                    Tuple(F("created_at"), F("id")),
                    Tuple(Subquery(cursor_time), Value(before)),
                )
            )
        qs = qs.order_by("-created_at", "-id")
    else:
        if before:
            qs = qs.filter(id__lt=before)
        qs = qs.order_by("-id")
    return qs.values_list(*_HISTORY_COLUMNS)[: size + 1]


def withdrawal_history_page(
    *, user: Any, filters: dict[str, Any], size: int = PAGE_SIZE
) -> tuple[list[HistoryRow], int | None]:
    """One page of the history and the cursor of the next (None on the last page)."""
    rows = _history_rows(list(withdrawal_history_query(user=user, filters=filters, size=size)))
    next_before = rows[size - 1].pk if len(rows) > size else None
    return rows[:size], next_before


def withdrawal_timeline(*, withdrawal: WithdrawalRequest) -> QuerySet[AuditEvent]:
    return audit_events_for(target=withdrawal).order_by("seq")


# How many of the latest venue exchanges the "Needs attention" queue shows per withdrawal.
ATTENTION_EVIDENCE = 6


def _attention_rows() -> QuerySet[WithdrawalRequest]:
    return WithdrawalRequest.objects.select_related(
        "venue", "requested_by", "whitelisted_address"
    ).prefetch_related(
        "attempts",
        Prefetch("duplicates", queryset=DuplicatePayment.objects.order_by("detected_at")),
        Prefetch(
            "resolutions",
            queryset=Resolution.objects.select_related("proposed_by", "decided_by"),
        ),
    )


def _annotate(withdrawal: WithdrawalRequest, *, now: Any) -> WithdrawalRequest:
    withdrawal.unsettled = rules.withdrawal_is_unsettled(withdrawal, now=now)
    withdrawal.open_duplicates = [d for d in withdrawal.duplicates.all() if not d.acknowledged_at]
    withdrawal.open_resolution = next(
        (r for r in withdrawal.resolutions.all() if r.status == Resolution.Status.PROPOSED), None
    )
    withdrawal.evidence = list(
        VenueExchange.objects.filter(withdrawal=withdrawal).order_by("-started_at", "-id")[
            :ATTENTION_EVIDENCE
        ]
    )
    return withdrawal


def attention_queue() -> list[WithdrawalRequest]:
    """Everything people must settle: unknown outcomes, submissions past their lease, and
    withdrawals with a duplicate payment nobody has taken in hand yet. Oldest first."""
    now = timezone.now()
    open_duplicates = DuplicatePayment.objects.filter(acknowledged_at__isnull=True)
    candidates = _attention_rows().filter(
        Q(state=State.OUTCOME_UNKNOWN)
        | Q(state=State.SUBMITTING, submit_deadline_at__lt=now)
        | Q(pk__in=open_duplicates.values("withdrawal_id"))
    )
    queue = [_annotate(w, now=now) for w in candidates.order_by("updated_at", "id")]
    return [w for w in queue if w.unsettled or w.open_duplicates]


def attention_item(*, pk: int) -> WithdrawalRequest:
    """One withdrawal as the queue shows it (settled or not: after a decision it stays in view)."""
    return _annotate(_attention_rows().get(pk=pk), now=timezone.now())
