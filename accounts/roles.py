"""The roles of DESIGN.md, as Django groups, and the permissions each grants."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied

REQUESTER = "requester"
APPROVER = "approver"
WHITELIST_ADMIN = "whitelist_admin"
AUDITOR = "auditor"
USER_ADMIN = "user_admin"
# Grants no permission by itself: a policy rule may require one approver to hold it.
TREASURY_LEAD = "treasury_lead"
ROLES = (REQUESTER, APPROVER, WHITELIST_ADMIN, AUDITOR, USER_ADMIN, TREASURY_LEAD)

# group -> "app_label.codename" permissions. The four-eyes rules bind the act, not the role:
# holding both requester and approver never lets anyone approve their own withdrawal.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    REQUESTER: ("withdrawals.request_withdrawal",),
    APPROVER: ("withdrawals.approve_withdrawal",),
    WHITELIST_ADMIN: ("whitelist.govern_address", "venues.manage_venue"),
    AUDITOR: ("audit.view_everything", "whitelist.veto_address"),
    USER_ADMIN: ("accounts.manage_people",),
    TREASURY_LEAD: (),
}


def role_label(role: str) -> str:
    return role.replace("_", " ")


def require_role(user: Any, *roles: str, message: str = "") -> None:
    """Raise PermissionDenied unless ``user`` holds at least one of ``roles``."""
    if not any(has_role(user, role) for role in roles):
        names = " or ".join(role_label(role) for role in roles)
        raise PermissionDenied(message or f"You need the {names} role for this.")


def roles_remember(user: Any, names: Iterable[str]) -> None:
    """Keep ``user``'s roles on the object for the rest of its request, as read with it."""
    user._countersign_roles = frozenset(name for name in names if name)


def has_role(user: Any, role: str) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    cached = getattr(user, "_countersign_roles", None)
    if cached is None:
        roles_remember(user, user.groups.values_list("name", flat=True))
        cached = user._countersign_roles
    return role in cached
