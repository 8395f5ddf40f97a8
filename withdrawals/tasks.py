"""Thin Celery tasks: each loads by id and calls a service. All are idempotent."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import evidence, services

# The hard limit ends a task whose attempt overran its deadline (a worker stuck outside any
# venue read); it stays within the lease, so the attempt is dead before anyone supersedes it.
_SEND_TIME_LIMIT = settings.SUBMIT_DEADLINE_SECONDS + settings.VENUE_HTTP_TIMEOUT


@shared_task(acks_late=True, time_limit=_SEND_TIME_LIMIT)
def submit_withdrawal(withdrawal_id: int) -> None:
    services.withdrawal_submit(withdrawal_id=withdrawal_id)


@shared_task(acks_late=True)
def refresh_withdrawal_status(withdrawal_id: int) -> None:
    services.withdrawal_status_refresh(withdrawal_id=withdrawal_id)


# Reconciliation may re-send (Kraken Embed, same idempotency key) through the guarded path.
@shared_task(acks_late=True, time_limit=_SEND_TIME_LIMIT)
def reconcile_withdrawal(withdrawal_id: int) -> None:
    services.withdrawal_reconcile(withdrawal_id=withdrawal_id)


@shared_task(acks_late=True)
def cancel_duplicates(withdrawal_id: int) -> None:
    services.withdrawal_duplicates_cancel(withdrawal_id=withdrawal_id)


@shared_task(acks_late=True)
def refresh_venue_statuses(venue_id: int, asset: str) -> None:
    services.withdrawal_statuses_refresh(venue_id=venue_id, asset=asset)


@shared_task
def refresh_open_withdrawals() -> None:
    work = services.withdrawals_needing_attention()
    for venue_id, asset in work["refresh"]:
        refresh_venue_statuses.delay(venue_id, asset)
    for pk in work["reconcile"]:
        reconcile_withdrawal.delay(pk)


@shared_task
def sweep_submission_intents() -> None:
    for pk in services.submission_intents_sweep():
        submit_withdrawal.delay(pk)


@shared_task
def expire_stale_withdrawals() -> None:
    services.withdrawals_expire_stale()


@shared_task
def compact_venue_evidence() -> None:
    # On the owner role's connection: the application role may not delete evidence.
    evidence.venue_exchanges_compact(using=settings.EVIDENCE_COMPACT_DATABASE)
