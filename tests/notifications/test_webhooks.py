"""Chat webhooks: a Slack-compatible body signed with HMAC-SHA256 over "timestamp.body",
checked here by a receiver that shares nothing with the sender but the secret; a refusing
receiver is tried again and every try is recorded.

Personas: alice requests; bob approves and chose the chat channel; bianca approves by email.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from notifications import services
from notifications.models import Channel, Delivery, DeliveryStatus, Kind
from tests.factories import good_amount
from withdrawals import services as withdrawal_services

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "receiver-shared-secret-0123456789"


class Receiver:
    """A loopback HTTP server that answers each POST with the next of ``statuses``."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """What a receiver does, written from the header contract alone."""
    timestamp = headers["X-Countersign-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(headers["X-Countersign-Signature"], "sha256=" + expected.hexdigest())


@pytest.fixture
def bob_chats(bob):
    services.preferences_save(user=bob, choices={Kind.APPROVAL_NEEDED: [Channel.WEBHOOK]})
    return bob


def configure(settings, url: str) -> None:
    settings.NOTIFY_WEBHOOKS = [{"name": "treasury-chat", "url": url, "secret": SECRET}]


def request(alice, address):
    return withdrawal_services.withdrawal_create(
        requester=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )


def test_the_webhook_is_signed_slack_compatible_and_names_who_chose_it(
    alice, bob_chats, bianca, address, settings
):
    with Receiver([200]) as receiver:
        configure(settings, receiver.url)
        withdrawal = request(alice, address)

    [(headers, body)] = receiver.requests
    assert verify(headers, body, SECRET)
    assert not verify(headers, body.replace(b"waits", b"WAITS"), SECRET)
    assert not verify(headers, body, "another-secret")
    payload = json.loads(body)
    assert f"Withdrawal #{withdrawal.pk} waits for your approval" in payload["text"]
    assert payload["mentions"] == ["bob"]  # bianca kept email only
    assert payload["link"].endswith(f"/withdrawals/{withdrawal.pk}/")
    hook = Delivery.objects.get(channel=Channel.WEBHOOK)
    assert (hook.status, hook.response_code, hook.attempts) == (DeliveryStatus.SENT, 200, 1)


def test_a_refusing_receiver_is_tried_again_and_each_try_recorded(
    alice, bob_chats, address, settings
):
    with Receiver([500, 200]) as receiver:
        configure(settings, receiver.url)
        request(alice, address)
        hook = Delivery.objects.get(channel=Channel.WEBHOOK)
        assert (hook.status, hook.response_code, hook.attempts) == (
            DeliveryStatus.PENDING,
            500,
            1,
        )
        assert hook.last_error == "HTTP 500" and hook.next_attempt_at > hook.last_attempt_at
        Delivery.objects.filter(pk=hook.pk).update(next_attempt_at=hook.last_attempt_at)
        services.deliveries_sweep()
    hook.refresh_from_db()
    assert (hook.status, hook.response_code, hook.attempts) == (DeliveryStatus.SENT, 200, 2)
    assert len(receiver.requests) == 2
    assert all(verify(h, b, SECRET) for h, b in receiver.requests)


def test_an_unreachable_receiver_records_no_url(alice, bob_chats, address, settings):
    configure(settings, "http://127.0.0.1:9/hook-token-that-is-a-secret")
    request(alice, address)
    hook = Delivery.objects.get(channel=Channel.WEBHOOK)
    assert hook.status == DeliveryStatus.PENDING and hook.attempts == 1
    assert "hook-token" not in hook.last_error and hook.last_error


def test_nobody_chose_chat_so_nothing_is_posted(alice, bob, address, settings):
    with Receiver([]) as receiver:
        configure(settings, receiver.url)
        request(alice, address)
    assert receiver.requests == []
    assert not Delivery.objects.filter(channel=Channel.WEBHOOK).exists()
