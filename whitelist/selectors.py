from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import AddressState, WhitelistedAddress


def active_addresses_for(*, venue: Any) -> QuerySet[WhitelistedAddress]:
    return WhitelistedAddress.objects.filter(venue=venue, state=AddressState.ACTIVE).order_by(
        "asset", "label"
    )
