"""Status refresh is batched per venue and asset, and backs off for long-pending withdrawals."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.withdrawals.test_exactly_once import submit
from tests.withdrawals.test_services import approved, create, no_tasks, sandbox
from tests.withdrawals.test_submission_sql import _statements
from venues.kraken.client import KrakenClient
from withdrawals import services, tasks
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(alice, bob, address, fresh_code, settings, totp_clock):
    """Three submitted withdrawals of one asset at one venue, still pending there."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0
    rows = []
    for _ in range(3):
        rows.append(submit(approved(create(alice, address), bob, fresh_code(bob))))
    assert {w.state for w in rows} == {State.SUBMITTED}
    WithdrawalRequest.objects.update(last_checked_at=None)
    return rows


def kraken_calls() -> mock._patch:
    real = KrakenClient._call
    return mock.patch.object(
        KrakenClient, "_call", autospec=True, side_effect=lambda self, *a, **k: real(self, *a, **k)
    )


def test_one_history_read_serves_every_pending_withdrawal_of_the_asset(submitted, address):
    with kraken_calls() as call, no_tasks():
        polled = services.withdrawal_statuses_refresh(
            venue_id=address.venue_id, asset=address.asset
        )

    assert polled == 3
    assert [c.args[1] for c in call.call_args_list] == ["WithdrawStatus"]
    assert all(
        w.last_checked_at is not None
        for w in WithdrawalRequest.objects.filter(pk__in=[s.pk for s in submitted])
    )


def test_the_references_of_a_whole_batch_are_read_in_two_statements(submitted, address):
    """Each poll looks for every reference we know of each withdrawal due (duplicates are
    found that way): one read of the attempts and one of the submit journal for the batch,
    not two per withdrawal, since the batch is every pending withdrawal of the asset."""
    with CaptureQueriesContext(connection) as ctx, no_tasks():
        polled = services.withdrawal_statuses_refresh(
            venue_id=address.venue_id, asset=address.asset
        )

    assert polled == 3
    counted = _statements(ctx.captured_queries)
    assert counted["SELECT withdrawals_submissionattempt"] == 1
    assert counted["SELECT venues_submitattempt"] == 1


def test_a_withdrawal_polled_just_now_waits_its_turn(submitted, address):
    with no_tasks():
        services.withdrawal_statuses_refresh(venue_id=address.venue_id, asset=address.asset)
    with kraken_calls() as call, no_tasks():
        polled = services.withdrawal_statuses_refresh(
            venue_id=address.venue_id, asset=address.asset
        )
    assert polled == 0
    assert call.call_count == 0


def test_long_pending_withdrawals_are_polled_less_often(submitted, address):
    hour_ago = timezone.now() - timedelta(hours=2)
    minute_ago = timezone.now() - timedelta(seconds=70)
    # Pending two hours, looked at a minute ago: the next poll is 5 minutes after the last.
    WithdrawalRequest.objects.update(submitted_at=hour_ago, last_checked_at=minute_ago)
    with no_tasks():
        assert (
            services.withdrawal_statuses_refresh(venue_id=address.venue_id, asset=address.asset)
            == 0
        )
    WithdrawalRequest.objects.update(last_checked_at=timezone.now() - timedelta(minutes=6))
    with no_tasks():
        assert (
            services.withdrawal_statuses_refresh(venue_id=address.venue_id, asset=address.asset)
            == 3
        )


def test_the_periodic_refresh_asks_once_per_venue_and_asset(submitted, address):
    with mock.patch.object(tasks.refresh_venue_statuses, "delay") as per_group:
        tasks.refresh_open_withdrawals()
    per_group.assert_called_once_with(address.venue_id, address.asset)


def settle_every_withdrawal_now() -> None:
    """The venue finishes them: each is due to settle at its next read."""
    venue = sandbox()
    docs = venue.all_withdrawals()
    with venue.store.tx() as tx:
        for doc in docs:
            tx.put(f"{venue.kind}:withdrawals", str(doc["id"]), doc | {"settle_at": 0})


def test_a_settled_withdrawal_completes_on_its_next_poll(submitted, address):
    settle_every_withdrawal_now()
    with no_tasks():
        services.withdrawal_statuses_refresh(venue_id=address.venue_id, asset=address.asset)
    states = set(WithdrawalRequest.objects.values_list("state", flat=True))
    assert states == {State.COMPLETED}
    assert sandbox().count_withdrawals() == 3
    # Evidence is kept for the polls that changed something.
    for withdrawal in WithdrawalRequest.objects.all():
        assert withdrawal.venue_exchanges.filter(purpose="status").exists()
