"""Real concurrent callers on PostgreSQL, each of which passes every check before the one under
test: the submission guard (the ``approved -> submitting`` row lock and the attempt's fence),
reconciliation racing itself, and approvals that must not wait for one another.

These run in the PostgreSQL pass of ``make test`` (marker ``postgresql``); SQLite has no row
locks to test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import close_old_connections, connection

from tests.factories import (
    UserFactory,
    VenueFactory,
    WhitelistedAddressFactory,
    policy_install,
    totp_code,
)
from tests.withdrawals.test_exactly_once import reconcile, unknown_after_timeout
from tests.withdrawals.test_services import approved, create, no_tasks
from venues.sandbox.registry import sandbox_for
from withdrawals import policy, services
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


@pytest.mark.parametrize("limit", [{}, {"destination_daily_count": 5}])
def test_approvals_of_withdrawals_to_one_destination_do_not_queue_behind_each_other(
    alice, address, totp_clock, limit, monkeypatch
):
    """The first approver is held inside their approval's transaction, past every lock it
    takes; the second, of another withdrawal to the same destination, completes meanwhile.
    Under a rule that limits the venue and asset (the other scope), the two share nothing.
    Before, the withdrawal's lock also locked the destination and venue rows, and every final
    approval locked both velocity scopes, so the second waited for the first to commit."""
    policy_install(
        {"asset": address.asset, **limit},
        business_hours_start=0,
        business_hours_end=24,
        weekdays_only=False,
    )
    first, second = create(alice, address), create(alice, address)
    bob, carl = UserFactory(roles=["approver"]), UserFactory(roles=["approver"])
    quotes = {
        first.pk: services.withdrawal_quote_fresh(withdrawal_id=first.pk, user=bob),
        second.pk: services.withdrawal_quote_fresh(withdrawal_id=second.pk, user=carl),
    }
    totp_clock.advance()
    inside, release = threading.Event(), threading.Event()
    recorded = policy.review_time

    def held_for_the_first(withdrawal, *args, **kwargs):
        if withdrawal.pk == first.pk:
            inside.set()
            release.wait(60)
        return recorded(withdrawal, *args, **kwargs)

    monkeypatch.setattr(policy, "review_time", held_for_the_first)
    errors: list[BaseException] = []
    finished: list[int] = []

    def approve(withdrawal, approver, *, lock_timeout: str = "") -> None:
        try:
            if lock_timeout:
                with connection.cursor() as cursor:
                    cursor.execute(f"SET lock_timeout = '{lock_timeout}'")
            services.withdrawal_approve(
                withdrawal_id=withdrawal.pk,
                approver=approver,
                code=totp_code(approver, at=totp_clock.now),
                quote_id=quotes[withdrawal.pk].pk,
            )
            finished.append(withdrawal.pk)
        except BaseException as exc:  # asserted on below, never swallowed
            errors.append(exc)
        finally:
            connection.close()

    with no_tasks():
        holder = threading.Thread(target=approve, args=(first, bob))
        holder.start()
        assert inside.wait(30)
        approve(second, carl, lock_timeout="3s")
        release.set()
        holder.join(60)

    assert errors == []
    assert finished == [second.pk, first.pk]
    assert set(
        WithdrawalRequest.objects.filter(pk__in=[first.pk, second.pk]).values_list(
            "state", flat=True
        )
    ) == {State.APPROVED}
