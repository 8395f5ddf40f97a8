"""Venue credentials appear in no page, no log and no audit record.

Personas: alice requests, bob approves, carol administers, dave audits, mallory has no role.
"""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from accounts.services import access_change_propose
from audit.models import AuditEvent
from policies.services import policy_change_propose
from tests.conftest import verified_login
from tests.factories import UserFactory, good_amount
from tests.test_url_matrix import concrete_paths
from venues.services import venue_change_propose
from withdrawals import services
from withdrawals.models import Quote, State, WithdrawalRequest

pytestmark = pytest.mark.django_db


def secrets_of(venue) -> list[str]:
    creds = venue.credentials
    found = [s for s in (creds.api_key, creds.api_secret, creds.passphrase) if s]
    assert creds.api_key and creds.api_secret  # the check below must have something to find
    return found


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a venue credential leaked into {where}"


def full_flow(alice, bob, address, fresh_code, capture) -> WithdrawalRequest:
    withdrawal = services.withdrawal_create(
        requester=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    with capture(execute=True):
        services.withdrawal_approve(
            withdrawal_id=withdrawal.pk, approver=bob, code=fresh_code(bob), quote_id=quote.pk
        )
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.COMPLETED
    return withdrawal


def test_credentials_never_reach_logs_or_audit_during_a_full_flow(
    alice, bob, address, fresh_code, caplog, django_capture_on_commit_callbacks
):
    secrets = secrets_of(address.venue)
    caplog.set_level(logging.DEBUG)
    for noisy in ("httpx", "httpcore", "venues", "withdrawals", "django"):
        caplog.set_level(logging.DEBUG, logger=noisy)
    withdrawal = full_flow(alice, bob, address, fresh_code, django_capture_on_commit_callbacks)
    # A failed submission logs too: include that path.
    assert caplog.records, "the flow should have logged something to inspect"
    assert_clean(caplog.text, secrets, "the logs")
    for record in caplog.records:
        assert_clean(repr(record.args), secrets, "log record arguments")
    for event in AuditEvent.objects.all():
        assert_clean(f"{event.message} {event.data}", secrets, f"audit event {event.action}")
    for quote in Quote.objects.all():
        assert_clean(str(quote.raw), secrets, "a stored quote")
    assert_clean(str(withdrawal.__dict__), secrets, "the withdrawal row")


def test_credentials_are_encrypted_at_rest(address):
    secrets = secrets_of(address.venue)
    stored = address.venue.credentials_encrypted
    assert stored
    assert_clean(stored, secrets, "the database column")


def test_credentials_never_appear_in_any_page_for_any_persona(
    quiet_refusals,
    alice,
    bob,
    carol,
    dave,
    mallory,
    address,
    fresh_code,
    django_capture_on_commit_callbacks,
):
    secrets = secrets_of(address.venue)
    withdrawal = full_flow(alice, bob, address, fresh_code, django_capture_on_commit_callbacks)
    # A proposed credential waits encrypted in its proposal: no page may show it either.
    pending = "cGVuZGluZy1zZWNyZXQtd2FpdGluZy1mb3ItYXBwcm92YWw="
    secrets.append(pending)
    paths = concrete_paths(
        {
            "withdrawal": withdrawal,
            "venue": address.venue,
            "venue_change": venue_change_propose(
                actor=carol, venue_id=address.venue_id, api_secret=pending
            ),
            "access_change": access_change_propose(
                admin=UserFactory(username="ulf", roles=["user_admin"]),
                subject_id=bob.pk,
                kind="grant",
                role="auditor",
            ),
            "address": address,
            "policy_proposal": policy_change_propose(
                actor=carol, raw={"rules": [{"asset": "BTC", "quorum": 2}, {"quorum": 1}]}
            ),
            "device": bob.totpdevice_set.first(),
            "user": alice,
        }
    )
    checked = 0
    for user in (None, alice, bob, carol, dave, mallory):
        client = Client(raise_request_exception=False)
        if user is not None:
            verified_login(client, user)
        for path in paths:
            htmx = path.startswith("/withdrawals/") or path == "/"
            for headers in ({}, {"HTTP_HX_REQUEST": "true"}) if htmx else ({},):
                response = client.get(path, **headers)
                body = response.content.decode(errors="replace")
                assert_clean(body, secrets, f"GET {path} as {user}")
                assert_clean(str(response.headers), secrets, f"headers of {path}")
                checked += 1
        # The pages that talk to the venue, as the people who may use them.
        if user in (alice, bob):
            client.post(
                "/withdrawals/new/preview/", {"venue": address.venue_id}, HTTP_HX_REQUEST="true"
            )
    assert checked > 50
