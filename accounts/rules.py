"""May this user do X to this person or proposal now? Pure functions over loaded objects, used
by services (to refuse) and by views and templates (to show or hide)."""

from __future__ import annotations

from typing import Any

from .models import AccessChange, ChangeState
from .roles import AUDITOR, USER_ADMIN, has_role


def may_manage_people(user: Any) -> bool:
    return has_role(user, USER_ADMIN)


def may_review_access(user: Any) -> bool:
    """Auditors review who may do what; user admins see the same page for their own work."""
    return has_role(user, AUDITOR) or has_role(user, USER_ADMIN)


def may_approve_change(user: Any, change: AccessChange) -> bool:
    """A second user admin: not the proposer, and never about their own access."""
    return (
        may_manage_people(user)
        and change.state == ChangeState.PROPOSED
        and change.proposed_by_id != user.pk
        and change.subject_id != user.pk
    )


def may_reject_change(user: Any, change: AccessChange) -> bool:
    """Any user admin may stop a proposal, the proposer included: rejecting grants no power."""
    return may_manage_people(user) and change.state == ChangeState.PROPOSED


def may_deactivate(user: Any, subject: Any) -> bool:
    """One step, no second person: it only removes power. Not oneself, so the last user admin
    cannot lock everyone out by a slip."""
    return may_manage_people(user) and subject.is_active and subject.pk != user.pk


def may_issue_enrolment_link(user: Any, subject: Any, *, has_device: bool) -> bool:
    """Only for someone without an authenticator: a device is replaced through a reset."""
    return may_manage_people(user) and subject.is_active and not has_device
