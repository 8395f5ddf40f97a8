"""Thin Celery tasks of the notifications app."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def deliver_notification(delivery_id: int) -> None:
    services.delivery_attempt(delivery_id=delivery_id)


@shared_task
def sweep_deliveries() -> int:
    """Beat: deliveries whose task was lost (a broker outage) and retries that are due."""
    return len(services.deliveries_sweep())


@shared_task
def remind_unsettled() -> int:
    """Beat: withdrawals still unsettled are announced again until someone settles them."""
    return len(services.unsettled_remind())
