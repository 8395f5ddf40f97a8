"""The submit journal for venues whose withdraw call carries no id of ours (see SubmitAttempt)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.utils import timezone

from .models import SubmitAttempt


class SubmitJournal:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def mark_sent(self, request_id: UUID) -> None:
        """Record the send moment. Call right before the request leaves."""
        SubmitAttempt.objects.update_or_create(
            kind=self.kind, request_id=request_id, defaults={"sent_at": timezone.now()}
        )

    def mark_reference(self, request_id: UUID, reference: str) -> None:
        SubmitAttempt.objects.filter(kind=self.kind, request_id=request_id).update(
            reference=str(reference)
        )

    def sent_at(self, request_id: UUID) -> datetime | None:
        return (
            SubmitAttempt.objects.filter(kind=self.kind, request_id=request_id)
            .values_list("sent_at", flat=True)
            .first()
        )

    def reference(self, request_id: UUID) -> str:
        return (
            SubmitAttempt.objects.filter(kind=self.kind, request_id=request_id)
            .values_list("reference", flat=True)
            .first()
            or ""
        )

    def claimed_by_others(self, request_id: UUID, references: list[str]) -> set[str]:
        """Which of ``references`` already belong to another of our withdrawals."""
        return set(
            SubmitAttempt.objects.filter(kind=self.kind, reference__in=[str(r) for r in references])
            .exclude(request_id=request_id)
            .values_list("reference", flat=True)
        )
