"""Recompute the auditors' daily withdrawal totals for every day (after a restore, say)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from oversight.services import daily_totals_refresh


class Command(BaseCommand):
    help = "Recompute the daily withdrawal totals the auditors' charts read, for every day."

    def handle(self, *args: Any, **options: Any) -> None:
        groups = daily_totals_refresh(days=None)
        self.stdout.write(f"{groups} daily group(s) written.")
