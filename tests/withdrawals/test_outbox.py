"""The outbox: a broker that is down when bob approves loses nothing and sends nothing twice.

Personas: alice requests, bob approves. The broker is made unreachable by making publishing
raise what kombu raises when Redis refuses the connection (the integration tests stop a real
Redis for the same story).
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from tests.factories import VENUE_KIND, good_amount
from venues.sandbox.registry import sandbox_for
from withdrawals import services, tasks
from withdrawals.models import State, SubmissionIntent

pytestmark = pytest.mark.django_db(transaction=True)


def broker_down():
    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    return mock.patch.object(tasks.submit_withdrawal, "delay", side_effect=refused)


def request_and_approve(alice, bob, address, code):
    withdrawal = services.withdrawal_create(
        requester=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    return services.withdrawal_approve(
        withdrawal_id=withdrawal.pk, approver=bob, code=code, quote_id=quote.pk
    )


def age_intent(withdrawal, settings):
    """As if the resend interval had passed since the (failed) enqueue."""
    SubmissionIntent.objects.filter(withdrawal=withdrawal).update(
        enqueued_at=timezone.now() - timedelta(seconds=settings.INTENT_RESEND_SECONDS + 1)
    )


def test_broker_down_at_approval_keeps_the_intent_and_the_sweeper_submits_once(
    alice, bob, address, code_now, settings
):
    with broker_down() as delay:
        withdrawal = request_and_approve(alice, bob, address, code_now(bob))
    assert delay.called  # the enqueue was tried, failed, and the approval still stood

    withdrawal.refresh_from_db()
    assert withdrawal.state == State.APPROVED
    assert SubmissionIntent.objects.get(withdrawal=withdrawal).done_at is None
    assert sandbox_for(VENUE_KIND).count_withdrawals() == 0

    # Not due yet: the sweeper leaves a fresh intent to the task that was (meant to be) sent.
    assert services.submission_intents_sweep() == []
    age_intent(withdrawal, settings)
    # The broker is back: beat's sweeper enqueues it (eager here, so it runs at once).
    tasks.sweep_submission_intents.delay()

    withdrawal.refresh_from_db()
    assert withdrawal.state in {State.SUBMITTED, State.COMPLETED}
    assert SubmissionIntent.objects.get(withdrawal=withdrawal).done_at is not None
    assert sandbox_for(VENUE_KIND).count_withdrawals() == 1

    # A late duplicate of the lost message, and further sweeps, change nothing.
    age_intent(withdrawal, settings)
    assert services.submission_intents_sweep() == []
    tasks.submit_withdrawal.delay(withdrawal.pk)
    assert sandbox_for(VENUE_KIND).count_withdrawals() == 1


def test_the_sweeper_leaves_cancelled_withdrawals_alone(alice, bob, address, code_now, settings):
    with broker_down():
        withdrawal = request_and_approve(alice, bob, address, code_now(bob))
    services.withdrawal_cancel(withdrawal_id=withdrawal.pk, requester=alice)
    age_intent(withdrawal, settings)

    assert services.submission_intents_sweep() == []
    tasks.sweep_submission_intents.delay()
    assert sandbox_for(VENUE_KIND).count_withdrawals() == 0
