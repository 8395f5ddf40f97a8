"""May this user see or change the policy and prices now? Pure functions over loaded objects,
used by the services (to refuse), the views and the templates (to show or hide)."""

from __future__ import annotations

from typing import Any

from accounts.roles import ROLES, WHITELIST_ADMIN, has_role

from .models import Proposal, ProposalState


def may_view_policy(user: Any) -> bool:
    """Everyone with a role: requesters and approvers should know the rules they work under."""
    return any(has_role(user, role) for role in ROLES)


def may_propose(user: Any) -> bool:
    return has_role(user, WHITELIST_ADMIN)


def proposal_approve_refusal(user: Any, proposal: Proposal) -> str:
    if not has_role(user, WHITELIST_ADMIN):
        return "Only whitelist admins approve policy and price changes."
    if proposal.state != ProposalState.PROPOSED:
        return f"This proposal is already {proposal.get_state_display().lower()}."
    if proposal.proposed_by_id == user.pk:
        return "You proposed this change: a second whitelist admin must approve it."
    return ""


def proposal_decline_refusal(user: Any, proposal: Proposal) -> str:
    """Any whitelist admin, the proposer included: declining gives nobody power."""
    if not has_role(user, WHITELIST_ADMIN):
        return "Only whitelist admins decline policy and price changes."
    if proposal.state != ProposalState.PROPOSED:
        return f"This proposal is already {proposal.get_state_display().lower()}."
    return ""
