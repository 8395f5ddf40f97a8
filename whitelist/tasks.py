"""Thin Celery tasks (beat): activation after cooling-off, and the scheduled venue check."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task
def activate_due_addresses() -> None:
    services.addresses_activate_due()


@shared_task
def check_venue_addresses() -> None:
    services.addresses_venue_check_all()
