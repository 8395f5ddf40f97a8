from django.db.models import QuerySet

from .models import Venue, VenueChange, VenueChangeState


def venues_all() -> QuerySet[Venue]:
    return Venue.objects.order_by("name")


def venue_changes_open() -> QuerySet[VenueChange]:
    return VenueChange.objects.filter(state=VenueChangeState.PROPOSED).select_related(
        "venue", "proposed_by"
    )


def venue_changes_recent(limit: int = 20) -> QuerySet[VenueChange]:
    return (
        VenueChange.objects.exclude(state=VenueChangeState.PROPOSED)
        .select_related("venue", "proposed_by", "approved_by", "rejected_by")
        .order_by("-decided_at", "-id")[:limit]
    )
