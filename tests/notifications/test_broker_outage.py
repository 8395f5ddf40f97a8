"""A broker outage, for real: Redis is stopped while alice requests a withdrawal on PostgreSQL.
The request stands, its notification waits in the outbox, and once Redis is back the sweep
puts exactly one delivery on the queue, which a worker sends once.

Personas: alice requests, bob approves (the one told).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.core import mail
from django.db import connection
from django.utils import timezone

from config.celery import app
from notifications import services
from notifications.models import Delivery, DeliveryStatus
from tests.factories import good_amount
from withdrawals import services as withdrawal_services
from withdrawals.models import State

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "celery"


def services_sh(action: str, redis_url: str) -> None:
    subprocess.run(  # noqa: S603
        [str(ROOT / "scripts/services.sh"), action],
        check=True,
        env={**os.environ, "COUNTERSIGN_REDIS_PORT": str(urlsplit(redis_url).port)},
        capture_output=True,
    )


@pytest.fixture
def real_broker() -> Iterator[str]:
    """This process publishes to the real Redis instead of running tasks in place."""
    url = os.environ.get("REDIS_URL", "")
    if not url or connection.vendor != "postgresql":
        pytest.fail('needs PostgreSQL and Redis: eval "$(scripts/services.sh env)" first')
    # A database of its own on that server: the integration stack's beat and workers publish
    # to the default one, and the queue counted here must hold only this test's messages.
    url = urlunsplit(urlsplit(url)._replace(path="/15"))
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=url, task_always_eager=False)
    _forget_broker_connections()
    redis.Redis.from_url(url).delete(QUEUE)
    yield url
    services_sh("redis-start", url)
    redis.Redis.from_url(url).delete(QUEUE)
    app.conf.update(saved)
    _forget_broker_connections()


def _forget_broker_connections() -> None:
    """Publish through the broker configured now: the connection pool and the producer pool
    are built on first use and kept, and an earlier test in this process may have used them
    (Celery resets the same two after a fork)."""
    app._pool = None
    app.amqp._producer_pool = None


def queued(url: str) -> int:
    return redis.Redis.from_url(url).llen(QUEUE)


def test_redis_down_while_requesting_loses_no_notification_and_sends_it_once(
    real_broker, alice, bob, address
):
    services_sh("redis-stop", real_broker)
    withdrawal = withdrawal_services.withdrawal_create(
        requester=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )
    assert withdrawal.state == State.PENDING_APPROVAL
    delivery = Delivery.objects.get(user=bob)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0

    services_sh("redis-start", real_broker)
    assert queued(real_broker) == 0  # the task was lost with the outage
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert services.deliveries_sweep() == [delivery.pk]
    assert queued(real_broker) == 1

    # What the worker does with that message, twice (a redelivery): one email.
    services.delivery_attempt(delivery_id=delivery.pk)
    services.delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 1
    assert [m.to for m in mail.outbox] == [[bob.email]]
    assert services.deliveries_sweep() == []
