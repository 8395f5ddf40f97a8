"""The outbox: notifications commit or roll back with the change they report; a broker outage
loses none and a lost task sends nothing twice; failures are tried again with backoff.

Personas: alice requests, bob approves (the one told of alice's request).
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.exceptions import OperationalError

from notifications import services, tasks
from notifications.models import Delivery, DeliveryStatus, Kind, Notification
from tests.factories import good_amount
from withdrawals import services as withdrawal_services

pytestmark = pytest.mark.django_db(transaction=True)


def broker_down():
    refused = OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    return mock.patch.object(tasks.deliver_notification, "delay", side_effect=refused)


def request(alice, address):
    return withdrawal_services.withdrawal_create(
        requester=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )


def age_deliveries(seconds: float) -> None:
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=seconds))


def test_a_committed_request_emails_the_approver_once(alice, bob, address):
    request(alice, address)
    delivery = Delivery.objects.get()
    assert (delivery.user, delivery.status, delivery.attempts) == (bob, DeliveryStatus.SENT, 1)
    assert [m.to for m in mail.outbox] == [[bob.email]]


def test_the_notification_is_written_before_its_event_takes_the_chain_head(alice, bob, address):
    """Every audited write in the system waits for the chain head. Written while holding it,
    the notification's statements made twenty approvals at once queue for a second; now the
    head is held for the event alone, and the notification still refers to that event."""
    request(alice, address)  # the steady state: the chain has a head row to lock
    with CaptureQueriesContext(connection) as ctx:
        withdrawal = request(alice, address)

    written = [" ".join(q["sql"].split()[:3]) for q in ctx.captured_queries]
    notified = next(i for i, sql in enumerate(written) if '"notifications_notification"' in sql)
    head = next(
        i for i, sql in enumerate(written[notified:], notified) if "audit_auditchainhead" in sql
    )
    assert written[head].startswith("SELECT")
    assert written[head + 1 : head + 3] == [
        'INSERT INTO "audit_auditevent"',
        'UPDATE "audit_auditchainhead" SET',
    ]
    notification = Notification.objects.get(object_id=str(withdrawal.pk))
    assert notification.event.action == "withdrawal.requested"
    assert notification.event.object_id == str(withdrawal.pk)


def test_a_rolled_back_change_leaves_no_notification_and_sends_nothing(alice, bob, address):
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        request(alice, address)
        assert Notification.objects.filter(kind=Kind.APPROVAL_NEEDED).exists()
        raise Abandon

    assert not Notification.objects.exists()
    assert not Delivery.objects.exists()
    assert mail.outbox == []


def test_broker_down_keeps_the_delivery_and_the_sweep_sends_it_once(alice, bob, address):
    with broker_down() as delay:
        request(alice, address)
    assert delay.called  # the enqueue was tried and failed; the request still stood
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and mail.outbox == []

    # Not due yet: the sweep leaves a fresh delivery to the task meant to carry it.
    assert services.deliveries_sweep() == []
    age_deliveries(1)
    tasks.sweep_deliveries.delay()  # the broker is back (eager here)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and len(mail.outbox) == 1

    # The lost message turning up late, and further sweeps, send nothing more.
    tasks.deliver_notification.delay(delivery.pk)
    age_deliveries(1)
    assert services.deliveries_sweep() == []
    assert len(mail.outbox) == 1


def test_a_failing_mail_server_is_tried_again_with_growing_backoff_then_given_up(
    alice, bob, address, settings
):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    with mock.patch("django.core.mail.EmailMessage.send", side_effect=ConnectionRefusedError):
        request(alice, address)
        delivery = Delivery.objects.get()
        gaps = []
        for _ in range(3):
            delivery.refresh_from_db()
            gaps.append(delivery.next_attempt_at - delivery.last_attempt_at)
            age_deliveries(1)
            tasks.sweep_deliveries.delay()
    delivery.refresh_from_db()
    assert delivery.attempts == 3
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "ConnectionRefusedError"
    assert gaps[0] < gaps[1] < gaps[2]
    assert mail.outbox == []


def test_a_delivery_taken_by_one_worker_is_left_alone_by_another(alice, bob, address):
    with broker_down():
        request(alice, address)
    delivery = Delivery.objects.get()
    with mock.patch.object(services, "_send", return_value=services.Outcome(ok=False, error="x")):
        services.delivery_attempt(delivery_id=delivery.pk)
    # Its next try lies ahead: a second message for it changes nothing.
    services.delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and mail.outbox == []
