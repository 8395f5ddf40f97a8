from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from accounts.roles import WHITELIST_ADMIN, has_role
from audit.models import AuditEvent
from audit.selectors import audit_events_for
from venues.registry import KINDS, client_class

from .models import AddressState, WhitelistedAddress
from .validators import (
    CASE_INSENSITIVE,
    address_canonical,
    differing_positions,
    looks_alike,
    network_family,
)

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


# The orders the whitelist page offers: a name from the query string maps to fields here, and
# nothing else reaches order_by.
SORTS: dict[str, tuple[str, ...]] = {
    "label": ("label", "venue__name", "id"),
    "venue": ("venue__name", "asset", "label", "id"),
    "asset": ("asset", "network", "venue__name", "label", "id"),
    "state": ("state", "venue__name", "label", "id"),
    "created": ("created_at", "id"),
}
DEFAULT_SORT = "venue"


def sort_parse(value: str) -> tuple[str, bool]:
    """``"-created"`` -> ("created", True). Anything unknown is the default order."""
    value = (value or "").strip()
    descending = value.startswith("-")
    key = value.removeprefix("-")
    if key not in SORTS:
        return DEFAULT_SORT, False
    return key, descending


def addresses_search(
    *, q: str = "", sort: str = DEFAULT_SORT, descending: bool = False
) -> QuerySet[WhitelistedAddress]:
    """The whitelist filtered by ``q`` (any word in label, address or network) and ordered by
    one of SORTS."""
    qs = addresses_all()
    for word in q.split()[:8]:
        qs = qs.filter(
            Q(label__icontains=word) | Q(address__icontains=word) | Q(network__icontains=word)
        )
    fields = SORTS.get(sort, SORTS[DEFAULT_SORT])
    if descending:
        fields = tuple(f"-{f}" for f in fields)
    return qs.order_by(*fields)


def lookalike_marks(*, addresses: list[WhitelistedAddress]) -> dict[int, frozenset[int]]:
    """For each of ``addresses`` that looks like another whitelisted address (any venue, any
    state), the positions of the characters that differ: the page marks them."""
    keys = {(a.address[:4].lower(), a.address[-4:].lower()) for a in addresses}
    if not keys:
        return {}
    prefix = Q()
    for start, _end in keys:
        prefix |= Q(address__istartswith=start)
    others = [
        (pk, other)
        for pk, other in WhitelistedAddress.objects.filter(prefix).values_list("pk", "address")
        if (other[:4].lower(), other[-4:].lower()) in keys
    ]
    marks: dict[int, frozenset[int]] = {}
    for a in addresses:
        positions: set[int] = set()
        for pk, other in others:
            if pk != a.pk and looks_alike(a.address, other):
                positions |= differing_positions(a.address, other)
        if positions:
            marks[a.pk] = frozenset(positions)
    return marks


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


def venue_keeps_address_book(*, venue: Any) -> bool:
    """Whether the venue lists saved addresses we can compare with (Kraken, Kraken Embed).
    Elsewhere a venue check has nothing to compare, and "matches" would claim a check that
    never happened."""
    return client_class(venue.kind).supports_saved_addresses


def addresses_checkable_at_venue() -> QuerySet[WhitelistedAddress]:
    """Live addresses at venues that keep an address book: the only ones a check can compare."""
    kinds = [kind for kind in KINDS if client_class(kind).supports_saved_addresses]
    return WhitelistedAddress.objects.filter(state__in=LIVE_STATES, venue__kind__in=kinds)


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


def label_taken(*, venue_id: int, label: str) -> bool:
    """Whether a live address at this venue already carries ``label`` (case ignored): a label
    names one address, so a requester never picks the wrong one of two "Payroll"s."""
    return WhitelistedAddress.objects.filter(
        venue_id=venue_id, label__iexact=label.strip(), state__in=LIVE_STATES
    ).exists()


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
