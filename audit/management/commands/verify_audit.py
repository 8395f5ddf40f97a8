from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

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

    def handle(self, *args: Any, **options: Any) -> None:
        check = audit_chain_verify(record=not options["no_record"])
        if not check.ok:
            raise CommandError(
                f"Audit chain BROKEN at event #{check.first_broken_seq}: {check.message}"
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain OK. {check.message}"))
