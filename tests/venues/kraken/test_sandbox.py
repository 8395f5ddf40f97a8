"""Kraken spot sandbox on its own terms: auth, envelope, validation, call counter, history."""

from __future__ import annotations

import itertools
import json
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from venues.kraken import sandbox as kraken_sandbox
from venues.kraken.client import sign
from venues.kraken.sandbox import KrakenSandbox
from venues.sandbox.app import SandboxRequest
from venues.sandbox.registry import sandbox_for

_nonces = itertools.count(time.time_ns())


@pytest.fixture
def sandbox():
    return sandbox_for("kraken")


@pytest.fixture
def seed(sandbox):
    return sandbox.seed()


def call(
    sandbox,
    seed,
    name: str,
    params: dict[str, str] | None = None,
    *,
    nonce: int | None = None,
    secret: str | None = None,
    headers: dict[str, str] | None = None,
    as_json: bool = False,
):
    """POST /0/private/<name> as Kraken expects it; returns (HTTP status, decoded body)."""
    path = "/0/private/" + name
    nonce = nonce if nonce is not None else next(_nonces)
    fields = {"nonce": str(nonce), **(params or {})}
    if as_json:
        body = json.dumps(fields, separators=(",", ":")).encode()
        content_type = "application/json"
    else:
        body = urlencode(fields).encode()
        content_type = "application/x-www-form-urlencoded; charset=utf-8"
    signature = sign(path, nonce, body, secret or seed.credentials.api_secret)
    sent = {"api-key": seed.credentials.api_key, "api-sign": signature}
    sent["content-type"] = content_type
    response = sandbox.handle(
        SandboxRequest(method="POST", target=path, headers=sent | (headers or {}), body=body)
    )
    return response.status, json.loads(response.body)


def withdraw(sandbox, seed, amount: str = "0.001", **extra: str):
    params = {"asset": "BTC", "key": seed.venue_key, "amount": amount, **extra}
    return call(sandbox, seed, "Withdraw", params)


# --- authentication ----------------------------------------------------------------------------


def test_valid_call_answers_in_kraken_envelope(sandbox, seed):
    status, body = call(sandbox, seed, "WithdrawMethods", {"asset": "xbt"})
    assert status == 200
    assert body == {
        "error": [],
        "result": [
            {"asset": "XXBT", "method": "Bitcoin", "network": "Bitcoin", "minimum": "0.00040000"}
        ],
    }


def test_missing_api_key_header(sandbox, seed):
    status, body = call(sandbox, seed, "WithdrawMethods", headers={"api-key": ""})
    assert (status, body) == (200, {"error": ["EAPI:Invalid key"]})


def test_unknown_api_key(sandbox, seed):
    status, body = call(sandbox, seed, "WithdrawMethods", headers={"api-key": "nobody"})
    assert (status, body) == (200, {"error": ["EAPI:Invalid key"]})


def test_missing_signature(sandbox, seed):
    _, body = call(sandbox, seed, "WithdrawMethods", headers={"api-sign": ""})
    assert body == {"error": ["EAPI:Invalid signature"]}


def test_wrong_secret(sandbox, seed):
    _, body = call(sandbox, seed, "WithdrawMethods", secret="d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")
    assert body == {"error": ["EAPI:Invalid signature"]}


def test_signature_over_other_bytes_is_refused(sandbox, seed):
    nonce = next(_nonces)
    path = "/0/private/Withdraw"
    signed = urlencode({"nonce": nonce, "asset": "BTC", "key": seed.venue_key, "amount": "0.001"})
    sent = urlencode({"nonce": nonce, "asset": "BTC", "key": seed.venue_key, "amount": "0.002"})
    response = sandbox.handle(
        SandboxRequest(
            method="POST",
            target=path,
            headers={
                "api-key": seed.credentials.api_key,
                "api-sign": sign(path, nonce, signed, seed.credentials.api_secret),
                "content-type": "application/x-www-form-urlencoded",
            },
            body=sent.encode(),
        )
    )
    assert json.loads(response.body) == {"error": ["EAPI:Invalid signature"]}
    assert sandbox.count_withdrawals() == 0


def test_replayed_or_lower_nonce_is_refused(sandbox, seed):
    nonce = next(_nonces)
    assert call(sandbox, seed, "WithdrawMethods", nonce=nonce)[1]["error"] == []
    assert call(sandbox, seed, "WithdrawMethods", nonce=nonce)[1] == {
        "error": ["EAPI:Invalid nonce"]
    }
    assert call(sandbox, seed, "WithdrawMethods", nonce=nonce - 1)[1] == {
        "error": ["EAPI:Invalid nonce"]
    }
    assert call(sandbox, seed, "WithdrawMethods", nonce=nonce + 1)[1]["error"] == []


def test_missing_nonce(sandbox, seed):
    path = "/0/private/WithdrawMethods"
    response = sandbox.handle(
        SandboxRequest(
            method="POST",
            target=path,
            headers={"api-key": seed.credentials.api_key, "api-sign": "x"},
            body=b"asset=BTC",
        )
    )
    assert json.loads(response.body) == {"error": ["EAPI:Invalid nonce"]}


def test_json_body_is_accepted_when_signed_as_sent(sandbox, seed):
    status, body = call(
        sandbox,
        seed,
        "Withdraw",
        {"asset": "XBT", "key": seed.venue_key, "amount": "0.725"},
        as_json=True,
    )
    assert status == 200 and body["error"] == [] and body["result"]["refid"]


def test_unknown_method_is_404(sandbox, seed):
    status, body = call(sandbox, seed, "WithdrawEverything")
    assert (status, body) == (404, {"error": ["EGeneral:Unknown method"]})


# --- call counter (NOTES §1.3) ------------------------------------------------------------------


def test_starter_counter_allows_15_calls_then_refuses(sandbox, seed, monkeypatch):
    monkeypatch.setattr(kraken_sandbox, "now_ts", lambda: 1_000_000.0)
    answers = [call(sandbox, seed, "WithdrawMethods")[1] for _ in range(16)]
    assert all(a["error"] == [] for a in answers[:15])
    assert answers[15] == {"error": ["EAPI:Rate limit exceeded"]}


def test_counter_decays_at_a_third_per_second(sandbox, seed, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(kraken_sandbox, "now_ts", lambda: clock[0])
    for _ in range(15):
        call(sandbox, seed, "WithdrawMethods")
    clock[0] += 2.0  # 0.66 decayed: not yet room for one call
    assert call(sandbox, seed, "WithdrawMethods")[1] == {"error": ["EAPI:Rate limit exceeded"]}
    clock[0] += 1.1  # 1.02 decayed since the 15th call
    assert call(sandbox, seed, "WithdrawMethods")[1]["error"] == []


def test_counter_can_be_switched_off_for_benchmarks(sandbox, seed, monkeypatch):
    monkeypatch.setattr(kraken_sandbox, "now_ts", lambda: 1_000_000.0)
    sandbox.account_upsert(seed.credentials.api_key, rate_tier="")
    assert all(call(sandbox, seed, "WithdrawMethods")[1]["error"] == [] for _ in range(30))


# --- funding calls ------------------------------------------------------------------------------


def test_withdraw_info_shape(sandbox, seed):
    _, body = call(
        sandbox, seed, "WithdrawInfo", {"asset": "btc", "key": seed.venue_key, "amount": "1"}
    )
    assert body["result"] == {
        "method": "Bitcoin",
        "limit": "9.99985000",
        "amount": "0.99985000",
        "fee": "0.00015000",
    }


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"asset": "BTC", "key": "no-such-key", "amount": "0.001"},
            "EFunding:Unknown withdraw key",
        ),
        (
            {"asset": "ETH", "key": "btc-cold-wallet", "amount": "0.1"},
            "EFunding:Unknown withdraw key",
        ),
        ({"asset": "DOGE", "key": "btc-cold-wallet", "amount": "1"}, "EFunding:Unknown asset"),
        (
            {"asset": "BTC", "key": "btc-cold-wallet", "amount": "0.000000001"},
            "EFunding:Invalid amount",
        ),
        ({"asset": "BTC", "key": "btc-cold-wallet", "amount": "0.0001"}, "EFunding:Invalid amount"),
        ({"asset": "BTC", "key": "btc-cold-wallet", "amount": "1e-3"}, "EFunding:Invalid amount"),
        ({"asset": "BTC", "key": "btc-cold-wallet", "amount": "-1"}, "EFunding:Invalid amount"),
        ({"asset": "BTC", "key": "btc-cold-wallet"}, "EGeneral:Invalid arguments:amount"),
        ({"asset": "BTC", "amount": "0.001"}, "EGeneral:Invalid arguments:key"),
        (
            {"asset": "BTC", "key": "btc-cold-wallet", "amount": "0.001", "address": "bc1qother"},
            "EFunding:Invalid withdrawal address",
        ),
        (
            {"asset": "BTC", "key": "btc-cold-wallet", "amount": "0.001", "max_fee": "0.0001"},
            "EFunding:Max fee exceeded",
        ),
        ({"asset": "BTC", "key": "btc-cold-wallet", "amount": "11"}, "EFunding:Insufficient funds"),
        ({"asset": "XRP", "key": "xrp-ledger", "amount": "3.0000001"}, "EFunding:Invalid amount"),
    ],
)
def test_withdraw_refusals(sandbox, seed, params, error):
    status, body = call(sandbox, seed, "Withdraw", params)
    assert (status, body) == (200, {"error": [error]})
    assert sandbox.count_withdrawals() == 0


def test_withdraw_debits_and_lists_net_amount(sandbox, seed):
    _, body = withdraw(sandbox, seed, "0.001", address=seed.address, max_fee="0.00015")
    refid = body["result"]["refid"]
    head, _, tail = refid.partition("-")
    assert (len(head), len(tail)) == (7, 22)
    _, history = call(sandbox, seed, "WithdrawStatus", {"asset": "XBT"})
    (row,) = history["result"]
    assert row["refid"] == refid
    assert (row["asset"], row["method"], row["aclass"]) == ("XXBT", "Bitcoin", "currency")
    assert (row["amount"], row["fee"]) == ("0.00085000", "0.00015000")
    assert row["info"] == seed.address
    # Exactly the funding page's fields: no ``key`` (NOTES §1.5, §7).
    assert set(row) == {
        "method",
        "aclass",
        "asset",
        "refid",
        "txid",
        "info",
        "amount",
        "fee",
        "time",
        "status",
    }
    assert row["status"] == "Success" and len(row["txid"]) == 64  # settle_seconds is 0 here
    with sandbox.store.tx() as tx:
        balance = sandbox.account(tx, seed.credentials.api_key)["balances"]["XXBT"]
    assert Decimal(balance) == Decimal("9.999")


def test_history_prints_evm_addresses_in_lower_case(sandbox, seed):
    eth = seed.destinations[1]
    assert eth["address"] != eth["address"].lower()
    withdraw(sandbox, seed, "0.05", asset="ETH", key=eth["venue_key"])
    _, history = call(sandbox, seed, "WithdrawStatus", {"asset": "ETH"})
    assert history["result"][0]["info"] == eth["address"].lower()


@pytest.mark.parametrize(
    ("order", "newest_first"), [("oldest_first", False), ("newest_first", True)]
)
def test_pending_until_settled_then_history_in_the_mode_s_order(sandbox, seed, order, newest_first):
    assert KrakenSandbox.MODES["history_order"][0] == "oldest_first"  # the default
    sandbox.set_mode("history_order", order)
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    first = withdraw(sandbox, seed, "0.001")[1]["result"]["refid"]
    second = withdraw(sandbox, seed, "0.002")[1]["result"]["refid"]
    _, history = call(sandbox, seed, "WithdrawStatus", {"asset": "BTC"})
    expected = [second, first] if newest_first else [first, second]
    assert [r["refid"] for r in history["result"]] == expected
    assert {r["status"] for r in history["result"]} == {"Pending"}
    assert "status-prop" not in history["result"][0]
    _, eth = call(sandbox, seed, "WithdrawStatus", {"asset": "ETH"})
    assert eth["result"] == []


def test_cancel_marks_failure_canceled(sandbox, seed):
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    refid = withdraw(sandbox, seed)[1]["result"]["refid"]
    assert call(sandbox, seed, "WithdrawCancel", {"asset": "BTC", "refid": refid})[1] == {
        "error": [],
        "result": True,
    }
    _, history = call(sandbox, seed, "WithdrawStatus", {"asset": "BTC"})
    (row,) = history["result"]
    assert (row["status"], row["status-prop"]) == ("Failure", "canceled")
    again = call(sandbox, seed, "WithdrawCancel", {"asset": "BTC", "refid": refid})[1]
    assert again == {"error": ["EFunding:Invalid reference id"]}


def test_withdraw_addresses_filters(sandbox, seed):
    _, body = call(sandbox, seed, "WithdrawAddresses", {"asset": "eth"})
    assert [r["key"] for r in body["result"]] == ["eth-treasury", "eth-ops"]
    _, body = call(sandbox, seed, "WithdrawAddresses", {"key": "xrp-ledger"})
    assert body["result"] == [
        {
            "address": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh",
            "asset": "XXRP",
            "method": "Ripple XRP",
            "key": "xrp-ledger",
            "verified": True,
            "memo": "104857",
        }
    ]


def test_seed_primary_destination_fits_the_balance(sandbox):
    seed = sandbox.seed(api_key="fixed-key", balance=Decimal("3"))
    assert seed.destinations[0]["venue_key"] == seed.venue_key
    assert seed.minimum * 2 < seed.balance / 100
    assert seed.asset == "BTC" and seed.precision == 8
    again = sandbox.seed(api_key="fixed-key")
    assert again.credentials.api_secret == seed.credentials.api_secret


def test_injected_server_error_keeps_the_envelope(sandbox, seed):
    sandbox.inject("http_error", path="/0/private/Withdraw", status=503)
    status, body = withdraw(sandbox, seed)
    assert (status, body) == (503, {"error": ["EService:Unavailable"]})
    assert sandbox.count_withdrawals() == 0


def test_malformed_history_filter_is_invalid_arguments(sandbox, seed):
    _, body = call(sandbox, seed, "WithdrawStatus", {"asset": "BTC", "start": "yesterday"})
    assert body == {"error": ["EGeneral:Invalid arguments"]}
