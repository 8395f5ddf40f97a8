from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.roles import WHITELIST_ADMIN, has_role
from audit.models import AuditEvent
from audit.selectors import audit_events_for

from .models import AddressState, WhitelistedAddress
from .validators import CASE_INSENSITIVE, address_canonical, looks_alike, network_family

LIVE_STATES = (AddressState.PROPOSED, AddressState.COOLING_OFF, AddressState.ACTIVE)


def active_addresses_for(*, venue: Any) -> QuerySet[WhitelistedAddress]:
    return WhitelistedAddress.objects.filter(venue=venue, state=AddressState.ACTIVE).order_by(
        "asset", "label"
    )


def addresses_all() -> QuerySet[WhitelistedAddress]:
    """The whole whitelist, by venue and asset (the template groups on these)."""
    return WhitelistedAddress.objects.select_related(
        "venue", "proposed_by", "approved_by", "ended_by"
    ).order_by("venue__name", "asset", "label", "id")


def address_get(*, pk: int) -> WhitelistedAddress:
    return addresses_all().get(pk=pk)


def pending_approval_for(*, user: Any) -> QuerySet[WhitelistedAddress]:
    """Proposals this user may approve: whitelist admins, never their own proposals."""
    if not has_role(user, WHITELIST_ADMIN):
        return WhitelistedAddress.objects.none()
    return (
        addresses_all()
        .filter(state=AddressState.PROPOSED)
        .exclude(proposed_by=user)
        .order_by("created_at", "id")
    )


def addresses_with_drift() -> QuerySet[WhitelistedAddress]:
    return addresses_all().filter(state__in=LIVE_STATES).exclude(drift_detail="")


def address_history(*, address: WhitelistedAddress) -> QuerySet[AuditEvent]:
    return audit_events_for(target=address).order_by("seq")


def duplicates_of(
    *, venue_id: int, asset: str, network: str, address: str
) -> QuerySet[WhitelistedAddress]:
    """Live entries for the same venue, asset, network and address (any memo)."""
    qs = WhitelistedAddress.objects.filter(
        venue_id=venue_id, asset=asset, network__iexact=network, state__in=LIVE_STATES
    )
    canonical = address_canonical(network=network, address=address)
    if network_family(network) in CASE_INSENSITIVE or canonical != address:
        return qs.filter(address__iexact=address)
    return qs.filter(address=address)


def lookalikes_of(*, address: str, exclude_pk: int | None = None) -> list[WhitelistedAddress]:
    """Every address on the whitelist (any venue, any state) that shares the first 4 and last
    4 characters with ``address`` without being it."""
    if len(address) < 8:
        return []
    candidates = WhitelistedAddress.objects.select_related("venue").filter(
        address__istartswith=address[:4], address__iendswith=address[-4:]
    )
    if exclude_pk is not None:
        candidates = candidates.exclude(pk=exclude_pk)
    return [c for c in candidates.order_by("id") if looks_alike(c.address, address)]
