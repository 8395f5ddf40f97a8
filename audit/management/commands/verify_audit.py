from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.checkpoints import CheckpointError, checkpoints_read
from audit.services import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Walk the audit chain: seq continuity, prev_hash links and recomputed HMACs. "
        "Exits 0 when intact, non-zero naming the first broken event."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-record",
            action="store_true",
            help="Do not store the result for the auditors' dashboard.",
        )
        parser.add_argument(
            "--checkpoint",
            type=Path,
            action="append",
            default=[],
            metavar="FILE",
            help="A checkpoint file (or the checkpoints.jsonl log): the chain must still hold "
            "every head it records. Repeatable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoints = [c for path in options["checkpoint"] for c in checkpoints_read(path)]
        except CheckpointError as exc:
            raise CommandError(f"Checkpoint refused: {exc}") from None
        check = audit_chain_verify(record=not options["no_record"], checkpoints=checkpoints)
        if not check.ok:
            raise CommandError(
                f"Audit chain BROKEN at event #{check.first_broken_seq}: {check.message}"
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain OK. {check.message}"))
