"""Reads for withdrawal pages."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from accounts.roles import APPROVER, AUDITOR, has_role
from audit.models import AuditEvent
from audit.selectors import audit_events_for, date_range_q

from . import rules
from .models import DuplicatePayment, Resolution, State, VenueExchange, WithdrawalRequest

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
    qs = qs.filter(
        **date_range_q("created_at", since=filters.get("since"), until=filters.get("until"))
    )
    return qs.order_by("-created_at", "-id")


def withdrawal_page(
    *, qs: QuerySet[WithdrawalRequest], before: int | None, size: int = PAGE_SIZE
) -> tuple[list[WithdrawalRequest], int | None]:
    """Keyset pagination on id (newest first): no OFFSET, no COUNT(*)."""
    if before:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: size + 1])
    next_before = rows[size - 1].id if len(rows) > size else None
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
