"""The Kraken Embed client: signature vectors, wire format, statuses, errors, idempotency."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

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
from venues.kraken_embed import client as client_module
from venues.kraken_embed.client import ERROR_OUTCOMES, STATUS_MAP, KrakenEmbedClient, sign
from venues.kraken_embed.sandbox import KrakenEmbedSandbox
from venues.models import SubmitAttempt
from venues.nonces import DatabaseNonceSource
from venues.registry import build_client
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer
from venues.sandbox.transport import InProcessTransport

pytestmark = pytest.mark.django_db

DOC_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)
VECTOR_NONCE = "1616492376594000000"
VECTOR_BODY = (
    b'{"asset":"BTC","key":"my-btc-key","amount":"0.001",'
    b'"idempotency_token":"3c90c3cc-0d44-4b50-8888-8dd25736052a","preview":true}'
)


# --- signature vectors (NOTES.md §1.1 official, §2.1 derived) ---------------------------------


def test_official_spot_vector_same_formula():
    # Embed documents the spot formula verbatim; the official spot vector pins it.
    body = b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert sign(DOC_SECRET, "/0/private/AddOrder", "1616492376594", body) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def test_derived_vector_post_with_user():
    path = "/b2b/funds/withdrawals?user=AA12N84GXCK"
    assert sign(DOC_SECRET, path, VECTOR_NONCE, VECTOR_BODY) == (
        "qqgYC7+JPqDFCblUcX69fKzoT3WDwbsb+C3BJT4OuIQuzSp4+o3IXcIYqcYgtosvzTGHgl43ywtf+RfqnW8XeA=="
    )


def test_derived_vector_post_without_user():
    assert sign(DOC_SECRET, "/b2b/funds/withdrawals", VECTOR_NONCE, VECTOR_BODY) == (
        "+0XB+cIivAg+JFErrI7wv98iv41yzvdgfk+oUFfcYGpMh6UM6i0LkiOUWcwOVeXnGW6QYqqmbvlHz+6CZAP7Iw=="
    )


def test_derived_vector_get_methods_nonce_only():
    path = "/b2b/funds/withdrawals/methods/BTC?user=AA12N84GXCK"
    assert sign(DOC_SECRET, path, VECTOR_NONCE) == (
        "3IsetBLTacnnGPOyfUP3xaMAUKXOId6xkLlAaKCacISCLrvHZaI9cH2/mBInTB5aUth0Sm22D0OfaGacGJ/BzQ=="
    )


# --- status and error tables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("initial", VenueState.PENDING),
        ("pending", VenueState.PENDING),
        ("held", VenueState.PENDING),
        ("success", VenueState.COMPLETED),
        ("failure", VenueState.FAILED),
    ],
)
def test_status_map_value_by_value(raw, state):
    assert STATUS_MAP[raw] is state


def test_status_map_covers_exactly_the_documented_statuses():
    assert set(STATUS_MAP) == {"initial", "pending", "held", "success", "failure"}


def test_client_and_sandbox_agree_on_every_error():
    for error, outcome in KrakenEmbedSandbox.DOCUMENTED_ERRORS.items():
        assert ERROR_OUTCOMES[error].__name__ == outcome, error


# --- fixtures ---------------------------------------------------------------------------------


class Recorder(InProcessTransport):
    """The in-process transport, keeping every request it carried."""

    def __init__(self, app: KrakenEmbedSandbox) -> None:
        super().__init__(app)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


@pytest.fixture
def sandbox() -> KrakenEmbedSandbox:
    return sandbox_for("kraken_embed")


@pytest.fixture
def seed(sandbox):
    return sandbox.seed()


@pytest.fixture
def client(seed):
    built = build_client(
        kind="kraken_embed",
        base_url="sandbox://kraken_embed",
        credentials=seed.credentials,
        options=seed.options,
    )
    yield built
    built.close()


def recording_client(sandbox, credentials) -> tuple[KrakenEmbedClient, Recorder]:
    recorder = Recorder(sandbox)
    http = httpx.Client(base_url="http://sandbox.invalid", transport=recorder)
    built = KrakenEmbedClient(
        http=http, credentials=credentials, options=VenueSettings(), nonces=DatabaseNonceSource()
    )
    return built, recorder


def spec(seed, amount: str = "0.001", **changes) -> WithdrawalSpec:
    values = {
        "request_id": uuid.uuid4(),
        "asset": seed.asset,
        "network": seed.network,
        "address": seed.address,
        "amount": Decimal(amount),
        "memo": seed.memo,
        "venue_key": seed.venue_key,
    } | changes
    return WithdrawalSpec(**values)


def btc_balance(sandbox, seed) -> Decimal:
    with sandbox.store.tx() as tx:
        return Decimal(sandbox.account(tx, seed.credentials.api_key)["balances"]["BTC"])


# --- wire format ------------------------------------------------------------------------------


def test_every_request_is_signed_over_the_bytes_sent(sandbox, seed):
    built, recorder = recording_client(sandbox, seed.credentials)
    withdrawal = spec(seed)
    quote = built.quote(withdrawal)
    receipt = built.submit(withdrawal, quote=quote)
    built.status(withdrawal, reference=receipt.reference)
    assert [(r.method, r.url.path) for r in recorder.requests] == [
        ("GET", "/b2b/funds/withdrawals/methods/BTC"),
        ("POST", "/b2b/funds/withdrawals"),
        ("POST", "/b2b/funds/withdrawals"),
        ("GET", "/b2b/funds/transactions"),
    ]
    nonces = []
    for request in recorder.requests:
        target = request.url.raw_path.decode()
        assert request.url.params["user"] == seed.credentials.account
        assert request.headers["Payward-Version"] == "2025-04-15"
        assert request.headers["API-Key"] == seed.credentials.api_key
        nonce = request.headers["API-Nonce"]
        nonces.append(int(nonce))
        expected = sign(seed.credentials.api_secret, target, nonce, request.content)
        assert request.headers["API-Sign"] == expected
    assert nonces == sorted(set(nonces)), "nonces strictly increase"
    submit = recorder.requests[2]
    assert submit.headers["Content-Type"] == "application/json"
    body = json.loads(submit.content)
    assert submit.content == json.dumps(body, separators=(",", ":")).encode()  # compact
    assert body == {
        "asset": "BTC",
        "key": seed.venue_key,
        "amount": "0.001",
        "idempotency_token": str(withdrawal.request_id),
        "fee_token": quote.token,
        "preview": False,
    }
    assert json.loads(recorder.requests[1].content)["preview"] is True


def test_master_account_sends_no_user(sandbox, seed):
    master = VenueCredentials(
        api_key=seed.credentials.api_key, api_secret=seed.credentials.api_secret
    )
    built, recorder = recording_client(sandbox, master)
    assert "master account" in built.check_connection()
    assert "user" not in recorder.requests[0].url.params


# --- quote ------------------------------------------------------------------------------------


def test_quote_carries_fee_token_limits_and_expiry(client, seed):
    before = datetime.now(UTC)
    quote = client.quote(spec(seed))
    assert quote.fee == Decimal("0.0002") and quote.net_amount == Decimal("0.0008")
    assert (quote.minimum, quote.limit, quote.precision) == (Decimal("0.0005"), Decimal(1), 8)
    assert quote.token.startswith("wft_") and quote.fee_asset == "BTC"
    assert before + timedelta(minutes=10) <= quote.expires_at
    assert quote.expires_at <= datetime.now(UTC) + timedelta(minutes=10)


def test_quote_picks_the_method_of_the_network(client, seed):
    tron = spec(seed, "5", asset="USDT", network="tron", venue_key="usdt-trc20-ops")
    quote = client.quote(tron)
    assert quote.fee == Decimal(1) and quote.precision == 6
    assert quote.raw["method"]["network"] == "Tron"


def test_quote_for_an_undocumented_network_is_refused(client, seed):
    with pytest.raises(VenueRejected, match="no BTC withdrawal method on network 'Lightning'"):
        client.quote(spec(seed, network="Lightning"))


def test_over_precise_amount_is_refused_before_sending(sandbox, client, seed):
    withdrawal = spec(seed, "0.001000001")
    with pytest.raises(VenueRejected, match="more than 8 decimal places"):
        client.quote(withdrawal)
    assert sandbox.count_withdrawals() == 0


def test_below_minimum_shows_the_venue_message(client, seed):
    with pytest.raises(VenueRejected) as caught:
        client.quote(spec(seed, "0.0004"))
    assert caught.value.message == "EFunding:Invalid amount"
    assert caught.value.http_status == 400


def test_insufficient_funds_is_rejected(sandbox, seed):
    poor = sandbox.seed(balance=Decimal("0.0008"))
    built = build_client(
        kind="kraken_embed", base_url="sandbox://kraken_embed", credentials=poor.credentials
    )
    with pytest.raises(VenueRejected, match="EFunding:Insufficient funds"):
        built.quote(spec(poor, "0.0009"))
    built.close()


# --- submit -----------------------------------------------------------------------------------


def test_resubmitting_the_same_request_returns_the_original(sandbox, client, seed):
    withdrawal = spec(seed)
    quote = client.quote(withdrawal)
    first = client.submit(withdrawal, quote=quote)
    again = client.submit(withdrawal, quote=None)
    assert again.reference == first.reference
    assert sandbox.count_withdrawals() == 1
    assert btc_balance(sandbox, seed) == seed.balance - Decimal("0.001")


def test_expired_fee_token_is_refused_and_a_fresh_quote_goes_through(sandbox, client, seed):
    withdrawal = spec(seed)
    stale = client.quote(withdrawal)
    sandbox.expire_fee_tokens()
    with pytest.raises(VenueRejected, match="EFunding:Invalid fee token"):
        client.submit(withdrawal, quote=stale)
    assert sandbox.count_withdrawals() == 0
    receipt = client.submit(withdrawal, quote=client.quote(withdrawal))
    assert receipt.reference


def test_unknown_withdraw_key_is_rejected(client, seed):
    withdrawal = spec(seed, venue_key="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")
    with pytest.raises(VenueRejected, match="EFunding:Unknown withdraw key"):
        client.submit(withdrawal, quote=None)


def test_rate_limit_uses_retry_after(sandbox, client, seed):
    sandbox.inject("rate_limit", path=sandbox.SUBMIT_PATH, method="POST", retry_after=7)
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(spec(seed), quote=None)
    assert caught.value.retry_after == 7
    assert caught.value.http_status == 429


@pytest.mark.parametrize("status", [408, 500, 503])
def test_timeouts_and_server_errors_on_submit_are_unknown(sandbox, client, seed, status):
    sandbox.inject("http_error", path=sandbox.SUBMIT_PATH, method="POST", status=status)
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec(seed), quote=None)


@pytest.mark.parametrize("status", [408, 500, 503])
def test_timeouts_and_server_errors_on_reads_are_unavailable(sandbox, client, seed, status):
    withdrawal = spec(seed)
    client.submit(withdrawal, quote=None)
    SubmitAttempt.objects.update(reference="")  # the answer was lost: find reads the history
    sandbox.inject("http_error", path="/b2b/funds/transactions", status=status)
    with pytest.raises(VenueUnavailable):
        client.find(withdrawal)


def test_server_error_on_preview_is_unavailable(sandbox, client, seed):
    # The preview creates nothing, so it is as safe to retry as a read.
    sandbox.inject("http_error", path=sandbox.SUBMIT_PATH, method="POST", status=500)
    with pytest.raises(VenueUnavailable):
        client.quote(spec(seed))


def test_undocumented_error_string_is_shown_verbatim(sandbox, client, seed):
    sandbox.inject("error", path=sandbox.SUBMIT_PATH, method="POST", error="EFunding:Frozen")
    with pytest.raises(VenueRejected) as caught:
        client.submit(spec(seed), quote=None)
    assert caught.value.message == "EFunding:Frozen"


def test_timeout_after_accept_then_resubmit_returns_the_original(sandbox, client, seed):
    withdrawal = spec(seed)
    quote = client.quote(withdrawal)
    sandbox.inject("timeout_after_accept", path=sandbox.SUBMIT_PATH, method="POST")
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(withdrawal, quote=quote)
    found = client.find(withdrawal)
    assert found is not None
    assert client.submit(withdrawal, quote=quote).reference == found.reference
    assert sandbox.count_withdrawals() == 1


# --- status and find --------------------------------------------------------------------------


def test_status_walks_the_pages(sandbox, client, seed, monkeypatch):
    monkeypatch.setattr(client_module, "PAGE_SIZE", 2)
    oldest = spec(seed)
    reference = client.submit(oldest, quote=None).reference
    for _ in range(4):
        client.submit(spec(seed), quote=None)
    status = client.status(oldest, reference=reference)
    assert (status.reference, status.state, status.raw_status) == (
        reference,
        VenueState.COMPLETED,
        "success",
    )
    assert client.find(oldest).reference == reference


def test_status_pending_reads_initial(sandbox, client, seed):
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    withdrawal = spec(seed)
    reference = client.submit(withdrawal, quote=None).reference
    status = client.status(withdrawal, reference=reference)
    assert (status.state, status.raw_status) == (VenueState.PENDING, "initial")


def test_status_of_an_unknown_reference_is_unavailable(client, seed):
    with pytest.raises(VenueUnavailable, match="not in Kraken Embed's transaction history"):
        client.status(spec(seed), reference="FTQcuak-V6Za8qrWnhzTx67yYHz8Tg")


def test_every_preview_carries_a_fresh_token_of_its_own(sandbox, seed):
    """If Kraken stores a preview under its token (NOTES §7, the sandbox's default), a preview
    sent with the request id would be what the real submit gets back."""
    client, recorder = recording_client(sandbox, seed.credentials)
    withdrawal = spec(seed)
    first, second = client.quote(withdrawal), client.quote(withdrawal)
    receipt = client.submit(withdrawal, quote=second)
    previews = [json.loads(r.content) for r in recorder.requests if b'"preview":true' in r.content]
    tokens = [body["idempotency_token"] for body in previews]
    assert len(tokens) == 2 and len(set(tokens)) == 2
    assert str(withdrawal.request_id) not in tokens
    assert first.token and receipt.reference
    assert sandbox.count_withdrawals() == 1


@pytest.mark.parametrize("amounts", ["net", "gross"])
def test_find_from_the_transactions_alone_in_either_amount_reading(sandbox, client, seed, amounts):
    sandbox.set_mode("history_amount", amounts)
    withdrawal = spec(seed)
    receipt = client.submit(withdrawal, quote=client.quote(withdrawal))
    SubmitAttempt.objects.update(reference="")  # the answer was lost
    found = client.find(withdrawal)
    assert found is not None and found.reference == receipt.reference


def test_find_never_sent_is_none_without_reading(sandbox, client, seed):
    sandbox.inject("http_error", path="/b2b/funds/transactions", status=500)
    assert client.find(spec(seed)) is None


def test_find_with_two_candidates_is_ambiguous(sandbox, client, seed):
    withdrawal = spec(seed)
    client.submit(withdrawal, quote=None)
    client.submit(spec(seed), quote=None)  # same asset and amount, made elsewhere
    SubmitAttempt.objects.update(reference="")
    with pytest.raises(VenueAmbiguous):
        client.find(withdrawal)


def test_find_skips_what_another_withdrawal_holds(sandbox, client, seed):
    withdrawal, other = spec(seed), spec(seed)
    client.submit(withdrawal, quote=None)
    held = client.submit(other, quote=None).reference
    SubmitAttempt.objects.filter(request_id=withdrawal.request_id).update(reference="")
    found = client.find(withdrawal)
    assert found is not None and found.reference != held


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("EAPI:Invalid key", 401),
        ("EAPI:Invalid signature", 401),
        ("Missing API-Key", 401),
        ("EGeneral:Permission denied", 403),
        ("an auth failure in words nobody documented", 401),  # the guide: "401 auth failed"
    ],
)
def test_refused_credentials_are_access_refused(sandbox, client, seed, error, status):
    sandbox.inject("error", path="/b2b/funds/withdrawals/addresses", error=error, status=status)
    with pytest.raises(VenueAccessRefused):
        client.check_connection()


# --- addresses, connection, cancel, secrets ---------------------------------------------------


def test_saved_addresses(client, seed):
    saved = {a.key: a for a in client.saved_addresses()}
    assert set(saved) == {d["venue_key"] for d in seed.destinations}
    xrp = saved["xrp-ops"]
    assert (xrp.asset, xrp.network, xrp.address, xrp.memo) == (
        "XRP",
        "Ripple",
        "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh",
        "104729",
    )
    assert [a.key for a in client.saved_addresses(asset="BTC")] == ["btc-treasury"]


def test_check_connection_names_the_user_not_the_secret(client, seed):
    description = client.check_connection()
    assert seed.credentials.account in description and "4 saved" in description
    assert seed.credentials.api_secret not in description


def test_cancel_is_not_supported(client, seed):
    assert client.supports_cancel is False
    with pytest.raises(NotImplementedError):
        client.cancel(spec(seed), reference="x")


def test_secrets_stay_out_of_errors_and_repr(seed):
    secret = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
    bad = build_client(
        kind="kraken_embed",
        base_url="sandbox://kraken_embed",
        credentials=VenueCredentials(
            api_key=seed.credentials.api_key, api_secret=secret, account=seed.credentials.account
        ),
    )
    with pytest.raises(VenueRejected) as caught:
        bad.check_connection()
    assert caught.value.message == "EAPI:Invalid signature"
    assert caught.value.http_status == 401
    assert secret not in str(caught.value) and secret not in repr(bad)
    bad.close()


# --- loopback ---------------------------------------------------------------------------------


@pytest.mark.loopback
def test_quote_submit_status_over_loopback():
    sandbox = sandbox_for("kraken_embed")
    seed = sandbox.seed()
    server = LoopbackServer(sandbox).start()
    try:
        built = build_client(
            kind="kraken_embed", base_url=server.url, credentials=seed.credentials, timeout=5
        )
        withdrawal = spec(seed)
        quote = built.quote(withdrawal)
        receipt = built.submit(withdrawal, quote=quote)
        status = built.status(withdrawal, reference=receipt.reference)
        built.close()
    finally:
        server.stop()
    assert quote.fee == Decimal("0.0002")
    assert status.reference == receipt.reference and status.state == VenueState.COMPLETED
