"""A withdrawal's venue evidence: every exchange with the venue about it, credentials redacted
(captured by audit.exchanges.ExchangeRecorder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .models import VenueExchange


def venue_exchanges_record(
    *, withdrawal_id: int, purpose: str, exchanges: Sequence[dict[str, Any]]
) -> None:
    """Store the redacted request/response pairs of one client's life for one withdrawal."""
    VenueExchange.objects.bulk_create(
        VenueExchange(withdrawal_id=withdrawal_id, purpose=purpose, **exchange)
        for exchange in exchanges
    )
