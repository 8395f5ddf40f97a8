"""Sign-in hardening (issue 11, items 2 and 3): a new session id at each step, throttled
password and TOTP guessing per account and per address, and a coalesced audit trail.

Personas: alice (requester, enrolled) signs in; mallory guesses from outside.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
VERIFY = reverse("accounts:verify")
DASHBOARD = reverse("withdrawals:dashboard")
WRONG = "not-the-password"


def session_id(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def password_step(client: Client, username: str, password: str, ip: str = "192.0.2.10"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_a_planted_session_id_is_replaced_at_the_password_step(alice):
    planted = SessionStore()
    planted["planted"] = True
    planted.save()
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    assert password_step(client, "alice", PASSWORD).status_code == 302
    assert session_id(client) != planted.session_key


def test_the_session_id_differs_after_the_totp_step(alice, code_now):
    client = Client()
    assert password_step(client, "alice", PASSWORD).status_code == 302
    after_password = session_id(client)
    done = client.post(VERIFY, {"code": code_now(alice)})
    assert done.status_code == 302
    after_totp = session_id(client)
    assert after_totp != after_password
    # The id known after the password step is dead: it does not carry the verified session.
    assert not SessionStore().exists(after_password)
    assert client.get(DASHBOARD).status_code == 200


def test_the_eleventh_wrong_password_is_throttled_and_the_right_one_then_too(alice):
    client = Client()
    for attempt in range(10):
        response = password_step(client, "alice", WRONG)
        assert response.status_code == 200, attempt
        assert b"correct username and password" in response.content, attempt
    throttled = password_step(client, "alice", WRONG)
    assert throttled.status_code == 200
    assert b"Try again in 15 minutes" in throttled.content
    # Guessing stops here: even the right password is refused until the lock ends.
    right = password_step(client, "alice", PASSWORD)
    assert b"Try again in 15 minutes" in right.content
    assert client.get(DASHBOARD)["Location"].startswith(LOGIN)


def test_the_lock_is_per_account_not_per_stranger(alice):
    for n in range(10):
        password_step(Client(), "alice", WRONG, ip=f"198.51.100.{n}")
    # Spreading guesses over many addresses does not help: the account is locked.
    assert b"Try again in" in password_step(Client(), "alice", PASSWORD, ip="203.0.113.1").content


def test_one_address_guessing_many_accounts_is_throttled(alice):
    for n in range(30):
        password_step(Client(), f"nobody{n}", WRONG, ip="198.51.100.7")
    refused = password_step(Client(), "alice", PASSWORD, ip="198.51.100.7")
    assert b"Try again in" in refused.content
    # alice from her own address is not locked out by the stranger.
    assert password_step(Client(), "alice", PASSWORD, ip="192.0.2.10").status_code == 302


def test_the_wait_is_named_in_minutes(alice, settings):
    settings.COUNTERSIGN_SIGNIN_LOCK_SECONDS = 90
    for _ in range(10):
        password_step(Client(), "alice", WRONG)
    assert b"Try again in 2 minutes" in password_step(Client(), "alice", WRONG).content


def test_a_burst_of_failures_is_one_event_and_one_lock_event_with_the_count(alice):
    before = AuditEvent.objects.count()
    for _ in range(30):
        password_step(Client(), "alice", WRONG)
    new = list(AuditEvent.objects.order_by("seq")[before:])
    assert [e.action for e in new] == ["login.failed", "auth.signin_throttled"]
    lock = new[1]
    assert lock.data["failures"] == 10 and lock.data["scope"] == "account"
    assert lock.data["username"] == "alice" and WRONG not in str(lock.data)


def test_wrong_totp_codes_at_sign_in_are_throttled_per_account(alice, code_now):
    client = Client()
    password_step(client, "alice", PASSWORD)
    for _ in range(10):
        assert client.post(VERIFY, {"code": wrong_code(code_now(alice))}).status_code == 200
    refused = client.post(VERIFY, {"code": code_now(alice)})
    assert b"Try again in 15 minutes" in refused.content
    assert client.get(DASHBOARD)["Location"] == VERIFY
    # The password step is locked for the account as well.
    assert b"Try again in" in password_step(Client(), "alice", PASSWORD).content
    # Each wrong code is on the trail as a refused code, never as a wrong password.
    assert AuditEvent.objects.filter(action="totp.refused", actor=alice).count() == 10
    assert not AuditEvent.objects.filter(action="login.failed").exists()
    assert AuditEvent.objects.get(action="auth.signin_throttled").data["step"] == "totp"


def test_a_full_sign_in_clears_the_account_count_and_records_earlier_failures(alice, code_now):
    client = Client()
    for _ in range(3):
        password_step(client, "alice", WRONG)
    password_step(client, "alice", PASSWORD)
    assert client.post(VERIFY, {"code": code_now(alice)}).status_code == 302
    signed_in = AuditEvent.objects.get(action="auth.signed_in")
    assert signed_in.actor == alice and signed_in.data["failures_before"] == 3
    for _ in range(9):
        password_step(Client(), "alice", WRONG)
    # Nine more failures after a good sign-in: still under the limit of ten.
    assert password_step(Client(), "alice", PASSWORD).status_code == 302


def test_a_user_who_is_not_throttled_is_unaffected_by_someone_elses_lock(alice, code_now):
    UserFactory(username="bianca", roles=["approver"])
    for _ in range(10):
        password_step(Client(), "bianca", WRONG)
    assert password_step(Client(), "alice", PASSWORD).status_code == 302
