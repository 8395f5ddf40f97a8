"""Nord-Pay client: wire bytes, status and error tables, envelopes, prefixes, quote binding,
journal-backed reconciliation (NOTES.md §5).

Nord-Pay signs nothing (one static X-API-KEY), so NOTES.md has no signature vector for it; the
wire test below pins the exact bytes and headers instead.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import httpx
import pytest

from venues.interface import (
    Quote,
    VenueAccessRefused,
    VenueAmbiguous,
    VenueCredentials,
    VenueOutcomeUnknown,
    VenueQuoteRefused,
    VenueRejected,
    VenueSettings,
    VenueState,
    VenueUnavailable,
    WithdrawalSpec,
)
from venues.models import SubmitAttempt
from venues.nonces import DatabaseNonceSource
from venues.nordpay.client import STATUS_MAP, NordPayClient, error_text
from venues.registry import build_client
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer

pytestmark = pytest.mark.django_db

TRON = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"
SECRET = "np-key-0123456789"  # the X-API-KEY: a bearer credential, however it is named
CREDENTIALS = VenueCredentials(api_key=SECRET)


def make_spec(amount: str = "50", **overrides) -> WithdrawalSpec:
    fields = {
        "request_id": uuid.uuid4(),
        "asset": "USDT",
        "network": "TRON",
        "address": TRON,
        "amount": Decimal(amount),
    }
    return WithdrawalSpec(**(fields | overrides))


def mock_client(handler, prefix: str = "/v1") -> NordPayClient:
    http = httpx.Client(
        base_url="https://api.nord-pay.test", transport=httpx.MockTransport(handler)
    )
    return NordPayClient(
        http=http,
        credentials=CREDENTIALS,
        options=VenueSettings(path_prefix=prefix),
        nonces=DatabaseNonceSource(),
    )


def answer(status: int, body: bytes | str, headers: dict[str, str] | None = None):
    content = body.encode() if isinstance(body, str) else body
    return lambda request: httpx.Response(status, content=content, headers=headers or {})


QUOTE_ANSWER = (
    '{"identifier":"6f1c1d3e-0000-4000-8000-000000000001","currency":"USDTTRC20",'
    f'"address":"{TRON}","amount":50.5,"amount_usd":50.5,"service_fee":0.8585,'
    '"service_fee_usd":0.86,"expires_at":"2025-06-12T10:04:32.962319Z"}'
)
LIMITS_ANSWER = (
    '[{"currency":"USDTTRC20","min_amount":"25","max_amount":"38.34808259587020648967551622",'
    '"fee_percent":"1.7","available_balance":"39"}]'
)


def quote_for(spec: WithdrawalSpec, token: str = "6f1c1d3e-0000-4000-8000-000000000001"):
    return Quote(
        fee=Decimal("0.85"),
        net_amount=spec.amount - Decimal("0.85"),
        token=token,
        raw={"currency": "USDTTRC20", "address": spec.address, "amount": str(spec.amount)},
    )


@pytest.fixture
def venue():
    sandbox = sandbox_for("nordpay")
    seed = sandbox.seed()
    client = build_client(
        kind="nordpay",
        base_url="sandbox://nordpay",
        credentials=seed.credentials,
        options=seed.options,
    )
    yield sandbox, seed, client
    client.close()


def seed_spec(seed, amount: Decimal | None = None) -> WithdrawalSpec:
    return make_spec(
        amount=str(amount if amount is not None else seed.minimum * 2),
        asset=seed.asset,
        network=seed.network,
        address=seed.address,
    )


# --- wire bytes -------------------------------------------------------------------------------


def test_quote_sends_exact_bytes_and_key_header():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/limits"):
            return httpx.Response(200, content=LIMITS_ANSWER.encode())
        return httpx.Response(200, content=QUOTE_ANSWER.encode())

    quote = mock_client(handler).quote(make_spec("50.5"))

    limits, sent = seen
    assert (limits.method, limits.url.path) == ("GET", "/v1/balance/withdraw/limits")
    assert (sent.method, sent.url.path) == ("POST", "/v1/balance/withdraw/request")
    assert sent.content == (
        b'{"currency":"USDTTRC20","address":"TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7","amount":"50.5"}'
    )
    assert sent.headers["X-API-KEY"] == SECRET
    assert sent.headers["Content-Type"] == "application/json"
    assert quote.token == "6f1c1d3e-0000-4000-8000-000000000001"
    assert quote.fee == Decimal("0.8585") and quote.net_amount == Decimal("49.6415")
    assert quote.minimum == Decimal("25")
    assert quote.limit == Decimal("38.34808259587020648967551622")
    assert quote.precision == 6
    assert quote.expires_at.isoformat() == "2025-06-12T10:04:32.962319+00:00"
    # Numbers are kept as their text: no float anywhere, and raw stays storable as JSON.
    assert quote.raw["amount"] == "50.5" and quote.raw["service_fee"] == "0.8585"
    assert json.loads(json.dumps(quote.raw)) == quote.raw


def test_confirm_sends_only_the_identifier_and_returns_the_id():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=b'{"detail":"Withdrawal request created and waiting for admin approval",'
            b'"status":"pending","id":5830}',
        )

    spec = make_spec()
    receipt = mock_client(handler, prefix="").submit(spec, quote=quote_for(spec))
    assert receipt.reference == "5830"
    assert seen[0].url.path == "/balance/withdraw/confirm"
    assert seen[0].content == b'{"identifier":"6f1c1d3e-0000-4000-8000-000000000001"}'


@pytest.mark.parametrize(
    ("asset", "network", "currency"),
    [
        ("USDT", "TRON", "USDTTRC20"),
        ("USDT", "TRC20", "USDTTRC20"),
        ("USDT", "BSC", "USDTBEP20"),
        ("USDT", "BEP20", "USDTBEP20"),
        ("USDT", "ERC20", "USDTERC20"),
        ("BTC", "BTC", "BTC"),
        ("ETH", "ETH", "ETH"),
    ],
)
def test_currency_table(asset, network, currency):
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=b"[]")
        seen.append(json.loads(request.content))
        return httpx.Response(400, content=b'{"detail":"Not enough balance"}')

    with pytest.raises(VenueRejected):
        mock_client(handler).quote(make_spec("1", asset=asset, network=network))
    assert [body["currency"] for body in seen] == [currency]


def test_unknown_asset_network_is_refused_before_sending():
    calls: list[httpx.Request] = []
    client = mock_client(lambda r: calls.append(r) or httpx.Response(500))
    with pytest.raises(VenueRejected, match="no currency for DOGE on XYZ"):
        client.quote(make_spec(asset="DOGE", network="XYZ"))
    assert calls == []


def test_over_precise_amount_is_refused_not_rounded():
    calls: list[httpx.Request] = []
    client = mock_client(lambda r: calls.append(r) or httpx.Response(500))
    with pytest.raises(VenueRejected, match="more than 6 decimal places"):
        client.quote(make_spec("50.0000001"))
    assert calls == []


def test_trailing_zeros_beyond_precision_are_not_over_precise():
    sent: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            sent.append(request.content)
            return httpx.Response(200, content=QUOTE_ANSWER.replace("50.5", "50").encode())
        return httpx.Response(200, content=LIMITS_ANSWER.encode())

    mock_client(handler).quote(make_spec("50.000000000"))
    assert json.loads(sent[0])["amount"] == "50"


# --- status table -----------------------------------------------------------------------------


EXPECTED_STATES = {
    "pending": VenueState.PENDING,
    "processing": VenueState.PENDING,
    "processed": VenueState.COMPLETED,
    "completed": VenueState.COMPLETED,
    "success": VenueState.COMPLETED,
    "failed": VenueState.FAILED,
    "rejected": VenueState.FAILED,
    "cancelled": VenueState.FAILED,
    "canceled": VenueState.FAILED,
}


def test_status_map_is_exactly_the_table():
    assert STATUS_MAP == EXPECTED_STATES


def history_answer(*items: dict) -> bytes:
    return json.dumps(
        {"items": list(items), "total": len(items), "offset": 0, "limit": 200}
    ).encode()


def history_item(wid: int, status: str, **extra) -> dict:
    return {
        "id": wid,
        "currency": "USDTTRC20",
        "address": TRON,
        "tx_hash": "0xabc" if status == "processed" else "",
        "amount": "50",
        "amount_usd": "50",
        "service_fee": "0.85",
        "service_fee_usd": "0.85",
        "status": status,
        "created_at": "2026-05-26T12:40:16.594673+00:00",
        **extra,
    }


@pytest.mark.parametrize(("raw", "state"), sorted(EXPECTED_STATES.items()))
def test_status_reads_each_value(raw, state):
    client = mock_client(answer(200, history_answer(history_item(7, "x"), history_item(8, raw))))
    status = client.status(make_spec(), reference="8")
    assert (status.reference, status.state, status.raw_status) == ("8", state, raw)


def test_unknown_status_stays_pending_and_says_so():
    client = mock_client(answer(200, history_answer(history_item(8, "on_hold"))))
    status = client.status(make_spec(), reference="8")
    assert status.state == VenueState.PENDING
    assert "on_hold" in status.detail


def test_status_pages_through_history_with_documented_params():
    queries: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        queries.append(params)
        offset = int(params["offset"])
        items = [history_item(1000 - offset - i, "pending") for i in range(200)]
        if offset >= 200:
            items = [history_item(42, "processed", tx_hash="0xfeed")]
        body = {"items": items, "total": 201, "offset": offset, "limit": 200, "total_pages": 2}
        return httpx.Response(200, content=json.dumps(body).encode())

    status = mock_client(handler).status(make_spec(), reference="42")
    assert status.state == VenueState.COMPLETED and status.txid == "0xfeed"
    assert queries[0] == {
        "currency": "USDTTRC20",
        "limit": "200",
        "offset": "0",
        "sort": "created_at:desc",
    }
    assert queries[1]["offset"] == "200"


def test_status_of_an_id_not_in_history_is_unavailable():
    client = mock_client(answer(200, history_answer(history_item(8, "pending"))))
    with pytest.raises(VenueUnavailable):
        client.status(make_spec(), reference="9")


# --- errors and envelopes ---------------------------------------------------------------------


def test_error_text_detail_string():
    assert error_text({"detail": "Not enough balance"}) == "Not enough balance"


def test_error_text_detail_list_is_legible():
    payload = {
        "detail": [
            {"loc": ["body", "amount"], "msg": "Input should be greater than 0", "type": "gt"},
            {"loc": ["body", "address"], "msg": "Field required", "type": "missing"},
        ]
    }
    assert error_text(payload) == (
        "body.amount: Input should be greater than 0; body.address: Field required"
    )


def test_error_text_never_echoes_the_input_of_a_validation_item():
    payload = {"detail": [{"loc": ["header"], "msg": "bad", "type": "x", "input": SECRET}]}
    assert SECRET not in error_text(payload)


def test_error_text_newer_envelope_string_and_list():
    assert (
        error_text(
            {"success": False, "data": None, "error": {"type": "bad_request", "details": "Nope"}}
        )
        == "Nope"
    )
    listed = {
        "success": False,
        "data": None,
        "error": {"type": "validation_error", "details": [{"loc": ["body"], "msg": "bad"}]},
    }
    assert error_text(listed) == "body: bad"
    assert error_text({"success": False, "error": {"type": "forbidden"}}) == "forbidden"


CONFIRM_ERRORS = [
    ("USDTTRC20 is not available for withdraw at this moment", VenueUnavailable),
    ("Amount is less than minimum withdraw amount for USDTTRC20 (25)", VenueRejected),
    ("Withdraw request not found", VenueRejected),
    ("Withdraw request expired", VenueQuoteRefused),
    ("Not enough balance", VenueRejected),
]


@pytest.mark.parametrize("envelope", ["detail", "success"])
@pytest.mark.parametrize(("text", "outcome"), CONFIRM_ERRORS)
def test_documented_errors_in_both_envelopes(text, outcome, envelope):
    if envelope == "detail":
        body = {"detail": text}
    else:
        body = {"success": False, "data": None, "error": {"type": "bad_request", "details": text}}
    client = mock_client(answer(400, json.dumps(body)))
    spec = make_spec()
    with pytest.raises(outcome) as caught:
        client.submit(spec, quote=quote_for(spec))
    assert type(caught.value) is outcome
    assert caught.value.message == text and caught.value.http_status == 400


def test_failure_envelope_with_http_200_is_a_refusal():
    body = json.dumps(
        {
            "success": False,
            "data": None,
            "error": {"type": "bad_request", "details": "Not enough balance"},
        }
    )
    spec = make_spec()
    with pytest.raises(VenueRejected, match="Not enough balance"):
        mock_client(answer(200, body)).submit(spec, quote=quote_for(spec))


def test_success_envelope_is_unwrapped():
    body = '{"success":true,"data":{"detail":"ok","status":"pending","id":77},"error":null}'
    spec = make_spec()
    assert mock_client(answer(200, body)).submit(spec, quote=quote_for(spec)).reference == "77"


def test_validation_list_is_rejected_with_legible_message():
    body = '{"detail":[{"loc":["body","identifier"],"msg":"Field required","type":"missing"}]}'
    spec = make_spec()
    with pytest.raises(VenueRejected) as caught:
        mock_client(answer(422, body)).submit(spec, quote=quote_for(spec))
    assert caught.value.message == "body.identifier: Field required"


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusals_are_access_refused_without_the_key(status):
    client = mock_client(answer(status, '{"detail":"Invalid API key"}'))
    with pytest.raises(VenueAccessRefused) as caught:
        client.check_connection()
    assert caught.value.message == "Invalid API key"
    assert SECRET not in str(caught.value) and SECRET not in repr(client)


def test_rate_limit_carries_retry_after():
    client = mock_client(answer(429, '{"detail":"Too Many Requests"}', {"Retry-After": "12"}))
    spec = make_spec()
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(spec, quote=quote_for(spec))
    assert caught.value.retry_after == 12.0


def test_server_error_on_confirm_is_unknown_and_on_history_unavailable():
    spec = make_spec()
    client = mock_client(answer(502, "<html>bad gateway</html>"))
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec, quote=quote_for(spec))
    with pytest.raises(VenueUnavailable):
        client.status(spec, reference="1")


def test_unreadable_confirm_answer_is_unknown():
    spec = make_spec()
    with pytest.raises(VenueOutcomeUnknown):
        mock_client(answer(200, "not json")).submit(spec, quote=quote_for(spec))
    with pytest.raises(VenueOutcomeUnknown):
        mock_client(answer(200, '{"detail":"ok","status":"pending"}')).submit(
            spec, quote=quote_for(spec)
        )


def test_confirm_is_never_retried():
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, content=b'{"detail":"Service Unavailable"}')

    spec = make_spec()
    with pytest.raises(VenueOutcomeUnknown):
        mock_client(handler).submit(spec, quote=quote_for(spec))
    assert len(calls) == 1


# --- quote binding ----------------------------------------------------------------------------


def test_submit_without_quote_is_rejected_before_sending():
    calls: list[httpx.Request] = []
    client = mock_client(lambda r: calls.append(r) or httpx.Response(500))
    with pytest.raises(VenueRejected, match="identifier"):
        client.submit(make_spec(), quote=None)
    assert calls == []


@pytest.mark.parametrize(
    "other",
    [
        {"amount": Decimal("51")},
        {"address": "TXYZ"},
        {"asset": "BTC", "network": "BTC", "address": TRON},
    ],
)
def test_quote_of_another_payload_is_refused_before_sending(other):
    calls: list[httpx.Request] = []
    client = mock_client(lambda r: calls.append(r) or httpx.Response(500))
    spec = make_spec()
    with pytest.raises(VenueQuoteRefused):
        client.submit(make_spec(**other), quote=quote_for(spec))
    assert calls == []


# --- against the sandbox ----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "prefix"), [("none", ""), ("/v1", "/v1")])
def test_both_path_prefixes_work_end_to_end(mode, prefix):
    sandbox = sandbox_for("nordpay")
    sandbox.set_mode("path_prefix", mode)
    seed = sandbox.seed()
    client = build_client(
        kind="nordpay",
        base_url="sandbox://nordpay",
        credentials=seed.credentials,
        options=VenueSettings(path_prefix=prefix),
    )
    spec = seed_spec(seed)
    receipt = client.submit(spec, quote=client.quote(spec))
    assert client.status(spec, reference=receipt.reference).state == VenueState.COMPLETED
    assert "USDTTRC20" in client.check_connection()


def test_newer_envelope_end_to_end(venue):
    sandbox, seed, client = venue
    sandbox.use_envelope("success")
    spec = seed_spec(seed)
    quote = client.quote(spec)
    receipt = client.submit(spec, quote=quote)
    assert client.status(spec, reference=receipt.reference).raw_status == "processed"
    with pytest.raises(VenueRejected) as caught:
        client.quote(seed_spec(seed, amount=Decimal("1")))
    assert caught.value.message == "Amount is less than minimum withdraw amount for USDTTRC20 (25)"


def test_quote_fee_and_net_from_the_sandbox(venue):
    _sandbox, seed, client = venue
    quote = client.quote(seed_spec(seed, amount=Decimal("100")))
    assert quote.fee == Decimal("1.7") and quote.net_amount == Decimal("98.3")
    assert quote.minimum == Decimal("25") and quote.limit == seed.balance
    assert quote.expires_at is not None and quote.token


def test_expired_identifier_goes_back_for_a_new_quote(venue):
    sandbox, seed, client = venue
    sandbox.account_upsert(seed.credentials.api_key, request_ttl=-1)
    spec = seed_spec(seed)
    with pytest.raises(VenueQuoteRefused) as caught:
        client.submit(spec, quote=client.quote(spec))
    assert caught.value.message == "Withdraw request expired"
    assert sandbox.count_withdrawals() == 0


def test_second_confirm_of_one_identifier_is_refused(venue):
    sandbox, seed, client = venue
    spec = seed_spec(seed)
    quote = client.quote(spec)
    first = client.submit(spec, quote=quote)
    with pytest.raises(VenueRejected) as caught:
        client.submit(spec, quote=quote)
    assert caught.value.message == "Withdraw request not found"
    assert sandbox.count_withdrawals() == 1
    assert client.find(spec).reference == first.reference


def test_amount_travels_as_string_and_balance_is_debited(venue):
    sandbox, seed, client = venue
    spec = seed_spec(seed, amount=Decimal("60.123456"))
    receipt = client.submit(spec, quote=client.quote(spec))
    (doc,) = sandbox.all_withdrawals()
    assert doc["amount_sent"] == "60.123456" and doc["reference"] == receipt.reference
    assert "USDTTRC20" in client.check_connection()
    balance = Decimal(str(seed.balance)) - Decimal("60.123456")
    quote = client.quote(seed_spec(seed, amount=Decimal("30")))
    assert quote.limit == balance


def test_not_enough_balance_is_the_venues_message(venue):
    _sandbox, seed, client = venue
    with pytest.raises(VenueRejected) as caught:
        client.quote(seed_spec(seed, amount=seed.balance + 1))
    assert caught.value.message == "Not enough balance"


def test_settled_failure_is_failed_and_refunded(venue):
    sandbox, seed, client = venue
    sandbox.inject("settle_failure")
    spec = seed_spec(seed)
    receipt = client.submit(spec, quote=client.quote(spec))
    status = client.status(spec, reference=receipt.reference)
    assert (status.state, status.raw_status) == (VenueState.FAILED, "cancelled")
    assert client.quote(seed_spec(seed, amount=Decimal("30"))).limit == seed.balance


def test_find_tells_identical_payloads_apart(venue):
    sandbox, seed, client = venue
    first, second = seed_spec(seed), seed_spec(seed)
    receipt = client.submit(first, quote=client.quote(first))
    quote = client.quote(second)
    sandbox.inject("timeout_after_accept", path=sandbox.SUBMIT_PATH, method="POST")
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(second, quote=quote)
    found = client.find(second)
    assert found is not None and found.reference != receipt.reference
    assert client.find(first).reference == receipt.reference
    assert client.find(second).reference == found.reference  # the match is remembered
    assert client.find(seed_spec(seed)) is None  # never confirmed: nothing at the venue


def test_find_after_lost_answer_when_nothing_arrived(venue):
    sandbox, seed, client = venue
    first = seed_spec(seed)
    client.submit(first, quote=client.quote(first))
    second = seed_spec(seed)
    quote = client.quote(second)
    sandbox.inject("timeout_before_accept", path=sandbox.SUBMIT_PATH, method="POST")
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(second, quote=quote)
    # The only withdrawal of that payload is the first one's, so it is not the second's.
    assert client.find(second) is None


def test_the_x_api_key_is_the_venues_api_key_field():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b'{"balances": {"BTC": "0.05"}}')

    http = httpx.Client(
        base_url="https://api.nord-pay.test", transport=httpx.MockTransport(handler)
    )
    configured = VenueCredentials(api_key="the-key", api_secret="something else")
    client = NordPayClient(
        http=http, credentials=configured, options=VenueSettings(), nonces=DatabaseNonceSource()
    )
    client.check_connection()
    assert seen[0].headers["X-API-KEY"] == "the-key"
    secret_only = NordPayClient(
        http=http,
        credentials=VenueCredentials(api_secret="the-key"),
        options=VenueSettings(),
        nonces=DatabaseNonceSource(),
    )
    with pytest.raises(VenueAccessRefused, match="API key field"):
        secret_only.check_connection()


def test_wrong_prefix_is_refused_not_taken_for_an_empty_history():
    sandbox = sandbox_for("nordpay")
    seed = sandbox.seed()  # answers /v1 only (the default mode)
    client = build_client(
        kind="nordpay",
        base_url="sandbox://nordpay",
        credentials=seed.credentials,
        options=VenueSettings(path_prefix=""),
    )
    with pytest.raises(VenueRejected, match="Not Found"):
        client.check_connection()


@pytest.mark.parametrize("amounts", ["net", "gross"])
def test_find_from_history_alone_in_either_amount_reading(venue, amounts):
    sandbox, seed, client = venue
    sandbox.set_mode("history_amount", amounts)
    spec = seed_spec(seed)
    receipt = client.submit(spec, quote=client.quote(spec))
    SubmitAttempt.objects.update(reference="")  # the confirm's answer was lost
    found = client.find(spec)
    assert found is not None and found.reference == receipt.reference


def test_find_with_two_unclaimed_candidates_is_ambiguous(venue):
    _sandbox, seed, client = venue
    spec, twin = seed_spec(seed), seed_spec(seed)
    client.submit(spec, quote=client.quote(spec))
    client.submit(twin, quote=client.quote(twin))
    SubmitAttempt.objects.update(reference="")
    with pytest.raises(VenueAmbiguous):
        client.find(spec)


def test_cancel_and_saved_addresses_are_not_offered(venue):
    _sandbox, seed, client = venue
    assert client.supports_cancel is False and client.supports_saved_addresses is False
    assert client.idempotent_submit is False and client.supports_quote is True
    with pytest.raises(NotImplementedError):
        client.cancel(seed_spec(seed), reference="1")
    with pytest.raises(NotImplementedError):
        client.saved_addresses()


def test_connection_check_never_shows_the_key(venue):
    _sandbox, seed, client = venue
    description = client.check_connection()
    assert description.startswith("Nord-Pay:")
    assert seed.credentials.api_key not in description
    assert seed.credentials.api_key not in repr(client)


@pytest.mark.loopback
def test_loopback_quote_submit_status():
    sandbox = sandbox_for("nordpay")
    seed = sandbox.seed()
    server = LoopbackServer(sandbox).start()
    try:
        client = build_client(
            kind="nordpay", base_url=server.url, credentials=seed.credentials, options=seed.options
        )
        spec = seed_spec(seed)
        quote = client.quote(spec)
        receipt = client.submit(spec, quote=quote)
        status = client.status(spec, reference=receipt.reference)
        client.close()
    finally:
        server.stop()
    assert quote.fee == (spec.amount * Decimal("0.017")).quantize(Decimal("0.000001"))
    assert status.state == VenueState.COMPLETED and status.txid.startswith("0x")
