"""1Konto client against its sandbox: login, token cache, wire format, errors, reconciliation."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import httpx
import pytest
from django.core.cache import cache

from venues.interface import (
    VenueAccessRefused,
    VenueAmbiguous,
    VenueCredentials,
    VenueOutcomeUnknown,
    VenueRejected,
    VenueSettings,
    VenueState,
    VenueUnavailable,
    WithdrawalSpec,
)
from venues.journal import SubmitJournal
from venues.models import SubmitAttempt
from venues.nonces import DatabaseNonceSource
from venues.onekonto import client as client_module
from venues.onekonto.client import (
    ASSET_RULES,
    FIND_WINDOW,
    STATUS_MAP,
    OneKontoClient,
    format_amount,
    password_hash,
    token_expiry,
    venue_message,
)
from venues.onekonto.sandbox import VENUE_ASSETS, OneKontoSandbox
from venues.registry import build_client
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer
from venues.sandbox.transport import InProcessTransport

pytestmark = pytest.mark.django_db


class RecordingTransport(httpx.BaseTransport):
    """The in-process sandbox, keeping every request the client sent."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


@pytest.fixture(autouse=True)
def empty_token_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def sandbox():
    return sandbox_for("onekonto")


@pytest.fixture
def seed(sandbox):
    return sandbox.seed()


@pytest.fixture
def recorded(sandbox, seed):
    transport = RecordingTransport(InProcessTransport(sandbox))
    client = OneKontoClient(
        http=httpx.Client(base_url="http://sandbox.invalid", transport=transport),
        credentials=seed.credentials,
        options=VenueSettings(),
        nonces=DatabaseNonceSource(),
    )
    yield client, transport
    client.close()


@pytest.fixture
def client(seed):
    built = build_client(
        kind="onekonto", base_url="sandbox://onekonto", credentials=seed.credentials
    )
    yield built
    built.close()


def spec_for(seed, amount: Decimal | None = None, **changes) -> WithdrawalSpec:
    fields = {
        "request_id": uuid.uuid4(),
        "asset": seed.asset,
        "network": seed.network,
        "address": seed.address,
        "amount": amount if amount is not None else seed.minimum * 2,
    } | changes
    return WithdrawalSpec(**fields)


def logins(sandbox, seed) -> int:
    with sandbox.store.tx() as tx:
        return sandbox.account(tx, seed.credentials.api_key).get("logins", 0)


def raw_http(sandbox) -> httpx.Client:
    return httpx.Client(base_url="http://sandbox.invalid", transport=InProcessTransport(sandbox))


def raw_token(sandbox, seed) -> str:
    with raw_http(sandbox) as http:
        answer = http.post(
            "/api/v1/identity/jwt",
            json={
                "user": seed.credentials.api_key,
                "password": password_hash(seed.credentials.api_secret),
            },
        )
    return answer.json()["token"]


# --- documented vectors and tables -------------------------------------------------------


def test_password_is_sent_as_the_documented_sha256_hex():
    assert (
        password_hash("password")
        == "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
    )


def test_status_map_covers_every_documented_status_value_by_value():
    assert STATUS_MAP == {
        "invalid": VenueState.FAILED,
        "pending": VenueState.PENDING,
        "completed": VenueState.COMPLETED,
        "canceled": VenueState.CANCELLED,
        "rejected": VenueState.FAILED,
    }


@pytest.mark.parametrize(
    ("amount", "asset", "wire"),
    [
        (Decimal("1"), "BTC", "1 BTC"),
        (Decimal("0.00020000"), "BTC", "0.0002 BTC"),
        (Decimal("1E+1"), "btc", "10 BTC"),
        (Decimal("12.5"), "USDT", "12.5 USDT"),
        (Decimal("0.00000001"), "ETH", "0.00000001 ETH"),
    ],
)
def test_amount_travels_as_qty_space_asset(amount, asset, wire):
    assert format_amount(amount, asset) == wire


def test_client_asset_table_agrees_with_the_sandbox():
    for asset, rules in VENUE_ASSETS.items():
        assert ASSET_RULES[asset] == rules


def test_both_documented_error_envelopes_are_read():
    assert (
        venue_message(
            {
                "errors": ["Insufficient Funds: Requested 1100 BTC but only 999 BTC is available"],
                "status": "badRequest",
                "httpStatusCode": 400,
            }
        )
        == "Insufficient Funds: Requested 1100 BTC but only 999 BTC is available"
    )
    assert (
        venue_message(
            {"status": 404, "error": "The deposit instructions with the provided ID were not found"}
        )
        == "The deposit instructions with the provided ID were not found"
    )


def test_token_expiry_comes_from_the_jwt_or_the_documented_24_hours(sandbox, seed):
    token = raw_token(sandbox, seed)
    assert token_expiry(token, issued_at=0) == pytest.approx(time.time() + 24 * 3600, abs=60)
    assert token_expiry("not-a-jwt", issued_at=1000.0) == 1000.0 + 24 * 3600


# --- wire format -------------------------------------------------------------------------


def test_login_and_submit_send_the_documented_bodies(recorded, seed):
    client, transport = recorded
    spec = spec_for(seed, amount=Decimal("0.00020000"))
    receipt = client.submit(spec, quote=None)

    login, submit = transport.requests
    assert (login.method, login.url.path) == ("POST", "/api/v1/identity/jwt")
    assert (
        login.content
        == json.dumps(
            {
                "user": seed.credentials.api_key,
                "password": password_hash(seed.credentials.api_secret),
            },
            separators=(",", ":"),
        ).encode()
    )
    assert seed.credentials.api_secret.encode() not in login.content

    assert submit.url.path == (
        f"/api/v1/accounting/account/{seed.credentials.account}/request/withdraw/blockchain"
    )
    assert submit.headers["authorization"].startswith("Bearer ")
    assert submit.headers["content-type"] == "application/json"
    assert (
        submit.content
        == json.dumps(
            {
                "amount": "0.0002 BTC",
                "network": "bitcoin",
                "address": seed.address,
                "instructions": [f"countersign:{spec.request_id}"],
            },
            separators=(",", ":"),
        ).encode()
    )
    assert receipt.reference and receipt.raw["requestStatus"] == "pending"


def test_quote_makes_no_call_and_says_no_fee_is_quoted(recorded, seed):
    client, transport = recorded
    quote = client.quote(spec_for(seed))
    assert transport.requests == []
    assert quote.fee is None and quote.net_amount is None
    assert (quote.precision, quote.minimum) == (8, Decimal("0.0001"))
    assert "not quoted" in quote.raw["note"]


def test_status_and_find_use_the_query_endpoint(recorded, seed):
    client, transport = recorded
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    status = client.status(spec, reference=receipt.reference)
    found = client.find(spec)
    assert status.state == VenueState.COMPLETED and status.raw_status == "completed"
    assert found.reference == receipt.reference
    SubmitAttempt.objects.update(reference="")  # the answer was lost: read the history
    sandbox_for("onekonto").set_mode("instructions_echo", "echoed")
    assert client.find(spec).reference == receipt.reference
    query = [r for r in transport.requests if r.method == "GET"]
    assert query[0].url.params["withdrawRequestId"] == receipt.reference
    assert query[1].url.params["withdrawRequestId"] == receipt.reference  # journal first
    assert query[2].url.params["network"] == "bitcoin"
    assert query[2].url.params["max"] == str(FIND_WINDOW)


# --- token cache -------------------------------------------------------------------------


def test_one_login_serves_several_calls_and_clients(sandbox, seed, client):
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    client.status(spec, reference=receipt.reference)
    client.find(spec)
    client.check_connection()
    other = build_client(
        kind="onekonto", base_url="sandbox://onekonto", credentials=seed.credentials
    )
    other.check_connection()
    other.close()
    assert logins(sandbox, seed) == 1


def test_cache_key_holds_no_secret(seed, client):
    client.check_connection()
    key = client._cache_key
    assert seed.credentials.api_secret not in key
    assert password_hash(seed.credentials.api_secret) not in key
    assert seed.credentials.api_key not in key
    assert cache.get(key)["token"]


def test_token_is_refreshed_before_it_expires(sandbox, seed, client):
    client.check_connection()
    entry = cache.get(client._cache_key)
    cache.set(client._cache_key, entry | {"expires_at": time.time() + 1800})  # 30 min left
    client.check_connection()
    assert logins(sandbox, seed) == 2
    assert cache.get(client._cache_key)["expires_at"] > time.time() + 23 * 3600


def test_short_lived_token_is_not_cached(sandbox, seed, client):
    sandbox.account_upsert(seed.credentials.api_key, token_seconds=1800)
    client.check_connection()
    client.check_connection()
    assert logins(sandbox, seed) == 2


def test_401_on_a_read_logs_in_again_and_retries_once(sandbox, seed, client):
    client.check_connection()
    entry = cache.get(client._cache_key)
    cache.set(client._cache_key, entry | {"token": entry["token"][:-4] + "AAAA"})
    assert client.check_connection()
    assert logins(sandbox, seed) == 2


def test_401_on_submit_logs_in_again_and_sends_exactly_once(sandbox, seed, client):
    client.check_connection()
    entry = cache.get(client._cache_key)
    cache.set(client._cache_key, entry | {"token": entry["token"][:-4] + "AAAA"})
    receipt = client.submit(spec_for(seed), quote=None)
    assert receipt.reference
    assert sandbox.count_withdrawals() == 1
    assert logins(sandbox, seed) == 2


def test_wrong_password_never_reuses_the_cached_token(sandbox, seed, client):
    client.check_connection()  # a good token is now cached for this user
    bad = build_client(
        kind="onekonto",
        base_url="sandbox://onekonto",
        credentials=VenueCredentials(
            api_key=seed.credentials.api_key,
            api_secret="not-the-password",
            account=seed.credentials.account,
        ),
    )
    with pytest.raises(VenueRejected) as caught:
        bad.submit(spec_for(seed), quote=None)
    assert "Unauthorized: invalid user or password" in caught.value.message
    assert "not-the-password" not in caught.value.message
    assert password_hash("not-the-password") not in caught.value.message
    assert "not-the-password" not in repr(bad)
    assert sandbox.count_withdrawals() == 0


def test_rate_limited_login_is_unavailable_and_sends_nothing(sandbox, seed, client):
    sandbox.inject("rate_limit", path="/identity/jwt", retry_after=5)
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(spec_for(seed), quote=None)
    assert caught.value.retry_after == 5
    assert sandbox.count_withdrawals() == 0


# --- refusals ----------------------------------------------------------------------------


def test_non_whitelisted_address_is_refused_with_the_venue_message(sandbox, seed, client):
    spec = spec_for(seed, address="bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh")
    with pytest.raises(VenueRejected) as caught:
        client.submit(spec, quote=None)
    assert caught.value.message == (
        "Address Not Whitelisted: bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh "
        "is not a whitelisted bitcoin wallet of this account"
    )
    assert sandbox.count_withdrawals() == 0


def test_insufficient_funds_is_the_documented_message(sandbox, seed, client):
    with pytest.raises(VenueRejected) as caught:
        client.submit(spec_for(seed, amount=Decimal("11")), quote=None)
    assert caught.value.message == (
        "Insufficient Funds: Requested 11 BTC but only 10 BTC is available"
    )
    assert caught.value.http_status == 400


def test_below_minimum_is_refused_by_the_venue(sandbox, seed, client):
    with pytest.raises(VenueRejected) as caught:
        client.submit(spec_for(seed, amount=Decimal("0.00005")), quote=None)
    assert caught.value.message == (
        "ValidationFailed: Amount: below the minimum withdrawal of 0.0001 BTC"
    )


def test_over_precise_amount_is_refused_before_sending(recorded, seed):
    client, transport = recorded
    with pytest.raises(VenueRejected, match="more than 8 decimal places"):
        client.submit(spec_for(seed, amount=Decimal("0.000200001")), quote=None)
    assert transport.requests == []


def test_memo_is_refused_because_1konto_has_no_tag_field(recorded, seed):
    client, transport = recorded
    with pytest.raises(VenueRejected, match="no memo/tag field"):
        client.submit(spec_for(seed, memo="12345"), quote=None)
    assert transport.requests == []


def test_wrong_account_id_gets_the_404_envelope(sandbox, seed):
    wrong = build_client(
        kind="onekonto",
        base_url="sandbox://onekonto",
        credentials=VenueCredentials(
            api_key=seed.credentials.api_key,
            api_secret=seed.credentials.api_secret,
            account="1KNOTMINE",
        ),
    )
    with pytest.raises(VenueRejected) as caught:
        wrong.submit(spec_for(seed), quote=None)
    assert caught.value.message == "The account with the provided ID was not found"
    assert caught.value.http_status == 404


def test_error_in_a_200_answer_is_still_an_error(seed):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/identity/jwt":
            return httpx.Response(200, json={"token": "t", "status": "ok", "httpStatusCode": 200})
        return httpx.Response(
            200,
            json={
                "errors": ["ValidationFailed: Amount: must be positive. Asset: required"],
                "status": "badRequest",
                "httpStatusCode": 400,
            },
        )

    client = OneKontoClient(
        http=httpx.Client(base_url="http://venue.invalid", transport=httpx.MockTransport(handler)),
        credentials=seed.credentials,
        options=VenueSettings(),
        nonces=DatabaseNonceSource(),
    )
    with pytest.raises(VenueRejected, match=r"must be positive\. Asset: required"):
        client.submit(spec_for(seed), quote=None)


def test_success_without_an_id_is_outcome_unknown(seed):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/identity/jwt":
            return httpx.Response(200, json={"token": "t"})
        return httpx.Response(200, json={"requestStatus": "pending", "status": "ok"})

    client = OneKontoClient(
        http=httpx.Client(base_url="http://venue.invalid", transport=httpx.MockTransport(handler)),
        credentials=seed.credentials,
        options=VenueSettings(),
        nonces=DatabaseNonceSource(),
    )
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec_for(seed), quote=None)


def test_read_failures_are_unavailable(sandbox, seed, client):
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    sandbox.inject("http_error", path="/request/withdraw", method="GET", status=503)
    with pytest.raises(VenueUnavailable):
        client.status(spec, reference=receipt.reference)
    sandbox.inject("timeout_after_accept", path="/request/withdraw", method="GET")
    with pytest.raises(VenueUnavailable):
        client.find(spec)


def test_unknown_reference_is_not_taken_as_a_failure(client, seed):
    with pytest.raises(VenueUnavailable, match="does not list"):
        client.status(spec_for(seed), reference="oiJ8s7oh8EqFwwnkZViCGg")


def test_cancel_and_saved_addresses_are_not_documented(client, seed):
    assert not client.supports_cancel and not client.supports_saved_addresses
    with pytest.raises(NotImplementedError):
        client.saved_addresses()
    with pytest.raises(NotImplementedError):
        client.cancel(spec_for(seed), reference="x")


# --- reconciliation ----------------------------------------------------------------------


def _lose_answers() -> None:
    SubmitAttempt.objects.update(reference="")  # as if 1Konto's answers never arrived


MODE_COMBINATIONS = [
    {"list_key": lk, "history_order": order, "instructions_echo": echo, "amount_format": fmt}
    for lk in OneKontoSandbox.MODES["list_key"]
    for order in OneKontoSandbox.MODES["history_order"]
    for echo in OneKontoSandbox.MODES["instructions_echo"]
    for fmt in OneKontoSandbox.MODES["amount_format"]
]


@pytest.mark.parametrize("modes", MODE_COMBINATIONS, ids=lambda m: "-".join(m.values()))
def test_find_from_history_alone_in_every_reading(sandbox, seed, client, modes):
    for name, value in modes.items():
        sandbox.set_mode(name, value)
    earlier = client.submit(spec_for(seed, amount=Decimal("0.0003")), quote=None)
    spec = spec_for(seed, amount=Decimal("0.0003"))
    receipt = client.submit(spec, quote=None)
    _lose_answers()
    SubmitAttempt.objects.filter(reference="").exclude(request_id=spec.request_id).update(
        reference=earlier.reference
    )  # the earlier one is claimed by its own withdrawal
    assert client.find(spec).reference == receipt.reference
    assert client.find(spec_for(seed, amount=Decimal("0.0003"))) is None  # never sent


def test_find_never_takes_a_request_claimed_by_another_withdrawal(sandbox, seed, client):
    first = spec_for(seed, amount=Decimal("0.0003"))
    client.submit(first, quote=None)  # the journal gives its request to the first
    second = spec_for(seed, amount=Decimal("0.0003"))
    SubmitJournal("onekonto").mark_sent(second.request_id)  # sent, but it never arrived
    assert client.find(second) is None


def test_find_ignores_a_lookalike_far_from_our_send(sandbox, seed, client):
    stranger = spec_for(seed, amount=Decimal("0.0003"))
    client.submit(stranger, quote=None)
    SubmitAttempt.objects.all().delete()  # made outside Countersign
    with sandbox.store.tx() as tx:
        (doc,) = sandbox.withdrawals(tx, seed.credentials.api_key)
        doc["created_at"] -= 3600
        sandbox.save_withdrawal(tx, doc)
    spec = spec_for(seed, amount=Decimal("0.0003"))
    SubmitJournal("onekonto").mark_sent(spec.request_id)  # sent, but it never arrived
    assert client.find(spec) is None


def test_find_with_two_candidates_is_ambiguous(sandbox, seed, client):
    spec = spec_for(seed, amount=Decimal("0.0003"))
    client.submit(spec, quote=None)
    client.submit(spec_for(seed, amount=Decimal("0.0003")), quote=None)
    _lose_answers()
    with pytest.raises(VenueAmbiguous):
        client.find(spec)


def test_find_of_a_full_list_never_concludes_absence(sandbox, seed, client, monkeypatch):
    monkeypatch.setattr(client_module, "FIND_WINDOW", 1)
    client.submit(spec_for(seed, amount=Decimal("0.0004")), quote=None)
    spec = spec_for(seed, amount=Decimal("0.0003"))
    SubmitJournal("onekonto").mark_sent(spec.request_id)
    with pytest.raises(VenueUnavailable):
        client.find(spec)


def test_refused_login_is_access_refused(sandbox, seed):
    wrong = VenueCredentials(
        api_key=seed.credentials.api_key, api_secret="changed", account=seed.credentials.account
    )
    client = build_client(kind="onekonto", base_url="sandbox://onekonto", credentials=wrong)
    spec = spec_for(seed)
    SubmitJournal("onekonto").mark_sent(spec.request_id)
    with pytest.raises(VenueAccessRefused, match="refused the login"):
        client.find(spec)  # a read that proves nothing about the withdrawal


def test_failed_withdrawal_is_rejected_and_refunded(sandbox, seed, client):
    sandbox.inject("settle_failure")
    spec = spec_for(seed, amount=Decimal("1"))
    receipt = client.submit(spec, quote=None)
    status = client.status(spec, reference=receipt.reference)
    assert (status.state, status.raw_status) == (VenueState.FAILED, "rejected")
    with sandbox.store.tx() as tx:
        assert sandbox.account(tx, seed.credentials.api_key)["balances"]["BTC"] == "10"


def test_check_connection_shows_no_secret(seed, client):
    text = client.check_connection()
    assert seed.credentials.account in text
    assert seed.credentials.api_secret not in text
    assert password_hash(seed.credentials.api_secret) not in text


def test_module_exposes_every_status_through_status(sandbox, seed, client):
    """Each documented status the sandbox can hold maps through status()."""
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    for raw, state in STATUS_MAP.items():
        with sandbox.store.tx() as tx:
            doc = sandbox.withdrawal(tx, seed.credentials.api_key, receipt.reference)
            sandbox.save_withdrawal(tx, doc | {"status": raw})
        assert client.status(spec, reference=receipt.reference).state == state


def test_undocumented_status_is_not_guessed(sandbox, seed, client):
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    with sandbox.store.tx() as tx:
        doc = sandbox.withdrawal(tx, seed.credentials.api_key, receipt.reference)
        sandbox.save_withdrawal(tx, doc | {"status": "settled"})
    with pytest.raises(VenueUnavailable, match="undocumented status"):
        client.status(spec, reference=receipt.reference)


# --- loopback ----------------------------------------------------------------------------


@pytest.mark.loopback
def test_quote_submit_status_over_a_real_loopback_port(sandbox, seed):
    server = LoopbackServer(sandbox_for("onekonto")).start()
    try:
        client = build_client(kind="onekonto", base_url=server.url, credentials=seed.credentials)
        spec = spec_for(seed)
        quote = client.quote(spec)
        receipt = client.submit(spec, quote=quote)
        status = client.status(spec, reference=receipt.reference)
        client.close()
    finally:
        server.stop()
    assert quote.fee is None
    assert status.state == VenueState.COMPLETED
    assert sandbox.count_withdrawals() == 1
