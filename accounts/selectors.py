"""Reads for the people page and the auditors' access review. A fixed number of queries per
page, whatever the number of people."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.actions import AuditAction
from audit.models import AuditEvent

from .models import AccessChange, ChangeKind, ChangeState, Invitation
from .roles import ROLES

# Audit actions that record a person approving something (a withdrawal, an address, a change
# to someone's access). The trail is the one place all of them meet.
APPROVAL_ACTIONS = (
    AuditAction.WITHDRAWAL_APPROVAL_ADDED,
    AuditAction.WITHDRAWAL_APPROVED,
    AuditAction.WHITELIST_APPROVED,
    AuditAction.PEOPLE_ROLE_GRANTED,
    AuditAction.PEOPLE_ROLE_REMOVED,
    AuditAction.PEOPLE_DEVICE_RESET,
)


@dataclass
class RoleHeld:
    role: str
    since: datetime | None = None  # None: granted before changes were recorded in the app
    granted_by: str = ""


@dataclass
class PersonRow:
    user: Any
    roles: list[RoleHeld] = field(default_factory=list)
    device_enrolled_at: datetime | None = None
    recovery_codes_left: int = 0
    open_link_expires_at: datetime | None = None
    last_sign_in: datetime | None = None
    last_approval: datetime | None = None

    @property
    def has_device(self) -> bool:
        return self.device_enrolled_at is not None


def _latest_event_at(actions: tuple[str, ...]) -> Subquery:
    # Per person, newest first along the (actor, seq) index: stops at the first match however
    # long the trail is, instead of grouping every such event of everyone.
    return Subquery(
        AuditEvent.objects.filter(actor=OuterRef("pk"), action__in=actions)
        .order_by("-seq")
        .values("created_at")[:1]
    )


def people_rows(*, with_activity: bool = False) -> list[PersonRow]:
    """Every person with roles (since when, granted by whom), device and open link; with
    ``with_activity`` also the last sign-in and last approval from the audit trail."""
    people = get_user_model().objects.order_by("username").prefetch_related("groups")
    if with_activity:
        people = people.annotate(
            last_sign_in=_latest_event_at((AuditAction.AUTH_SIGNED_IN,)),
            last_approval=_latest_event_at(APPROVAL_ACTIONS),
        )
    users = list(people)
    rows = {
        u.pk: PersonRow(
            user=u,
            last_sign_in=getattr(u, "last_sign_in", None),
            last_approval=getattr(u, "last_approval", None),
        )
        for u in users
    }

    grants: dict[tuple[int, str], AccessChange] = {}
    approved_grants = (
        AccessChange.objects.filter(kind=ChangeKind.GRANT, state=ChangeState.APPROVED)
        .select_related("decided_by", "proposed_by")
        .order_by("decided_at")
    )
    for change in approved_grants:
        grants[(change.subject_id, change.role)] = change  # the latest grant wins
    for user in users:
        for name in sorted(g.name for g in user.groups.all()):
            grant = grants.get((user.pk, name))
            rows[user.pk].roles.append(
                RoleHeld(
                    role=name,
                    since=grant.decided_at if grant else None,
                    granted_by=f"{grant.proposed_by} + {grant.decided_by}" if grant else "",
                )
            )

    for device in TOTPDevice.objects.filter(confirmed=True).values("user_id", "created_at"):
        row = rows.get(device["user_id"])
        if row is not None and (
            row.device_enrolled_at is None or device["created_at"] < row.device_enrolled_at
        ):
            row.device_enrolled_at = device["created_at"]
    left = StaticToken.objects.values("device__user_id").annotate(n=Count("id"))
    for item in left:
        if item["device__user_id"] in rows:
            rows[item["device__user_id"]].recovery_codes_left = item["n"]
    for invitation in Invitation.objects.filter(
        used_at__isnull=True, voided_at__isnull=True, expires_at__gt=timezone.now()
    ).values("user_id", "expires_at"):
        if invitation["user_id"] in rows:
            rows[invitation["user_id"]].open_link_expires_at = invitation["expires_at"]
    return list(rows.values())


def access_changes_open() -> list[AccessChange]:
    return list(
        AccessChange.objects.filter(state=ChangeState.PROPOSED).select_related(
            "subject", "proposed_by"
        )
    )


def access_changes_recent(*, limit: int = 20) -> list[AccessChange]:
    return list(
        AccessChange.objects.exclude(state=ChangeState.PROPOSED).select_related(
            "subject", "proposed_by", "decided_by"
        )[:limit]
    )


def role_choices() -> list[tuple[str, str]]:
    return [(role, role.replace("_", " ")) for role in ROLES]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_open_get(*, token: str) -> Invitation | None:
    """The link's invitation while it can still be used, else None (unknown, used, voided,
    expired or the person deactivated: the page says the same for all of them)."""
    invitation = (
        Invitation.objects.select_related("user").filter(token_hash=token_hash(token or "")).first()
    )
    if (
        invitation is None
        or invitation.used_at is not None
        or invitation.voided_at is not None
        or invitation.expires_at <= timezone.now()
        or not invitation.user.is_active
    ):
        return None
    return invitation


def person_get(*, pk: int) -> Any:
    return get_user_model().objects.get(pk=pk)


def access_change_get(*, pk: int) -> AccessChange | None:
    return AccessChange.objects.select_related("subject", "proposed_by").filter(pk=pk).first()
