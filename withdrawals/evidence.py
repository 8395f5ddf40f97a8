"""A withdrawal's venue evidence: every exchange with the venue about it, credentials redacted
(captured by audit.exchanges.ExchangeRecorder).

Submissions and reconciliations are kept in full. Status polls are kept while recent; past
``EVIDENCE_POLL_RETENTION_DAYS`` a poll whose answer repeats the one before it (same withdrawal,
same request, same answer) is dropped, so what stays is every change the venue reported. The
application role cannot delete evidence (audit.db_roles): compaction runs on the owner role's
connection, ``EVIDENCE_COMPACT_DATABASE`` (see docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import ProgrammingError
from django.db.models import F, Window
from django.db.models.functions import Lag
from django.utils import timezone

from .models import VenueExchange

STATUS = "status"
_BATCH = 2000


class CompactionRefused(Exception):
    """The connection may not delete evidence: it is the application role's."""


def venue_exchanges_record(
    *, withdrawal_id: int, purpose: str, exchanges: Sequence[dict[str, Any]]
) -> None:
    """Store the redacted request/response pairs of one client's life for one withdrawal."""
    VenueExchange.objects.bulk_create(
        VenueExchange(withdrawal_id=withdrawal_id, purpose=purpose, **exchange)
        for exchange in exchanges
    )


def _previous(field: str) -> Window:
    return Window(
        Lag(field),
        partition_by=[F("withdrawal_id"), F("method"), F("url")],
        order_by=[F("started_at").asc(), F("id").asc()],
    )


def venue_exchanges_compact(*, using: str) -> int:
    """Drop status polls older than the retention that repeat the poll before them; returns how
    many went. ``using`` must be a connection allowed to delete (the owner role's).

    Comparing each poll with its immediate predecessor is enough: a run of equal answers keeps
    its first, and the first of the next run differs from it. A poll without an answer (NULL
    status) never equals anything, so it stays.
    """
    cutoff = timezone.now() - timedelta(days=settings.EVIDENCE_POLL_RETENTION_DAYS)
    repeats = (
        VenueExchange.objects.using(using)
        .filter(purpose=STATUS, started_at__lt=cutoff)
        .annotate(
            previous_status=_previous("status_code"),
            previous_error=_previous("error"),
            previous_body=_previous("response_body"),
        )
        .filter(
            previous_status=F("status_code"),
            previous_error=F("error"),
            previous_body=F("response_body"),
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
    dropped = 0
    while batch := list(repeats[:_BATCH]):
        try:
            dropped += VenueExchange.objects.using(using).filter(pk__in=batch).delete()[0]
        except ProgrammingError as exc:
            raise CompactionRefused(
                f"The {using!r} connection may not delete venue evidence (the application role "
                "is append-only there): set COUNTERSIGN_OWNER_DATABASE_URL to the owner role."
            ) from exc
    return dropped
