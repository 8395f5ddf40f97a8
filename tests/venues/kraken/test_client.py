"""Kraken spot client: signature vectors, status and error tables, wire details, reconciliation."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from django.core.cache import cache

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
from venues.journal import SubmitJournal
from venues.kraken import sandbox as kraken_sandbox_module
from venues.kraken.client import (
    ERROR_OUTCOMES,
    RATE_LIMIT_RETRY_SECONDS,
    STATUS_MAP,
    KrakenClient,
    error_outcome,
    sign,
    state_of,
)
from venues.models import SubmitAttempt
from venues.nonces import DatabaseNonceSource
from venues.registry import build_client
from venues.sandbox.registry import sandbox_for
from venues.sandbox.server import LoopbackServer

pytestmark = pytest.mark.django_db

DOC_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)


# --- signature vectors (NOTES §1.1) -------------------------------------------------------------


def test_official_addorder_vector():
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert sign("/0/private/AddOrder", 1616492376594, body, DOC_SECRET) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def test_official_vector_payload_is_what_urlencode_builds():
    params = {
        "nonce": "1616492376594",
        "ordertype": "limit",
        "pair": "XBTUSD",
        "price": 37500,
        "type": "buy",
        "volume": "1.25",
    }
    assert urlencode(params) == (
        "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    )


def test_derived_form_withdraw_vector():
    body = b"nonce=1616492376594&asset=XBT&key=btc_2709&amount=0.725"
    assert sign("/0/private/Withdraw", "1616492376594", body, DOC_SECRET) == (
        "qRcBamIdxrOCwjGqxAPZzqDEB1FxVYetaWXMiM4YLEFLFrzTcXEyL531je/qRIUXbwA6LFrWM7K1Ew7+9obNHg=="
    )


def test_derived_json_withdraw_vector():
    body = '{"nonce":"1616492376594","asset":"XBT","key":"btc_2709","amount":"0.725"}'
    assert sign("/0/private/Withdraw", 1616492376594, body, DOC_SECRET) == (
        "OrdpWK0vS04aWAeDOE86tDevy7+xlzqpqa4U/f9sf1BpJuh1qThU71777ZE+fIKKrDKlYqSuGiNZHUDL5u2jSg=="
    )


# --- status and error tables -------------------------------------------------------------------

EXPECTED_STATES = {
    "Initial": VenueState.PENDING,
    "Pending": VenueState.PENDING,
    "Settled": VenueState.PENDING,
    "Success": VenueState.COMPLETED,
    "Failure": VenueState.FAILED,
    "cancel-pending": VenueState.PENDING,
    "canceled": VenueState.CANCELLED,
    "cancel-denied": VenueState.PENDING,
    "onhold": VenueState.PENDING,
    "return": VenueState.FAILED,
}


def test_status_map_covers_exactly_the_documented_values():
    assert set(STATUS_MAP) == set(EXPECTED_STATES)


@pytest.mark.parametrize(("value", "state"), sorted(EXPECTED_STATES.items()))
def test_status_map_value(value, state):
    assert STATUS_MAP[value] == state


@pytest.mark.parametrize(
    ("status", "prop", "state"),
    [
        ("Failure", "canceled", VenueState.CANCELLED),
        ("Pending", "cancel-pending", VenueState.PENDING),
        ("Success", "cancel-denied", VenueState.COMPLETED),
        ("Pending", "onhold", VenueState.PENDING),
        ("Success", "return", VenueState.FAILED),
        ("Settled", "", VenueState.PENDING),
        ("SomethingNew", "", VenueState.PENDING),
    ],
)
def test_status_prop_refines_the_status(status, prop, state):
    assert state_of(status, prop) == state


@pytest.mark.parametrize(("error", "outcome"), sorted(ERROR_OUTCOMES.items(), key=str))
def test_every_documented_error_has_one_outcome(error, outcome):
    for mutating in (True, False):
        raised = error_outcome(error, mutating=mutating)
        # Server-side trouble after a read proves nothing was done: merely unavailable.
        expected = VenueUnavailable if outcome is VenueOutcomeUnknown and not mutating else outcome
        assert type(raised) is expected
        assert raised.message.startswith(error)


@pytest.mark.parametrize("error", ["EGeneral:Internal error", "EDatabase:Internal error"])
def test_internal_error_after_a_withdraw_is_outcome_unknown(seed, error):
    """Kraken's catalogue: "Unexpected server-side error; retry with backoff" (NOTES §7)."""
    client = _mock_client(seed, lambda r: httpx.Response(200, json={"error": [error]}))
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec_for(seed), quote=None)
    with pytest.raises(VenueUnavailable):
        client.quote(spec_for(seed))


@pytest.mark.parametrize(
    "error", ["EAPI:Invalid key", "EAPI:Invalid signature", "EGeneral:Permission denied"]
)
def test_refused_credentials_are_access_refused_on_every_call(seed, error):
    client = _mock_client(seed, lambda r: httpx.Response(200, json={"error": [error]}))
    for call in (
        lambda: client.submit(spec_for(seed), quote=None),
        lambda: client.status(spec_for(seed), reference="FTQcuak-V6Za8qrWnhzTx67yYHz8Tg"),
        client.check_connection,
    ):
        with pytest.raises(VenueAccessRefused, match=error):
            call()


def test_rate_limit_waits_for_one_counter_unit_to_decay():
    raised = error_outcome("EAPI:Rate limit exceeded", mutating=True)
    assert isinstance(raised, VenueUnavailable)
    assert raised.retry_after == RATE_LIMIT_RETRY_SECONDS == pytest.approx(3.03)


def test_throttled_waits_until_the_named_moment():
    until = int(time.time()) + 40
    raised = error_outcome(f"EService: Throttled: {until}", mutating=True)
    assert isinstance(raised, VenueUnavailable)
    assert 35 <= raised.retry_after <= 41


def test_invalid_arguments_with_field_is_rejected_verbatim():
    raised = error_outcome("EGeneral:Invalid arguments:beneficiary_recipient", mutating=True)
    assert isinstance(raised, VenueRejected)
    assert raised.message == "EGeneral:Invalid arguments:beneficiary_recipient"


def test_undocumented_service_error_is_unknown_only_when_mutating():
    assert isinstance(
        error_outcome("EService:Deadline elapsed", mutating=True), VenueOutcomeUnknown
    )
    assert isinstance(error_outcome("EService:Deadline elapsed", mutating=False), VenueUnavailable)


def test_undocumented_funding_error_is_rejected():
    assert isinstance(error_outcome("EFunding:Something new", mutating=True), VenueRejected)


# --- against the sandbox ----------------------------------------------------------------------


@pytest.fixture
def sandbox():
    return sandbox_for("kraken")


@pytest.fixture
def seed(sandbox):
    return sandbox.seed()


@pytest.fixture
def client(seed):
    client = build_client(
        kind="kraken",
        base_url="sandbox://kraken",
        credentials=seed.credentials,
        options=seed.options,
    )
    yield client
    client.close()


def spec_for(seed, amount: Decimal | None = None, **changes) -> WithdrawalSpec:
    fields = {
        "request_id": uuid.uuid4(),
        "asset": seed.asset,
        "network": seed.network,
        "address": seed.address,
        "memo": seed.memo,
        "venue_key": seed.venue_key,
        "amount": amount if amount is not None else seed.minimum * 2,
    }
    return WithdrawalSpec(**(fields | changes))


def test_quote_reads_fee_net_limit_and_minimum(client, seed):
    quote = client.quote(spec_for(seed, Decimal("0.001")))
    assert quote.fee == Decimal("0.00015")
    assert quote.net_amount == Decimal("0.00085")
    assert quote.limit == Decimal("10") - Decimal("0.00015")
    assert quote.minimum == Decimal("0.0004") == seed.minimum
    assert quote.precision == 8
    assert quote.raw["method"] == "Bitcoin"


def test_withdraw_methods_are_kept_a_while_so_a_quote_costs_one_call(client, seed):
    cache.clear()
    calls: list[str] = []
    client._http.event_hooks["request"].append(lambda request: calls.append(request.url.path))
    first, second = client.quote(spec_for(seed)), client.quote(spec_for(seed))
    assert first.minimum == second.minimum == Decimal("0.0004")
    assert calls.count("/0/private/WithdrawMethods") == 1
    assert calls.count("/0/private/WithdrawInfo") == 2


def test_submit_sends_max_fee_and_address_check(client, seed, sandbox):
    spec = spec_for(seed)
    quote = client.quote(spec)
    client.submit(spec, quote=quote)
    (doc,) = sandbox.all_withdrawals()
    assert doc["amount_sent"] == "0.0008"
    assert doc["info"] == seed.address and doc["key"] == seed.venue_key


def test_fee_above_max_fee_is_refused(client, seed, sandbox):
    spec = spec_for(seed)
    low = Quote(fee=Decimal("0.0001"), net_amount=spec.amount - Decimal("0.0001"))
    with pytest.raises(VenueQuoteRefused, match="EFunding:Max fee exceeded"):
        client.submit(spec, quote=low)
    assert sandbox.count_withdrawals() == 0


def test_address_not_matching_the_saved_key_is_refused(client, seed, sandbox):
    spec = spec_for(seed, address="bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh")
    with pytest.raises(VenueRejected, match="EFunding:Invalid withdrawal address"):
        client.submit(spec, quote=None)
    assert sandbox.count_withdrawals() == 0


def test_unknown_key_is_refused(client, seed):
    with pytest.raises(VenueRejected, match="EFunding:Unknown withdraw key"):
        client.quote(spec_for(seed, venue_key="bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"))


def test_insufficient_funds(client, seed, sandbox):
    with pytest.raises(VenueRejected, match="EFunding:Insufficient funds"):
        client.submit(spec_for(seed, Decimal("10.5")), quote=None)
    assert sandbox.count_withdrawals() == 0


def test_over_precise_amount_is_refused_before_any_call(seed):
    sent: list[httpx.Request] = []
    client = _mock_client(seed, lambda request: sent.append(request) or httpx.Response(200))
    with pytest.raises(VenueRejected, match="at most 8 decimal places"):
        client.submit(spec_for(seed, Decimal("0.000800001")), quote=None)
    with pytest.raises(VenueRejected):
        client.quote(spec_for(seed, Decimal("0")))
    assert sent == []


def test_cancel_refunds_and_is_refused_once_settled(client, seed, sandbox):
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    assert client.cancel(spec, reference=receipt.reference) is True
    status = client.status(spec, reference=receipt.reference)
    assert status.state == VenueState.CANCELLED and status.raw_status == "Failure (canceled)"
    assert _balance(sandbox, seed) == Decimal("10")

    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=0)
    settled = client.submit(spec_for(seed), quote=None)
    assert client.status(spec, reference=settled.reference).state == VenueState.COMPLETED
    with pytest.raises(VenueRejected, match="EFunding:Invalid reference id"):
        client.cancel(spec, reference=settled.reference)


def test_cancel_unknown_reference(client, seed):
    with pytest.raises(VenueRejected, match="EFunding:Unknown reference id"):
        client.cancel(spec_for(seed), reference="FTQcuak-V6Za8qrWnhzTx67yYHz8Tg")


def test_failed_settlement_refunds(client, seed, sandbox):
    sandbox.inject("settle_failure")
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    status = client.status(spec, reference=receipt.reference)
    assert status.state == VenueState.FAILED and status.raw_status == "Failure"
    assert _balance(sandbox, seed) == Decimal("10")


def test_status_of_a_refid_kraken_does_not_list_is_unavailable(client, seed):
    with pytest.raises(VenueUnavailable):
        client.status(spec_for(seed), reference="FTQcuak-V6Za8qrWnhzTx67yYHz8Tg")


def test_saved_addresses_list_every_seeded_key(client, seed):
    saved = client.saved_addresses()
    assert {(s.key, s.address, s.network) for s in saved} == {
        (d["venue_key"], d["address"], d["network"]) for d in seed.destinations
    }
    (btc,) = client.saved_addresses(asset="BTC")
    assert (btc.key, btc.asset, btc.address, btc.verified) == (
        seed.venue_key,
        "BTC",
        seed.address,
        True,
    )
    (xrp,) = client.saved_addresses(asset="XRP")
    assert xrp.memo == "104857" and xrp.network == "Ripple"


def test_check_connection_describes_without_secrets(client, seed):
    description = client.check_connection()
    assert "5 saved withdrawal addresses" in description
    assert seed.credentials.api_key not in description
    assert seed.credentials.api_secret not in description


def test_credentials_never_in_repr_or_errors(seed):
    client = build_client(
        kind="kraken",
        base_url="sandbox://kraken",
        credentials=VenueCredentials(api_key=seed.credentials.api_key, api_secret="not base64!"),
    )
    assert seed.credentials.api_key not in repr(client)
    with pytest.raises(VenueRejected) as caught:
        client.check_connection()
    assert "not base64!" not in str(caught.value)
    assert seed.credentials.api_key not in str(caught.value)


# --- reconciliation ---------------------------------------------------------------------------


def test_find_uses_the_recorded_reference(client, seed):
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    found = client.find(spec)
    assert found is not None and found.reference == receipt.reference


def test_find_matches_asset_key_and_gross_amount_when_the_answer_was_lost(client, seed):
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    SubmitAttempt.objects.update(reference="")  # as if the answer never arrived
    # Rows carry the net amount; the same request id with another amount is not this one.
    assert client.find(spec_for(seed, Decimal("0.0009"), request_id=spec.request_id)) is None
    found = client.find(spec)
    assert found is not None and found.reference == receipt.reference
    assert SubmitAttempt.objects.get().reference == receipt.reference


def test_find_never_matches_a_request_we_did_not_send(client, seed):
    client.submit(spec_for(seed), quote=None)
    assert client.find(spec_for(seed)) is None


def test_find_ignores_rows_far_from_the_attempt(client, seed, sandbox):
    spec = spec_for(seed)
    client.submit(spec, quote=None)
    SubmitAttempt.objects.update(reference="")  # the answer was lost: match on history
    with sandbox.store.tx() as tx:
        (doc,) = sandbox.withdrawals(tx, seed.credentials.api_key)
        doc["created_at"] -= 3600
        sandbox.save_withdrawal(tx, doc)
    assert client.find(spec) is None


def test_find_ignores_other_keys(client, seed, sandbox):
    eth = seed.destinations[1]
    spec = spec_for(seed)
    client.submit(spec, quote=None)
    SubmitAttempt.objects.update(reference="")  # the answer was lost: match on history
    other = spec_for(
        seed,
        request_id=spec.request_id,
        asset=eth["asset"],
        address=eth["address"],
        venue_key=eth["venue_key"],
    )
    assert client.find(other) is None


def _documented_row(refid: str, info: str, amount: str, fee: str, at: float) -> dict:
    """A WithdrawStatus row with exactly the funding page's fields: no ``key``."""
    return {
        "method": "Ether",
        "aclass": "currency",
        "asset": "XETH",
        "refid": refid,
        "txid": "",
        "info": info,
        "amount": amount,
        "fee": fee,
        "time": int(at),
        "status": "Pending",
    }


def _history_client(seed, rows):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/0/private/WithdrawStatus"
        return httpx.Response(200, json={"error": [], "result": rows})

    return _mock_client(seed, handler)


def _eth_spec(seed, **changes) -> WithdrawalSpec:
    eth = seed.destinations[1]
    fields = {
        "asset": eth["asset"],
        "network": eth["network"],
        "address": eth["address"],
        "venue_key": eth["venue_key"],
        "amount": Decimal("0.05"),
    }
    return spec_for(seed, **(fields | changes))


def test_find_matches_a_checksummed_evm_destination_kraken_prints_in_lower_case(seed):
    spec = _eth_spec(seed)
    assert spec.address != spec.address.lower()  # an EIP-55 checksummed address
    SubmitJournal("kraken").mark_sent(spec.request_id)  # the answer was lost
    row = _documented_row(
        "FTQcuak-V6Za8qrWnhzTx67yYHz8Tg", spec.address.lower(), "0.0475", "0.0025", time.time()
    )
    found = _history_client(seed, [row]).find(spec)
    assert found is not None and found.reference == "FTQcuak-V6Za8qrWnhzTx67yYHz8Tg"
    assert SubmitAttempt.objects.get().reference == found.reference


def test_find_never_takes_a_non_evm_address_in_another_case(seed):
    spec = spec_for(seed)
    SubmitJournal("kraken").mark_sent(spec.request_id)
    gross = spec.amount
    row = {
        **_documented_row(
            "R1", spec.address.upper(), str(gross - Decimal("0.00015")), "0.00015", time.time()
        ),
        "asset": "XXBT",
    }
    assert _history_client(seed, [row]).find(spec) is None


def test_find_with_two_matching_rows_is_ambiguous(seed):
    spec = _eth_spec(seed)
    SubmitJournal("kraken").mark_sent(spec.request_id)
    now = time.time()
    rows = [
        _documented_row("R1", spec.address.lower(), "0.0475", "0.0025", now),
        _documented_row("R2", spec.address.lower(), "0.0475", "0.0025", now + 5),
    ]
    with pytest.raises(VenueAmbiguous):
        _history_client(seed, rows).find(spec)
    assert SubmitAttempt.objects.get().reference == ""  # nothing concluded


def test_find_skips_a_row_another_withdrawal_claimed(seed):
    spec = _eth_spec(seed)
    other = _eth_spec(seed)
    journal = SubmitJournal("kraken")
    journal.mark_sent(spec.request_id)
    journal.mark_reference(other.request_id, "R1", entry=journal.mark_sent(other.request_id))
    now = time.time()
    rows = [
        _documented_row("R1", spec.address.lower(), "0.0475", "0.0025", now),
        _documented_row("R2", spec.address.lower(), "0.0475", "0.0025", now + 5),
    ]
    assert _history_client(seed, rows).find(spec).reference == "R2"


def test_find_from_the_sandbox_history_alone_for_an_evm_destination(client, seed, sandbox):
    spec = _eth_spec(seed)
    receipt = client.submit(spec, quote=None)
    SubmitAttempt.objects.update(reference="")  # as if the answer never arrived
    found = client.find(spec)
    assert found is not None and found.reference == receipt.reference


def test_status_is_read_from_our_send_on_however_long_the_history(
    client, seed, sandbox, monkeypatch
):
    """WithdrawStatus answers at most 500 rows, in an order no page states (oldest first in the
    sandbox's default mode): a status read must not depend on ours being among the first."""
    monkeypatch.setattr(kraken_sandbox_module, "HISTORY_ROWS", 2)
    sandbox.account_upsert(seed.credentials.api_key, rate_tier="")
    for _ in range(2):
        client.submit(spec_for(seed), quote=None)
    with sandbox.store.tx() as tx:
        for doc in sandbox.withdrawals(tx, seed.credentials.api_key):
            doc["created_at"] -= 3600  # made an hour before ours
            sandbox.save_withdrawal(tx, doc)
    spec = spec_for(seed)
    receipt = client.submit(spec, quote=None)
    assert client.status(spec, reference=receipt.reference).reference == receipt.reference


def test_statuses_reads_many_withdrawals_in_one_call(client, seed, sandbox):
    specs = [spec_for(seed) for _ in range(3)]
    references = [client.submit(spec, quote=None).reference for spec in specs]
    calls = []
    client._http.event_hooks["request"].append(lambda request: calls.append(request.url.path))
    statuses = client.statuses(specs[0], [*references, "not-a-refid"])
    assert set(statuses) == set(references)
    assert calls == ["/0/private/WithdrawStatus"]


# --- wire details -----------------------------------------------------------------------------


def _mock_client(seed, handler) -> KrakenClient:
    return KrakenClient(
        http=httpx.Client(
            base_url="https://api.kraken.test", transport=httpx.MockTransport(handler)
        ),
        credentials=seed.credentials,
        options=VenueSettings(),
        nonces=DatabaseNonceSource(),
    )


def _balance(sandbox, seed) -> Decimal:
    with sandbox.store.tx() as tx:
        return Decimal(sandbox.account(tx, seed.credentials.api_key)["balances"]["XXBT"])


def test_wire_form_body_starts_with_an_increasing_nonce_and_is_signed(seed):
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"error": [], "result": {"refid": "AGBSO6T-UFMTTQ-I7KGS6"}})

    client = _mock_client(seed, handler)
    spec = spec_for(seed)
    quote = Quote(fee=Decimal("0.00015000"), net_amount=Decimal("0.00065"))
    client.submit(spec, quote=quote)
    client.submit(spec, quote=None)
    first, second = sent
    assert first.url.path == "/0/private/Withdraw"
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
    assert first.headers["API-Key"] == seed.credentials.api_key
    body = first.content.decode()
    fields = parse_qsl(body)
    assert fields[0][0] == "nonce"
    assert dict(fields) == {
        "nonce": fields[0][1],
        "asset": "BTC",
        "key": seed.venue_key,
        "amount": "0.0008",
        "address": seed.address,
        "max_fee": "0.00015",
    }
    nonce = fields[0][1]
    expected = sign("/0/private/Withdraw", nonce, first.content, seed.credentials.api_secret)
    assert first.headers["API-Sign"] == expected
    assert int(dict(parse_qsl(second.content.decode()))["nonce"]) > int(nonce)
    assert "max_fee" not in second.content.decode()


def test_http_429_is_unavailable_with_retry_after(seed):
    client = _mock_client(seed, lambda r: httpx.Response(429, headers={"Retry-After": "9"}))
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(spec_for(seed), quote=None)
    assert caught.value.retry_after == 9


def test_unreadable_answer_to_withdraw_is_outcome_unknown(seed):
    client = _mock_client(seed, lambda r: httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec_for(seed), quote=None)
    with pytest.raises(VenueUnavailable):
        client.check_connection()


def test_withdraw_without_refid_is_outcome_unknown(seed):
    client = _mock_client(seed, lambda r: httpx.Response(200, json={"error": [], "result": {}}))
    with pytest.raises(VenueOutcomeUnknown):
        client.submit(spec_for(seed), quote=None)


def test_warnings_alone_are_not_failures(seed):
    answer = {"error": ["WGeneral:Something to know"], "result": {"refid": "AGBSO6T-UFMTTQ"}}
    client = _mock_client(seed, lambda r: httpx.Response(200, json=answer))
    assert client.submit(spec_for(seed), quote=None).reference == "AGBSO6T-UFMTTQ"


def test_sandbox_call_counter_answers_rate_limit(client, seed, sandbox):
    sandbox.account_upsert(seed.credentials.api_key, rate={"counter": 15, "at": time.time()})
    with pytest.raises(VenueUnavailable) as caught:
        client.submit(spec_for(seed), quote=None)
    assert caught.value.message == "EAPI:Rate limit exceeded"
    assert caught.value.retry_after == RATE_LIMIT_RETRY_SECONDS
    assert sandbox.count_withdrawals() == 0


def test_stale_nonce_is_unavailable_and_nothing_done(client, seed, sandbox):
    sandbox.account_upsert(seed.credentials.api_key, last_nonce=2**63)
    with pytest.raises(VenueUnavailable, match="EAPI:Invalid nonce"):
        client.submit(spec_for(seed), quote=None)
    assert sandbox.count_withdrawals() == 0


# --- loopback ---------------------------------------------------------------------------------


@pytest.mark.loopback
def test_quote_submit_status_over_loopback():
    sandbox = sandbox_for("kraken")
    seed = sandbox.seed()
    server = LoopbackServer(sandbox).start()
    try:
        client = build_client(
            kind="kraken", base_url=server.url, credentials=seed.credentials, options=seed.options
        )
        spec = spec_for(seed)
        quote = client.quote(spec)
        receipt = client.submit(spec, quote=quote)
        status = client.status(spec, reference=receipt.reference)
        client.close()
    finally:
        server.stop()
    assert quote.fee == Decimal("0.00015")
    assert status.reference == receipt.reference
    assert status.state == VenueState.COMPLETED and status.raw_status == "Success"
    assert status.txid
