"""KuCoin client: signature vectors (NOTES.md §3.1), status and error tables, venue behaviour."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest

from venues import interface
from venues.interface import (
    VenueAmbiguous,
    VenueCredentials,
    VenueOutcomeUnknown,
    VenueRejected,
    VenueSettings,
    VenueState,
    VenueUnavailable,
)
from venues.kucoin import client as kucoin
from venues.kucoin.client import (
    ERROR_OUTCOMES,
    STATUS_MAP,
    KucoinClient,
    auth_headers,
    sign,
    signed_passphrase,
)
from venues.kucoin.sandbox import NOT_CANCELLABLE, KucoinSandbox
from venues.models import SubmitAttempt
from venues.nonces import DatabaseNonceSource
from venues.registry import build_client
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer

from .support import make_spec

pytestmark = pytest.mark.django_db

VECTOR_SECRET = "test_api_secret"
VECTOR_CREDENTIALS = VenueCredentials(
    api_key="vector-key", api_secret=VECTOR_SECRET, passphrase="test_passphrase"
)
VECTOR_TIMESTAMP = "1234567890000"


# --- signature vectors ------------------------------------------------------------------------


def test_official_sdk_vector():
    assert sign(b"test_plain", VECTOR_SECRET) == "jie/gxS38wLFFaBwl/cAzFbAzlI8MIny96jSXrB+iP4="


def test_derived_passphrase_vector():
    assert (
        signed_passphrase("test_passphrase", VECTOR_SECRET, "3")
        == "Ikr9KjwgA4urCb5Az1TNKgQELW10z84iOq+wsZsRRz0="
    )
    assert signed_passphrase("test_passphrase", VECTOR_SECRET, "2") == (
        "Ikr9KjwgA4urCb5Az1TNKgQELW10z84iOq+wsZsRRz0="
    )


def test_v1_key_sends_the_passphrase_in_clear():
    assert signed_passphrase("test_passphrase", VECTOR_SECRET, "1") == "test_passphrase"


def test_derived_post_withdrawals_vector():
    body = (
        b'{"currency":"USDT","toAddress":"TKFRQXSDcY4kd3QLzw7uK16GmLrjJggwX8",'
        b'"amount":"3","withdrawType":"ADDRESS","chain":"trx"}'
    )
    headers = auth_headers(
        credentials=VECTOR_CREDENTIALS,
        key_version="3",
        timestamp=VECTOR_TIMESTAMP,
        method="POST",
        target="/api/v3/withdrawals",
        body=body,
    )
    assert headers == {
        "KC-API-KEY": "vector-key",
        "KC-API-SIGN": "TxQ3JzTsEYPcLrW3uGbO/QNLnVb1UKnsJBQS5GsJGrs=",
        "KC-API-TIMESTAMP": VECTOR_TIMESTAMP,
        "KC-API-PASSPHRASE": "Ikr9KjwgA4urCb5Az1TNKgQELW10z84iOq+wsZsRRz0=",
        "KC-API-KEY-VERSION": "3",
        "Content-Type": "application/json",
    }


def test_derived_get_quotas_vector():
    headers = auth_headers(
        credentials=VECTOR_CREDENTIALS,
        key_version="3",
        timestamp=VECTOR_TIMESTAMP,
        method="get",  # the method is upper-cased before signing
        target="/api/v1/withdrawals/quotas?currency=USDT&chain=trx",
        body=b"",
    )
    assert headers["KC-API-SIGN"] == "/GFNHeQIL0zFDFjmdznIQxFFp0NUz3btGTBkjklkgjk="


def test_timestamp_is_wall_clock_milliseconds(monkeypatch):
    # As in the SDK's test: time.time() == 1234567890 gives KC-API-TIMESTAMP "1234567890000".
    monkeypatch.setattr(kucoin.time, "time", lambda: 1234567890)
    assert kucoin.timestamp_ms() == VECTOR_TIMESTAMP


class Recorder:
    """A transport that keeps every request and answers with canned KuCoin documents."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.answers.pop(0)


def recorded_client(recorder: Recorder, options: VenueSettings | None = None) -> KucoinClient:
    http = httpx.Client(base_url="https://api.kucoin.test", transport=httpx.MockTransport(recorder))
    return KucoinClient(
        http=http,
        credentials=VECTOR_CREDENTIALS,
        options=options or VenueSettings(),
        nonces=DatabaseNonceSource(),
    )


def ok(data) -> httpx.Response:
    return httpx.Response(200, json={"code": "200000", "data": data})


QUOTA = {
    "currency": "USDT",
    "remainAmount": "500",
    "availableAmount": "800",
    "withdrawMinFee": "1",
    "withdrawMinSize": "10",
    "isWithdrawEnabled": True,
    "precision": 6,
    "chain": "TRC20",
    "reason": None,
}


def test_client_signs_the_quotas_call_as_the_derived_vector(monkeypatch):
    monkeypatch.setattr(kucoin, "timestamp_ms", lambda: VECTOR_TIMESTAMP)
    recorder = Recorder(ok(QUOTA))
    client = recorded_client(recorder)
    spec = make_spec_for("USDT", "trx", Decimal(3))
    client.quote(spec)
    sent = recorder.requests[0]
    assert sent.url.raw_path == b"/api/v1/withdrawals/quotas?currency=USDT&chain=trx"
    assert sent.headers["KC-API-TIMESTAMP"] == VECTOR_TIMESTAMP
    assert sent.headers["KC-API-SIGN"] == "/GFNHeQIL0zFDFjmdznIQxFFp0NUz3btGTBkjklkgjk="
    assert sent.content == b""


def test_submit_signs_exactly_the_compact_bytes_it_sends(monkeypatch):
    monkeypatch.setattr(kucoin, "timestamp_ms", lambda: VECTOR_TIMESTAMP)
    recorder = Recorder(ok({"withdrawalId": "670deec84d64da0007d7c946"}))
    client = recorded_client(recorder, VenueSettings(fee_deduct_type="EXTERNAL"))
    spec = make_spec_for("USDT", "trx", Decimal("3.000000"))
    receipt = client.submit(spec, quote=None)
    sent = recorder.requests[0]
    assert receipt.reference == "670deec84d64da0007d7c946"
    assert sent.content == (
        b'{"currency":"USDT","toAddress":"TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7","amount":"3",'
        b'"withdrawType":"ADDRESS","chain":"trx","remark":"' + str(spec.request_id).encode() + b'",'
        b'"feeDeductType":"EXTERNAL"}'
    )
    assert sent.headers["KC-API-SIGN"] == sign(
        VECTOR_TIMESTAMP.encode() + b"POST/api/v3/withdrawals" + sent.content, VECTOR_SECRET
    )
    assert sent.headers["Content-Type"] == "application/json"


def make_spec_for(asset: str, chain: str, amount: Decimal, **changes) -> interface.WithdrawalSpec:
    address = {
        "trx": "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7",
        "xrp": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh",
    }
    fields = {"asset": asset, "network": chain, "address": address[chain], "amount": amount}
    return interface.WithdrawalSpec(request_id=uuid.uuid4(), **(fields | changes))


# --- tables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("PROCESSING", VenueState.PENDING),
        ("REVIEW", VenueState.PENDING),
        ("WALLET_PROCESSING", VenueState.PENDING),
        ("SUCCESS", VenueState.COMPLETED),
        ("FAILURE", VenueState.FAILED),
    ],
)
def test_status_map_value_by_value(raw, state):
    assert STATUS_MAP[raw] is state
    assert kucoin._state({"status": raw}) is state


def test_status_map_covers_exactly_the_documented_values():
    assert set(STATUS_MAP) == {"PROCESSING", "REVIEW", "WALLET_PROCESSING", "SUCCESS", "FAILURE"}


def test_failure_with_a_cancel_reason_reads_cancelled():
    detail = {"status": "FAILURE", "failureReason": "CANCELED", "failureReasonMsg": None}
    assert kucoin._state(detail) is VenueState.CANCELLED
    assert kucoin._state({"status": "FAILURE", "failureReason": "WALLET_FAILED"}) is (
        VenueState.FAILED
    )


def test_undocumented_status_keeps_tracking():
    assert kucoin._state({"status": "SOMETHING_NEW"}) is VenueState.PENDING


def test_every_documented_error_code_has_one_outcome():
    documented = {error.split(":", 1)[0] for error in KucoinSandbox.DOCUMENTED_ERRORS}
    assert documented <= set(ERROR_OUTCOMES)
    for error, outcome in KucoinSandbox.DOCUMENTED_ERRORS.items():
        code = error.split(":", 1)[0]
        if outcome != "VenueOutcomeUnknown":
            assert ERROR_OUTCOMES[code] is getattr(interface, outcome), error


def test_server_error_code_is_unavailable_on_a_read():
    recorder = Recorder(
        httpx.Response(500, json={"code": "500000", "msg": "Internal Server Error"})
    )
    with pytest.raises(VenueUnavailable):
        recorded_client(recorder).quote(make_spec_for("USDT", "trx", Decimal(3)))


def test_undocumented_code_on_submit_is_outcome_unknown_and_on_read_rejected():
    answer = {"code": "999999", "msg": "something new"}
    recorder = Recorder(httpx.Response(400, json=answer), httpx.Response(400, json=answer))
    client = recorded_client(recorder)
    with pytest.raises(VenueOutcomeUnknown) as unknown:
        client.submit(make_spec_for("USDT", "trx", Decimal(3)), quote=None)
    assert "something new" in unknown.value.message
    with pytest.raises(VenueRejected):
        client.status(make_spec_for("USDT", "trx", Decimal(3)), reference="x")


def test_unreadable_success_on_submit_is_outcome_unknown():
    recorder = Recorder(httpx.Response(200, content=b"<html>gateway</html>"))
    with pytest.raises(VenueOutcomeUnknown):
        recorded_client(recorder).submit(make_spec_for("USDT", "trx", Decimal(3)), quote=None)


def test_rate_limit_retry_after_comes_from_gw_ratelimit_reset_in_ms(client, sandbox, seed):
    sandbox.inject("rate_limit", path=sandbox.SUBMIT_PATH, retry_after=7.5)
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(make_spec(seed), quote=None)
    assert caught.value.retry_after == 7.5
    assert caught.value.code == "429000"


def test_stale_timestamp_is_unavailable_safe_to_retry(client, seed, monkeypatch):
    monkeypatch.setattr(kucoin, "timestamp_ms", lambda: VECTOR_TIMESTAMP)
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(make_spec(seed), quote=None)
    assert caught.value.code == "400002"
    assert caught.value.message == "Invalid KC-API-TIMESTAMP"


# --- quote ------------------------------------------------------------------------------------


def test_quote_reads_fee_minimum_precision_and_limit(client, seed):
    quote = client.quote(make_spec(seed))
    assert quote.fee == Decimal("0.0005")
    assert quote.minimum == Decimal("0.001")
    assert quote.precision == 8
    # limit = min(availableAmount (balance 10), remainAmount (daily 100))
    assert quote.limit == Decimal("10")
    assert quote.raw["feeDeductType"] == "INTERNAL"
    assert quote.net_amount == Decimal("0.0015")


def test_quote_external_fee_keeps_the_full_amount():
    recorder = Recorder(ok(QUOTA))
    client = recorded_client(recorder, VenueSettings(fee_deduct_type="EXTERNAL"))
    quote = client.quote(make_spec_for("USDT", "trx", Decimal(20)))
    assert quote.net_amount == Decimal(20)
    assert quote.fee == Decimal(1)
    assert quote.limit == Decimal(500)
    assert quote.raw["feeDeductType"] == "EXTERNAL"


def test_quote_unspecified_fee_type_follows_the_available_balance():
    client = recorded_client(Recorder(ok(QUOTA), ok(QUOTA)))
    covered = client.quote(make_spec_for("USDT", "trx", Decimal(20)))
    assert covered.raw["feeDeductType"] == "EXTERNAL" and covered.net_amount == Decimal(20)
    short = client.quote(make_spec_for("USDT", "trx", Decimal(800)))
    assert short.raw["feeDeductType"] == "INTERNAL" and short.net_amount == Decimal(799)


def test_spec_fee_deduct_type_overrides_the_account_default(client, seed, sandbox):
    spec = make_spec(seed, fee_deduct_type="EXTERNAL")
    assert client.quote(spec).net_amount == spec.amount
    receipt = client.submit(spec, quote=None)
    doc = next(w for w in sandbox.all_withdrawals() if w["reference"] == receipt.reference)
    assert doc["fee_deduct_type"] == "EXTERNAL"
    assert Decimal(doc["debited"]) == spec.amount + Decimal("0.0005")


def test_quote_on_a_disabled_chain_is_rejected(client, seed, sandbox):
    sandbox.account_upsert(seed.credentials.api_key, disabled_chains=["BTC:bech32"])
    with pytest.raises(VenueRejected) as caught:
        client.quote(make_spec(seed))
    assert caught.value.message == "withdraw.disabled"


# --- submit, status, find, cancel ------------------------------------------------------------


def test_submit_sends_memo_and_remark(client, seed, sandbox):
    spec = make_spec(seed, index=4)  # XRP with a destination tag
    receipt = client.submit(spec, quote=client.quote(spec))
    doc = next(w for w in sandbox.all_withdrawals() if w["reference"] == receipt.reference)
    assert doc["memo"] == "104729"
    assert doc["remark"] == str(spec.request_id)
    assert client.status(spec, reference=receipt.reference).raw["memo"] == "104729"


def test_over_precise_amount_is_refused_before_anything_is_sent(client, seed, sandbox):
    spec = make_spec(seed, amount=Decimal("0.002000001"))
    with pytest.raises(VenueRejected) as caught:
        client.submit(spec, quote=client.quote(spec))
    assert "8 decimal places" in caught.value.message
    assert sandbox.count_withdrawals() == 0


def test_over_precise_amount_without_quote_gets_the_venue_precision_error(client, seed, sandbox):
    with pytest.raises(VenueRejected) as caught:
        client.submit(make_spec(seed, amount=Decimal("0.002000001")), quote=None)
    assert caught.value.code == "400100"
    assert "multiple of the amount precision" in caught.value.message
    assert sandbox.count_withdrawals() == 0


def test_address_off_the_whitelist_gets_the_venue_message(client, seed):
    spec = make_spec(seed, index=1, address="0x52908400098527886E0F7030069857D2E4169EE7")
    with pytest.raises(VenueRejected) as caught:
        client.submit(spec, quote=None)
    assert caught.value.code == "260325"
    assert caught.value.message == (
        "Already set withdraw whitelist, this address is not favorite address"
    )


def test_status_reports_txid_on_success_and_reason_on_failure(client, seed, sandbox):
    spec = make_spec(seed)
    done = client.status(spec, reference=client.submit(spec, quote=None).reference)
    assert done.state is VenueState.COMPLETED and done.raw_status == "SUCCESS"
    assert len(done.txid) == 64
    sandbox.inject("settle_failure")
    failed_spec = make_spec(seed)
    failed = client.status(failed_spec, reference=client.submit(failed_spec, quote=None).reference)
    assert failed.state is VenueState.FAILED and failed.detail
    assert failed.raw["returnStatus"] == "SUCCESS"


def test_find_walks_every_history_page(client, seed, monkeypatch):
    monkeypatch.setattr(kucoin, "HISTORY_PAGE_SIZE", 10)
    first = make_spec(seed)
    reference = client.submit(first, quote=None).reference
    for _ in range(11):
        client.submit(make_spec(seed), quote=None)
    found = client.find(first)  # the oldest one is on page 2, newest first
    assert found is not None and found.reference == reference
    assert client.find(make_spec(seed)) is None


@pytest.mark.parametrize("ids", ["absent", "present"])
@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
def test_find_by_remark_from_history_alone(client, seed, sandbox, ids, order):
    sandbox.set_mode("history_ids", ids)
    sandbox.set_mode("history_order", order)
    spec = make_spec(seed)
    receipt = client.submit(spec, quote=None)
    client.submit(make_spec(seed), quote=None)
    found = client.find(spec)
    assert found is not None and found.state is VenueState.COMPLETED
    assert found.reference == receipt.reference  # the id, from the item or the journal
    SubmitAttempt.objects.all().delete()  # no journal either: the remark alone
    found = client.find(spec)
    assert found is not None and found.state is VenueState.COMPLETED
    assert found.reference == (receipt.reference if ids == "present" else "")
    again = client.status(spec, reference=found.reference)
    assert again.state is VenueState.COMPLETED


def test_history_item_without_id_does_not_crash_reconciliation(seed):
    """KuCoin's own history example has no ``id``: find() reads the item by its remark."""
    spec = make_spec(seed)
    item = {
        "currency": "BTC",
        "chain": "btc",
        "status": "SUCCESS",
        "address": spec.address,
        "memo": "",
        "isInner": False,
        "amount": "0.001",
        "fee": "0.0005",
        "walletTxId": "3e2414d82acce78d38be7fe9",
        "createdAt": 1728555875000,
        "updatedAt": 1728555875000,
        "remark": str(spec.request_id),
    }
    page = {"currentPage": 1, "pageSize": 50, "totalNum": 1, "totalPage": 1, "items": [item]}
    http = httpx.Client(
        base_url="https://api.kucoin.test",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json={"code": "200000", "data": page})
        ),
    )
    client = KucoinClient(
        http=http, credentials=seed.credentials, options=seed.options, nonces=None
    )
    found = client.find(spec)
    assert found is not None and found.state is VenueState.COMPLETED
    assert found.txid == "3e2414d82acce78d38be7fe9"


def test_two_withdrawals_with_our_remark_are_ambiguous(client, seed, sandbox):
    spec = make_spec(seed)
    client.submit(spec, quote=None)
    client.submit(spec, quote=None)  # a late duplicate of the same request
    with pytest.raises(VenueAmbiguous):
        client.find(spec)
    assert len(client.traces(spec)) == 2


def test_cancel_refunds_and_reads_cancelled(client, seed, sandbox):
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    spec = make_spec(seed)
    quote = client.quote(spec)
    receipt = client.submit(spec, quote=quote)
    assert client.quote(spec).limit == Decimal(10) - spec.amount
    assert client.cancel(spec, reference=receipt.reference) is True
    assert client.quote(spec).limit == Decimal(10)
    found = client.find(spec)
    assert found is not None and found.state is VenueState.CANCELLED
    assert found.raw_status == "FAILURE"


def test_cancel_outside_processing_is_refused_with_the_venue_message(client, seed, sandbox):
    sandbox.account_upsert(
        seed.credentials.api_key, settle_seconds=3600, review_above={"BTC": "0.001"}
    )
    spec = make_spec(seed)
    receipt = client.submit(spec, quote=None)
    assert client.status(spec, reference=receipt.reference).raw_status == "REVIEW"
    with pytest.raises(VenueRejected) as caught:
        client.cancel(spec, reference=receipt.reference)
    assert caught.value.message == NOT_CANCELLABLE
    assert client.status(spec, reference=receipt.reference).state is VenueState.PENDING


def test_saved_addresses_are_not_offered(client):
    assert client.supports_saved_addresses is False
    with pytest.raises(NotImplementedError):
        client.saved_addresses()


def test_connection_check_describes_the_key_without_secrets(client, seed):
    description = client.check_connection()
    assert description == "KuCoin API key v3, permissions: General,Withdrawal"
    assert seed.credentials.passphrase not in description


def test_credentials_never_appear_in_repr_or_errors(seed):
    bad = build_client(
        kind="kucoin",
        base_url="sandbox://kucoin",
        credentials=VenueCredentials(
            api_key=seed.credentials.api_key, api_secret="s3cr3t-value", passphrase="p4ss-value"
        ),
        options=seed.options,
    )
    with pytest.raises(VenueRejected) as caught:
        bad.check_connection()
    assert caught.value.code == "400004"
    text = f"{bad!r} {caught.value!r} {caught.value.message}"
    assert "s3cr3t-value" not in text and "p4ss-value" not in text


# --- loopback ---------------------------------------------------------------------------------


@pytest.mark.loopback
def test_quote_submit_status_over_a_real_port():
    sandbox = sandbox_for("kucoin")
    seed = sandbox.seed()
    server = LoopbackServer(sandbox).start()
    try:
        client = build_client(
            kind="kucoin", base_url=server.url, credentials=seed.credentials, options=seed.options
        )
        spec = make_spec(seed)
        quote = client.quote(spec)
        receipt = client.submit(spec, quote=quote)
        status = client.status(spec, reference=receipt.reference)
        client.close()
    finally:
        server.stop()
    assert quote.fee == Decimal("0.0005")
    assert status.state is VenueState.COMPLETED
    assert sandbox.all_withdrawals()[0]["amount_sent"] == "0.002"
