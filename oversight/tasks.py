"""Thin Celery tasks of the oversight app."""

from __future__ import annotations

from celery import shared_task

from .services import daily_totals_refresh_recent


@shared_task
def refresh_daily_totals() -> int:
    """Keep the auditors' chart rollup current (recent days; every day on a first run)."""
    return daily_totals_refresh_recent()
