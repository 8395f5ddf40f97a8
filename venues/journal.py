"""The submit journal for venues whose withdraw call carries no id of ours (see SubmitAttempt)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.utils import timezone

from .models import SubmitAttempt


class SubmitJournal:
    """One row per request that left (or was about to leave) for the venue.

    A withdrawal normally has one row. A second one means a second send was attempted (a
    superseded attempt that woke up late, say): duplicate detection reads every reference.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def mark_sent(self, request_id: UUID) -> int:
        """Record the send moment; call right before the request leaves. Returns the entry."""
        return SubmitAttempt.objects.create(
            kind=self.kind, request_id=request_id, sent_at=timezone.now()
        ).pk

    def mark_reference(self, request_id: UUID, reference: str, *, entry: int | None = None) -> None:
        """Record the venue's reference on ``entry`` (or on the latest entry without one)."""
        rows = SubmitAttempt.objects.filter(kind=self.kind, request_id=request_id)
        if entry is None:
            if rows.filter(reference=str(reference)).exists():
                return
            entry = (
                rows.filter(reference="")
                .order_by("-sent_at", "-pk")
                .values_list("pk", flat=True)
                .first()
            )
        if entry is not None:
            rows.filter(pk=entry).update(reference=str(reference))

    def mark_found(self, request_id: UUID, reference: str) -> None:
        """People established that the venue holds this request as ``reference``: keep the link
        so later reads (status, duplicate detection) know it, sent moment unknown (now)."""
        if not self.references(request_id).count(str(reference)):
            SubmitAttempt.objects.create(
                kind=self.kind,
                request_id=request_id,
                sent_at=timezone.now(),
                reference=str(reference),
            )

    def sent_times(self, request_id: UUID) -> list[datetime]:
        return list(
            SubmitAttempt.objects.filter(kind=self.kind, request_id=request_id)
            .order_by("sent_at")
            .values_list("sent_at", flat=True)
        )

    def sent_at(self, request_id: UUID) -> datetime | None:
        """The latest send moment, or None if nothing was ever sent for this request."""
        times = self.sent_times(request_id)
        return times[-1] if times else None

    def references(self, request_id: UUID) -> list[str]:
        return [reference for _, reference in self.references_by_request([request_id])]

    def references_by_request(self, request_ids: list[UUID]) -> list[tuple[UUID, str]]:
        """The references recorded for each of ``request_ids``, oldest send first, in one read:
        (request id, reference) pairs."""
        return list(
            SubmitAttempt.objects.filter(kind=self.kind, request_id__in=request_ids)
            .exclude(reference="")
            .order_by("sent_at", "pk")
            .values_list("request_id", "reference")
        )

    def reference(self, request_id: UUID) -> str:
        """The first reference recorded for this request ("" if none)."""
        refs = self.references(request_id)
        return refs[0] if refs else ""

    def claimed_by_others(self, request_id: UUID, references: list[str]) -> set[str]:
        """Which of ``references`` already belong to another of our withdrawals."""
        return set(
            SubmitAttempt.objects.filter(kind=self.kind, reference__in=[str(r) for r in references])
            .exclude(request_id=request_id)
            .values_list("reference", flat=True)
        )
