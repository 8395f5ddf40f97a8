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

from . import policy
from .models import DuplicatePayment, Resolution, State, WithdrawalRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Beyond the deadline, an attempt may still read its last answer for one HTTP timeout; hosts'
# clocks differ by a little.
LEASE_CLOCK_MARGIN_SECONDS = 5.0


def lease_expiry(deadline: datetime) -> datetime:
    """When an attempt with this deadline is certainly over (derived, never configured)."""
    return deadline + timedelta(seconds=settings.VENUE_HTTP_TIMEOUT + LEASE_CLOCK_MARGIN_SECONDS)


# The venue holds the withdrawal (or is about to): only these states change without anyone on
# the page acting, so only these are polled.
VENUE_HOLDS = frozenset({State.APPROVED, State.SUBMITTING, State.SUBMITTED, State.OUTCOME_UNKNOWN})
CANCELLABLE = frozenset({State.PENDING_APPROVAL, State.APPROVED})


def withdrawal_is_polled(withdrawal: WithdrawalRequest) -> bool:
    return withdrawal.state in VENUE_HOLDS


def approvals_required(withdrawal: WithdrawalRequest) -> int:
    """How many distinct approvers this withdrawal needs: the quorum of the policy rule recorded
    when it was requested."""
    return withdrawal.approval_quorum


def approvals_given(withdrawal: WithdrawalRequest) -> int:
    """The distinct people behind the live approvals, as the quorum counts them."""
    return len(policy.approvers_of(policy.live_approvals(withdrawal)))


def pending_expires_at(withdrawal: WithdrawalRequest) -> datetime:
    """When a request nobody approved expires (withdrawals_expire_stale): the policy rule's
    expiry recorded at request time, else the deployment's default for older rows."""
    if withdrawal.expires_at is not None:
        return withdrawal.expires_at
    return withdrawal.created_at + timedelta(hours=settings.WITHDRAWAL_EXPIRY_HOURS)


def _not_pending(withdrawal: WithdrawalRequest) -> str:
    if withdrawal.state == State.PENDING_APPROVAL:
        return ""
    return f"This withdrawal is {withdrawal.get_state_display().lower()}, not pending approval."


def decide_refusal(user: User, withdrawal: WithdrawalRequest) -> str:
    """May ``user`` decide on this withdrawal at all (the approve panel)? Approving itself may
    still be refused (``approve_refusal``); rejecting follows ``reject_refusal``."""
    if not has_role(user, APPROVER):
        return "You need the approver role to approve or reject a withdrawal."
    if withdrawal.requested_by_id == user.pk:
        return "You cannot approve a withdrawal you requested."
    return _not_pending(withdrawal)


def approve_refusal(user: User, withdrawal: WithdrawalRequest) -> str:
    refusal = decide_refusal(user, withdrawal)
    if refusal:
        return refusal
    if withdrawal.approvals.filter(approver=user, voided=False).exists():
        return (
            "You have already approved this withdrawal. Another approver must give the next "
            "approval."
        )
    address = withdrawal.whitelisted_address
    if user.pk in {address.proposed_by_id, address.approved_by_id} and not (
        WithdrawalRequest.objects.filter(whitelisted_address=address, submitted_at__isnull=False)
        .exclude(pk=withdrawal.pk)
        .exists()
    ):
        # Whoever whitelisted an address must not also release the first payment to it.
        return (
            "You proposed or approved this destination on the whitelist, so you cannot approve "
            "the first withdrawal to it. Another approver must."
        )
    return policy.approval_refusal(withdrawal, user)


def reject_refusal(user: User, withdrawal: WithdrawalRequest) -> str:
    if not has_role(user, APPROVER):
        return "You need the approver role to approve or reject a withdrawal."
    if withdrawal.requested_by_id == user.pk:
        return "Cancel your own withdrawal instead of rejecting it."
    if withdrawal.state != State.PENDING_APPROVAL:
        return "Only a withdrawal pending approval can be rejected."
    return ""


def cancel_refusal(user: User, withdrawal: WithdrawalRequest) -> str:
    if withdrawal.requested_by_id != user.pk:
        return "Only the requester can cancel a withdrawal."
    if withdrawal.state not in CANCELLABLE:
        return "It is too late to cancel: the withdrawal was already sent."
    return ""


def requote_refusal(user: User, withdrawal: WithdrawalRequest) -> str:
    if withdrawal.requested_by_id != user.pk:
        return "Only the requester can re-quote a withdrawal."
    if withdrawal.state != State.PENDING_APPROVAL:
        return "Only a withdrawal pending approval can be re-quoted."
    return ""


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
