"""Logins, TOTP refusals and throttling land on the audit trail; passwords never do.

Personas: alice signs in (or mistypes), mallory guesses a username that does not exist.
"""

from __future__ import annotations

import json

import pytest

from accounts.services import TotpRefused, totp_code_verify
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def dump(events) -> str:
    return json.dumps([[e.action, e.message, e.actor_name, e.data] for e in events])


def test_alice_successful_password_login_is_recorded(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="192.0.2.4"
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="login.succeeded")
    assert event.actor == alice and event.ip == "192.0.2.4"
    assert PASSWORD not in dump(AuditEvent.objects.all())


def test_alice_failed_login_is_recorded_without_the_password(client, alice):
    wrong = "Tr0ub4dor&3-typo"
    response = client.post("/accounts/login/", {"username": "alice", "password": wrong})
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="login.failed")
    assert event.actor is None and event.actor_name == "alice"
    assert event.data == {"username": "alice", "known_user": True}
    assert event.object_id == str(alice.pk)
    assert wrong not in dump(AuditEvent.objects.all())
    assert not AuditEvent.objects.filter(action="login.succeeded").exists()


def test_mallory_unknown_username_is_recorded_as_unknown(client, db):
    client.post("/accounts/login/", {"username": "nobody-here", "password": "guess"})
    event = AuditEvent.objects.get(action="login.failed")
    assert event.data["known_user"] is False and event.object_id == ""
    assert "guess" not in dump([event])


def test_alice_totp_failures_and_throttling_are_recorded(alice):
    for _ in range(2):
        with pytest.raises(TotpRefused):
            totp_code_verify(user=alice, code="000000", ip="192.0.2.9", purpose="login")
    refused = list(AuditEvent.objects.filter(action="totp.refused").order_by("seq"))
    assert len(refused) == 2
    # The second attempt arrives while the first failure's throttle delay is running.
    assert refused[-1].data["throttled"] is True
    assert all(e.ip == "192.0.2.9" for e in refused)
    assert audit_chain_verify(record=False).ok
