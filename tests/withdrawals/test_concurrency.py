"""Real concurrent callers on PostgreSQL, each of which passes every check before the one under
test: the submission guard (the ``approved -> submitting`` row lock and the attempt's fence)
and reconciliation racing itself.

These run in the PostgreSQL pass of ``make test`` (marker ``postgresql``); SQLite has no row
locks to test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import close_old_connections, connection

from tests.factories import VenueFactory, WhitelistedAddressFactory
from tests.withdrawals.test_exactly_once import reconcile, unknown_after_timeout
from tests.withdrawals.test_services import approved, create
from venues.sandbox.registry import sandbox_for
from withdrawals import services
from withdrawals.models import State, SubmissionAttempt, WithdrawalRequest

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

CALLERS = 50


@pytest.fixture(autouse=True)
def on_postgresql(settings):
    assert connection.vendor == "postgresql", "run with DATABASE_URL (make test's second pass)"
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0  # stays submitted: nothing else moves it


def all_at_once(call: Callable[[], object]) -> list[BaseException]:
    """Run ``call`` on CALLERS threads released together; return what any of them raised."""
    barrier = threading.Barrier(CALLERS)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            call()
        except BaseException as exc:  # collected and asserted on below, never swallowed
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_fifty_concurrent_submissions_of_an_approved_withdrawal_send_once(
    alice, bob, address, fresh_code
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))

    errors = all_at_once(lambda: services.withdrawal_submit(withdrawal_id=withdrawal.pk))

    assert errors == []
    assert sandbox_for(address.venue.kind).count_withdrawals() == 1
    assert WithdrawalRequest.objects.get(pk=withdrawal.pk).state == State.SUBMITTED
    assert SubmissionAttempt.objects.filter(withdrawal=withdrawal).count() == 1


def test_fifty_concurrent_reconcilers_resend_an_embed_withdrawal_once(alice, bob, fresh_code):
    """Kraken Embed re-sends from reconciliation: fifty reconcilers at once open one attempt."""
    address = WhitelistedAddressFactory(venue=VenueFactory(kind="kraken_embed"))
    withdrawal = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_before_accept"
    )

    errors = all_at_once(lambda: services.withdrawal_reconcile(withdrawal_id=withdrawal.pk))

    assert errors == []
    assert sandbox_for("kraken_embed").count_withdrawals() == 1
    assert WithdrawalRequest.objects.get(pk=withdrawal.pk).state == State.SUBMITTED
    assert list(
        SubmissionAttempt.objects.filter(withdrawal=withdrawal).values_list(
            "number", "resubmission"
        )
    ) == [(1, False), (2, True)]
    assert reconcile(withdrawal).state == State.SUBMITTED
