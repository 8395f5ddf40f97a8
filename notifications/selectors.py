"""Reads: who is told, what waits for a person, their channel choices, their sent messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import AccessChange, ChangeState
from accounts.roles import APPROVER, AUDITOR, USER_ADMIN, WHITELIST_ADMIN, has_role
from venues.models import VenueChange, VenueChangeState
from whitelist.models import AddressState, WhitelistedAddress
from withdrawals import rules as withdrawal_rules
from withdrawals.models import DuplicatePayment, State, WithdrawalRequest
from withdrawals.selectors import approval_queue_for

from .models import Channel, Delivery, DeliveryStatus, Kind, Preference

# Kinds nobody may switch off: a change to one's own access, a broken audit chain, money paid
# twice. Their email goes out whatever the preference says.
SECURITY_KINDS = frozenset({Kind.MY_ACCESS_CHANGED, Kind.CHAIN_BROKEN, Kind.DUPLICATE})


def users_with_roles(*roles: str) -> QuerySet[Any]:
    """Active people holding any of ``roles``."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=roles)
        .distinct()
        .order_by("pk")
    )


@dataclass(frozen=True)
class Choice:
    kind: str
    label: str
    email: bool
    webhook: bool
    locked: bool


def preferences_for(*, user: Any) -> list[Choice]:
    """Every kind with this person's channels; security kinds always carry email."""
    saved = {p.kind: p for p in Preference.objects.filter(user=user)}
    choices = []
    for kind in Kind:
        pref = saved.get(kind.value)
        locked = kind in SECURITY_KINDS
        choices.append(
            Choice(
                kind=kind.value,
                label=kind.label,
                email=True if locked else (pref.email if pref else True),
                webhook=pref.webhook if pref else False,
                locked=locked,
            )
        )
    return choices


def channels_for(*, users: list[Any], kind: str) -> dict[int, set[str]]:
    """user id -> the channels that person chose for ``kind`` (one query for all of them)."""
    saved = {
        p.user_id: p for p in Preference.objects.filter(user__in=[u.pk for u in users], kind=kind)
    }
    result: dict[int, set[str]] = {}
    for user in users:
        pref = saved.get(user.pk)
        channels = set()
        if kind in SECURITY_KINDS or pref is None or pref.email:
            channels.add(Channel.EMAIL.value)
        if pref is not None and pref.webhook:
            channels.add(Channel.WEBHOOK.value)
        result[user.pk] = channels
    return result


@dataclass(frozen=True)
class Waiting:
    approvals: int = 0
    whitelist: int = 0
    venue_changes: int = 0
    access_changes: int = 0
    attention: int = 0

    @property
    def total(self) -> int:
        return (
            self.approvals
            + self.whitelist
            + self.venue_changes
            + self.access_changes
            + self.attention
        )


def unsettled_withdrawals() -> QuerySet[WithdrawalRequest]:
    """What the "Needs attention" queue lists, as one query: unknown outcomes, submissions past
    their lease, withdrawals with a duplicate nobody has taken in hand."""
    now = timezone.now()
    # lease_expiry(deadline) <= now, solved for the deadline.
    lease_cutoff = now - (withdrawal_rules.lease_expiry(now) - now)
    open_duplicates = DuplicatePayment.objects.filter(acknowledged_at__isnull=True)
    return WithdrawalRequest.objects.filter(
        Q(state=State.OUTCOME_UNKNOWN)
        | Q(state=State.SUBMITTING, submit_deadline_at__isnull=True)
        | Q(state=State.SUBMITTING, submit_deadline_at__lte=lease_cutoff)
        | Q(pk__in=open_duplicates.values("withdrawal_id"))
    )


def waiting_for(*, user: Any) -> Waiting:
    """What waits for this person's act: approvals they may give, proposals a second admin must
    decide, withdrawals they may settle. Never their own requests or proposals."""
    if not getattr(user, "is_authenticated", False):
        return Waiting()
    whitelist = venue_changes = access_changes = attention = 0
    if has_role(user, WHITELIST_ADMIN):
        whitelist = (
            WhitelistedAddress.objects.filter(state=AddressState.PROPOSED)
            .exclude(proposed_by=user)
            .count()
        )
        venue_changes = (
            VenueChange.objects.filter(state=VenueChangeState.PROPOSED)
            .exclude(proposed_by=user)
            .count()
        )
    if has_role(user, USER_ADMIN):
        access_changes = (
            AccessChange.objects.filter(state=ChangeState.PROPOSED)
            .exclude(proposed_by=user)
            .exclude(subject=user)
            .count()
        )
    if withdrawal_rules.may_settle(user):
        attention = unsettled_withdrawals().exclude(requested_by=user).count()
    return Waiting(
        approvals=approval_queue_for(user=user).count(),
        whitelist=whitelist,
        venue_changes=venue_changes,
        access_changes=access_changes,
        attention=attention,
    )


def sent_emails_for(*, user: Any, limit: int = 50) -> list[Delivery]:
    """The latest email deliveries to this person (the demo's "sent messages" page)."""
    return list(
        Delivery.objects.filter(channel=Channel.EMAIL, user=user, status=DeliveryStatus.SENT)
        .select_related("notification")
        .order_by("-sent_at", "-id")[:limit]
    )


def overseers() -> QuerySet[Any]:
    """Whitelist admins, user admins and auditors: told of every change to the rules."""
    return users_with_roles(WHITELIST_ADMIN, USER_ADMIN, AUDITOR)


def settlers() -> QuerySet[Any]:
    """Approvers and whitelist admins: those who may settle what reconciliation cannot."""
    return users_with_roles(APPROVER, WHITELIST_ADMIN)
