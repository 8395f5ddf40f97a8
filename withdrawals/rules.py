"""May this person do this to this withdrawal now? Pure answers, shared by the services (to
refuse), the views and the templates (to show or hide the button).

Each ``*_refusal`` function returns "" when the act is allowed, else the reason, in words the
person can act on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings

from accounts.roles import APPROVER, WHITELIST_ADMIN, has_role

from .models import DuplicatePayment, Resolution, State, WithdrawalRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Beyond the deadline, an attempt may still read its last answer for one HTTP timeout; hosts'
# clocks differ by a little.
LEASE_CLOCK_MARGIN_SECONDS = 5.0


def lease_expiry(deadline: datetime) -> datetime:
    """When an attempt with this deadline is certainly over (derived, never configured)."""
    return deadline + timedelta(seconds=settings.VENUE_HTTP_TIMEOUT + LEASE_CLOCK_MARGIN_SECONDS)


def withdrawal_is_unsettled(withdrawal: WithdrawalRequest, *, now: datetime) -> bool:
    """Nobody knows whether the venue has it: an unknown outcome, or an attempt past its lease."""
    if withdrawal.state == State.OUTCOME_UNKNOWN:
        return True
    deadline = withdrawal.submit_deadline_at
    return withdrawal.state == State.SUBMITTING and (
        deadline is None or lease_expiry(deadline) <= now
    )


def may_settle(user: Any) -> bool:
    """Approvers and whitelist admins settle what reconciliation cannot."""
    return has_role(user, APPROVER) or has_role(user, WHITELIST_ADMIN)


def resolution_propose_refusal(user: User, withdrawal: WithdrawalRequest, *, now: datetime) -> str:
    if not may_settle(user):
        return "You need the approver or whitelist admin role to settle a withdrawal."
    if withdrawal.requested_by_id == user.pk:
        return "You requested this withdrawal, so you cannot settle it."
    if not withdrawal_is_unsettled(withdrawal, now=now):
        return f"This withdrawal is {withdrawal.get_state_display().lower()}: nothing to settle."
    if withdrawal.resolutions.filter(status=Resolution.Status.PROPOSED).exists():
        return "A finding for this withdrawal is already waiting for a second person."
    return ""


def resolution_confirm_refusal(user: User, resolution: Resolution, *, now: datetime) -> str:
    withdrawal = resolution.withdrawal
    if not may_settle(user):
        return "You need the approver or whitelist admin role to settle a withdrawal."
    if resolution.status != Resolution.Status.PROPOSED:
        return "This finding was already decided."
    if resolution.proposed_by_id == user.pk:
        return "You recorded this finding: a second person must confirm it."
    if withdrawal.requested_by_id == user.pk:
        return "You requested this withdrawal, so you cannot settle it."
    if not withdrawal_is_unsettled(withdrawal, now=now):
        return f"This withdrawal is {withdrawal.get_state_display().lower()}: nothing to settle."
    return ""


def resolution_decline_refusal(user: User, resolution: Resolution) -> str:
    if not may_settle(user):
        return "You need the approver or whitelist admin role to settle a withdrawal."
    if resolution.status != Resolution.Status.PROPOSED:
        return "This finding was already decided."
    return ""


def duplicate_acknowledge_refusal(user: User, duplicate: DuplicatePayment) -> str:
    if not may_settle(user):
        return "You need the approver or whitelist admin role for this."
    if duplicate.acknowledged_at is not None:
        return "Someone already took this duplicate in hand."
    return ""
