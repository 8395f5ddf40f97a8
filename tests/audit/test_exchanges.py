"""Venue requests and responses kept as evidence: captured at the httpx level, redacted.

Every venue kind is driven through its sandbox with a recorder attached; no credential (key,
secret, passphrase, 1Konto password hash or bearer token) may survive in what is stored.
"""

from __future__ import annotations

import contextlib
import json
import re

import pytest

from audit.exchanges import REDACTED, ExchangeRecorder, redact_body, redact_headers
from tests.factories import VenueFactory, destination_of, good_amount
from venues.interface import VenueError, WithdrawalSpec
from venues.onekonto.client import password_hash
from venues.registry import KINDS, client_for

pytestmark = pytest.mark.django_db


def spec_for(venue) -> WithdrawalSpec:
    import uuid

    dest = destination_of(venue)
    return WithdrawalSpec(
        request_id=uuid.uuid4(),
        asset=dest["asset"],
        network=dest["network"],
        address=dest["address"],
        memo=dest.get("memo", ""),
        amount=good_amount(venue),
        venue_key=dest.get("venue_key", ""),
        fee_deduct_type="",
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_credential_survives_in_a_recorded_exchange(kind):
    venue = VenueFactory(kind=kind)
    creds = venue.credentials
    recorder = ExchangeRecorder()
    client = client_for(venue, exchange_log=recorder)
    calls = (
        lambda: client.quote(spec_for(venue)),
        lambda: client.find(spec_for(venue)),
        client.check_connection,  # 1Konto's login among them
    )
    try:
        for call in calls:
            # A venue without a documented quote refuses locally; the others still make calls.
            with contextlib.suppress(VenueError):
                call()
    finally:
        client.close()
    assert recorder.exchanges, kind
    stored = json.dumps(recorder.exchanges, default=str)
    # For 1Konto the "key" is the login user: half of the credential, so redacted as well.
    # Nord-Pay has a key and no secret.
    secrets = [creds.api_key, creds.passphrase]
    if creds.api_secret:
        secrets += [creds.api_secret, password_hash(creds.api_secret)]
    for secret in filter(None, secrets):
        assert secret not in stored, kind
    assert not re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", stored), "a JWT was kept"
    assert REDACTED in stored
    assert all(x["status_code"] for x in recorder.exchanges), kind


def test_header_redaction_covers_every_auth_scheme():
    headers = {
        "API-Key": "k",
        "API-Sign": "s",
        "KC-API-PASSPHRASE": "p",
        "KC-API-SIGN": "s",
        "X-API-KEY": "x",
        "Authorization": "Bearer t",
        "Content-Type": "application/json",
        "API-Nonce": "17",
    }
    clean = redact_headers(headers)
    assert {k for k, v in clean.items() if v == REDACTED} == {
        "API-Key",
        "API-Sign",
        "KC-API-PASSPHRASE",
        "KC-API-SIGN",
        "X-API-KEY",
        "Authorization",
    }
    assert clean["Content-Type"] == "application/json" and clean["API-Nonce"] == "17"


def test_body_redaction_keeps_evidence_and_drops_secrets():
    body = json.dumps(
        {"user": "u", "password": "h", "nested": {"api_secret": "s", "fee_token": "ft"}}
    )
    clean = json.loads(redact_body(body.encode(), "application/json"))
    assert clean == {
        "user": REDACTED,  # 1Konto's login user is half of its credential
        "password": REDACTED,
        "nested": {"api_secret": REDACTED, "fee_token": "ft"},
    }
    form = redact_body(
        b"nonce=1&asset=XBT&key=treasury&otp=123", "application/x-www-form-urlencoded"
    )
    assert form == "nonce=1&asset=XBT&key=treasury&otp=123"
    assert redact_body(b"secret stuff in plain text") == REDACTED


def test_a_request_that_never_got_an_answer_is_kept_with_its_error():
    import httpx

    recorder = ExchangeRecorder()
    request = httpx.Request("POST", "http://venue.invalid/withdraw", headers={"API-Key": "k"})
    recorder(request, None)
    (entry,) = recorder.exchanges
    assert entry["error"] == "no response received" and entry["status_code"] is None
    assert entry["request_headers"]["API-Key"] == REDACTED
