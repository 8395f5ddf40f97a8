"""An unsettled withdrawal (unknown outcome, submission past its lease, duplicate nobody took
in hand) is announced again at the configured interval until it leaves that state.

Personas: alice requests (never asked to settle), bob approves, carol is a whitelist admin.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import tasks
from notifications.models import Kind, Notification
from tests.factories import WithdrawalFactory
from withdrawals.models import DuplicatePayment, State

pytestmark = pytest.mark.django_db


def reminders(kind: str = Kind.ATTENTION) -> list[Notification]:
    return list(Notification.objects.filter(kind=kind, event__isnull=True))


def age_notifications(seconds: float) -> None:
    Notification.objects.update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_a_stuck_submission_is_announced_and_again_after_the_interval(
    alice, bob, carol, address, settings
):
    settings.NOTIFY_REMIND_SECONDS = 600
    WithdrawalFactory(
        requested_by=alice,
        whitelisted_address=address,
        state=State.SUBMITTING,
        submit_deadline_at=timezone.now() - timedelta(hours=1),
    )
    assert tasks.remind_unsettled.delay().get() == 1
    [first] = reminders()
    assert {"bob", "carol"} <= {u.username for u in first.recipients.all()}
    assert "alice" not in {u.username for u in first.recipients.all()}

    assert tasks.remind_unsettled.delay().get() == 0  # within the interval: quiet
    age_notifications(601)
    assert tasks.remind_unsettled.delay().get() == 1
    assert len(reminders()) == 2


def test_a_submission_within_its_lease_is_not_stuck(alice, bob, address):
    WithdrawalFactory(
        requested_by=alice,
        whitelisted_address=address,
        state=State.SUBMITTING,
        submit_deadline_at=timezone.now() + timedelta(seconds=30),
    )
    assert tasks.remind_unsettled.delay().get() == 0


def test_reminders_stop_once_the_withdrawal_is_settled(alice, bob, address):
    withdrawal = WithdrawalFactory(
        requested_by=alice, whitelisted_address=address, state=State.OUTCOME_UNKNOWN
    )
    assert tasks.remind_unsettled.delay().get() == 1
    withdrawal.state = State.COMPLETED
    withdrawal.save(update_fields=["state"])
    age_notifications(10**6)
    assert tasks.remind_unsettled.delay().get() == 0


def test_an_open_duplicate_is_reminded_as_a_duplicate_until_acknowledged(alice, bob, dave, address):
    withdrawal = WithdrawalFactory(
        requested_by=alice, whitelisted_address=address, state=State.COMPLETED
    )
    duplicate = DuplicatePayment.objects.create(withdrawal=withdrawal, reference="dup-1")
    assert tasks.remind_unsettled.delay().get() == 1
    [reminder] = reminders(Kind.DUPLICATE)
    assert "dave" in {u.username for u in reminder.recipients.all()}
    duplicate.acknowledged_at = timezone.now()
    duplicate.acknowledged_by = bob
    duplicate.save()
    age_notifications(10**6)
    assert tasks.remind_unsettled.delay().get() == 0
