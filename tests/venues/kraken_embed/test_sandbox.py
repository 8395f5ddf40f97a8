"""The Kraken Embed sandbox on its own terms: auth, envelope, validation, idempotency."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from venues.kraken_embed import sandbox as embed_sandbox
from venues.kraken_embed.client import sign
from venues.kraken_embed.sandbox import KrakenEmbedSandbox
from venues.sandbox.app import SandboxRequest, SandboxResponse, SandboxSeed
from venues.sandbox.registry import sandbox_for


@pytest.fixture
def sandbox() -> KrakenEmbedSandbox:
    return sandbox_for("kraken_embed")


@pytest.fixture
def seed(sandbox: KrakenEmbedSandbox) -> SandboxSeed:
    return sandbox.seed()


def call(
    sandbox: KrakenEmbedSandbox,
    seed: SandboxSeed,
    method: str,
    target: str,
    body: dict[str, Any] | None = None,
    *,
    nonce: str | None = None,
    secret: str | None = None,
    signed_target: str | None = None,
    drop: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
) -> SandboxResponse:
    """Send one request the way a correct client would, unless told to spoil part of it."""
    raw = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    nonce = nonce if nonce is not None else str(time.time_ns())
    headers = {
        "api-key": seed.credentials.api_key,
        "api-nonce": nonce,
        "api-sign": sign(
            secret or seed.credentials.api_secret, signed_target or target, nonce, raw
        ),
        "payward-version": "2025-04-15",
        "content-type": "application/json",
    }
    headers.update({k.lower(): v for k, v in (extra or {}).items()})
    for name in drop:
        headers.pop(name.lower())
    return sandbox.handle(SandboxRequest(method=method, target=target, headers=headers, body=raw))


def user(seed: SandboxSeed) -> str:
    return f"?user={seed.credentials.account}"


def answer(response: SandboxResponse) -> Any:
    return json.loads(response.body)


def withdraw_body(seed: SandboxSeed, amount: str, **extra: Any) -> dict[str, Any]:
    return {
        "asset": "BTC",
        "key": seed.venue_key,
        "amount": amount,
        "idempotency_token": str(uuid.uuid4()),
        "preview": False,
    } | extra


# --- authentication ---------------------------------------------------------------------------


def test_signed_call_succeeds(sandbox, seed):
    response = call(sandbox, seed, "GET", "/b2b/funds/withdrawals/methods/BTC" + user(seed))
    assert response.status == 200
    method = answer(response)["result"]["methods"][0]
    assert method["network"] == "Bitcoin"
    assert method["minimum"] == {"asset": "BTC", "amount": "0.00050000"}
    assert method["fee_token"].startswith("wft_")


@pytest.mark.parametrize(
    ("spoil", "status", "error"),
    [
        ({"drop": ("API-Key",)}, 401, "Missing API-Key"),
        ({"extra": {"API-Key": "no-such-key"}}, 401, "EAPI:Invalid key"),
        ({"drop": ("API-Sign",)}, 401, "EAPI:Invalid signature"),
        ({"secret": "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="}, 401, "EAPI:Invalid signature"),
        ({"drop": ("API-Nonce",)}, 401, "EAPI:Invalid nonce"),
        ({"nonce": "12abc"}, 401, "EAPI:Invalid nonce"),
        ({"extra": {"Payward-Version": "2024-01-01"}}, 400, "EGeneral:Invalid arguments"),
    ],
)
def test_auth_failures_answer_in_the_venue_envelope(sandbox, seed, spoil, status, error):
    response = call(sandbox, seed, "GET", "/b2b/funds/withdrawals/addresses" + user(seed), **spoil)
    assert response.status == status
    assert answer(response) == {"error": [error]}


def test_query_string_is_part_of_the_signed_path(sandbox, seed):
    target = "/b2b/funds/withdrawals/addresses" + user(seed)
    response = call(sandbox, seed, "GET", target, signed_target="/b2b/funds/withdrawals/addresses")
    assert (response.status, answer(response)) == (401, {"error": ["EAPI:Invalid signature"]})


def test_body_is_part_of_the_signature(sandbox, seed):
    body = withdraw_body(seed, "0.001", preview=True)
    raw = json.dumps(body, separators=(",", ":")).encode()
    nonce = str(time.time_ns())
    target = "/b2b/funds/withdrawals" + user(seed)
    headers = {
        "api-key": seed.credentials.api_key,
        "api-nonce": nonce,
        "api-sign": sign(seed.credentials.api_secret, target, nonce, raw),
        "content-type": "application/json",
    }
    # The same JSON with default separators (what json.dumps sends) is other bytes.
    spaced = json.dumps(body).encode()
    response = sandbox.handle(SandboxRequest("POST", target, headers, spaced))
    assert (response.status, answer(response)) == (401, {"error": ["EAPI:Invalid signature"]})


def test_replayed_or_older_nonce_is_refused(sandbox, seed):
    target = "/b2b/funds/withdrawals/addresses" + user(seed)
    nonce = str(time.time_ns())
    assert call(sandbox, seed, "GET", target, nonce=nonce).status == 200
    for stale in (nonce, str(int(nonce) - 1)):
        response = call(sandbox, seed, "GET", target, nonce=stale)
        assert (response.status, answer(response)) == (401, {"error": ["EAPI:Invalid nonce"]})


def test_bad_signature_does_not_spend_the_nonce(sandbox, seed):
    target = "/b2b/funds/withdrawals/addresses" + user(seed)
    nonce = str(time.time_ns())
    bad = call(sandbox, seed, "GET", target, nonce=nonce, secret="d3Jvbmctc2VjcmV0")
    assert bad.status == 401
    assert call(sandbox, seed, "GET", target, nonce=nonce).status == 200


def test_user_must_be_the_keys_own_iiban(sandbox, seed):
    other = call(sandbox, seed, "GET", "/b2b/funds/withdrawals/addresses?user=ZZ99XXXXXXXXXXXX")
    assert (other.status, answer(other)) == (403, {"error": ["EGeneral:Permission denied"]})
    short = call(sandbox, seed, "GET", "/b2b/funds/withdrawals/addresses?user=AA12N84GXCK")
    assert (short.status, answer(short)) == (400, {"error": ["EGeneral:Bad data"]})


def test_master_account_call_without_user(sandbox, seed):
    response = call(sandbox, seed, "GET", "/b2b/funds/withdrawals/addresses")
    assert response.status == 200
    assert len(answer(response)["result"]["addresses"]) == len(seed.destinations)


# --- withdrawals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("0.000000001", "EFunding:Invalid amount"),  # nine places, BTC has eight
        ("0.00100000001", "EFunding:Invalid amount"),
        ("0.0004", "EFunding:Invalid amount"),  # below the minimum
        ("2", "EFunding:Invalid amount"),  # above the maximum
        ("0", "EFunding:Invalid amount"),
        ("-0.001", "EFunding:Invalid amount"),
        ("1e-3", "EGeneral:Bad data"),  # not the documented pattern
        ("", "EGeneral:Bad data"),
    ],
)
def test_amount_validation(sandbox, seed, amount, error):
    response = call(
        sandbox, seed, "POST", "/b2b/funds/withdrawals" + user(seed), withdraw_body(seed, amount)
    )
    assert (response.status, answer(response)) == (400, {"error": [error]})
    assert sandbox.count_withdrawals() == 0


def test_insufficient_funds(sandbox):
    seed = sandbox.seed(balance=Decimal("0.0008"))
    response = call(
        sandbox, seed, "POST", "/b2b/funds/withdrawals" + user(seed), withdraw_body(seed, "0.0009")
    )
    assert (response.status, answer(response)) == (400, {"error": ["EFunding:Insufficient funds"]})


def test_unknown_key_and_asset(sandbox, seed):
    target = "/b2b/funds/withdrawals" + user(seed)
    unknown_key = call(sandbox, seed, "POST", target, withdraw_body(seed, "0.001", key="nope"))
    assert answer(unknown_key) == {"error": ["EFunding:Unknown withdraw key"]}
    wrong_asset = call(sandbox, seed, "POST", target, withdraw_body(seed, "1", asset="XRP"))
    assert answer(wrong_asset) == {"error": ["EFunding:Unknown withdraw key"]}
    unknown_asset = call(sandbox, seed, "POST", target, withdraw_body(seed, "1", asset="DOGE"))
    assert (unknown_asset.status, answer(unknown_asset)) == (
        400,
        {"error": ["ENexus:Unknown asset"]},
    )
    methods = call(sandbox, seed, "GET", "/b2b/funds/withdrawals/methods/DOGE" + user(seed))
    assert answer(methods) == {"error": ["ENexus:Unknown asset"]}


def test_preview_creates_nothing_and_reports_net_fee_total(sandbox, seed):
    body = withdraw_body(seed, "0.001", preview=True)
    response = call(sandbox, seed, "POST", "/b2b/funds/withdrawals" + user(seed), body)
    result = answer(response)["result"]
    assert (result["amount"], result["fee"], result["total"]) == (
        "0.00080000",
        "0.00020000",
        "0.00100000",
    )
    assert result["fee_token"].startswith("wft_")
    assert sandbox.count_withdrawals() == 0


@pytest.mark.parametrize(("storage", "created"), [("stored", 0), ("not_stored", 1)])
def test_a_submit_reusing_a_preview_token(sandbox, seed, storage, created):
    assert KrakenEmbedSandbox.MODES["preview_storage"][0] == "stored"  # the default
    sandbox.set_mode("preview_storage", storage)
    body = withdraw_body(seed, "0.001", preview=True)
    target = "/b2b/funds/withdrawals" + user(seed)
    preview = answer(call(sandbox, seed, "POST", target, body))["result"]
    submit = answer(call(sandbox, seed, "POST", target, body | {"preview": False}))["result"]
    # Stored: "reusing the same key ... returns the original result", the preview itself.
    assert (submit == preview) is (storage == "stored")
    assert sandbox.count_withdrawals() == created


@pytest.mark.parametrize(("retention", "created"), [("short", 2), ("kept", 1)])
def test_token_retention(sandbox, seed, monkeypatch, retention, created):
    assert KrakenEmbedSandbox.MODES["token_retention"][0] == "short"  # the default
    sandbox.set_mode("token_retention", retention)
    target = "/b2b/funds/withdrawals" + user(seed)
    body = withdraw_body(seed, "0.001")
    call(sandbox, seed, "POST", target, body)
    later = time.time() + embed_sandbox.TOKEN_RETENTION_SECONDS + 1
    monkeypatch.setattr(embed_sandbox, "now_ts", lambda: later)
    call(sandbox, seed, "POST", target, body)
    assert sandbox.count_withdrawals() == created


def test_same_idempotency_token_returns_the_original_result(sandbox, seed):
    target = "/b2b/funds/withdrawals" + user(seed)
    body = withdraw_body(seed, "0.001")
    first = answer(call(sandbox, seed, "POST", target, body))["result"]
    # Even a changed amount returns the original result, and nothing is debited again.
    again = answer(call(sandbox, seed, "POST", target, body | {"amount": "0.002"}))["result"]
    assert again == first
    assert sandbox.count_withdrawals() == 1
    with sandbox.store.tx() as tx:
        balance = sandbox.account(tx, seed.credentials.api_key)["balances"]["BTC"]
    assert Decimal(balance) == seed.balance - Decimal("0.001")


def test_fee_token_is_bound_and_expires(sandbox, seed):
    target = "/b2b/funds/withdrawals" + user(seed)
    methods = answer(call(sandbox, seed, "GET", "/b2b/funds/withdrawals/methods/USDT" + user(seed)))
    erc20_token = next(
        m["fee_token"] for m in methods["result"]["methods"] if m["network"] == "Ethereum"
    )
    # The seed's USDT key is on Tron: a token quoted for another method is refused.
    wrong = withdraw_body(seed, "5", asset="USDT", key="usdt-trc20-ops", fee_token=erc20_token)
    assert answer(call(sandbox, seed, "POST", target, wrong)) == {
        "error": ["EFunding:Invalid fee token"]
    }
    btc = answer(call(sandbox, seed, "GET", "/b2b/funds/withdrawals/methods/BTC" + user(seed)))
    token = btc["result"]["methods"][0]["fee_token"]
    sandbox.expire_fee_tokens()
    expired = call(sandbox, seed, "POST", target, withdraw_body(seed, "0.001", fee_token=token))
    assert (expired.status, answer(expired)) == (400, {"error": ["EFunding:Invalid fee token"]})
    unknown = call(sandbox, seed, "POST", target, withdraw_body(seed, "0.001", fee_token="wft_x"))
    assert answer(unknown) == {"error": ["EFunding:Invalid fee token"]}
    assert sandbox.count_withdrawals() == 0


def test_failed_withdrawal_is_refunded(sandbox, seed):
    sandbox.inject("settle_failure")
    target = "/b2b/funds/withdrawals" + user(seed)
    call(sandbox, seed, "POST", target, withdraw_body(seed, "0.001"))
    listing = call(
        sandbox,
        seed,
        "GET",
        "/b2b/funds/transactions?type=withdrawal&user=" + seed.credentials.account,
    )
    assert answer(listing)["result"]["transactions"][0]["status"] == "failure"
    with sandbox.store.tx() as tx:
        balance = sandbox.account(tx, seed.credentials.api_key)["balances"]["BTC"]
    assert Decimal(balance) == seed.balance


def test_transactions_page_with_a_cursor(sandbox, seed):
    target = "/b2b/funds/withdrawals" + user(seed)
    refs = [
        answer(call(sandbox, seed, "POST", target, withdraw_body(seed, "0.001")))["result"][
            "ref_id"
        ]
        for _ in range(3)
    ]
    base = "/b2b/funds/transactions?type=withdrawal&page_size=2&user=" + seed.credentials.account
    first = answer(call(sandbox, seed, "GET", base))["result"]
    assert [t["ref_id"] for t in first["transactions"]] == refs[:2]  # oldest first by default
    second = answer(call(sandbox, seed, "GET", base + "&cursor=" + first["next_cursor"]))["result"]
    assert [t["ref_id"] for t in second["transactions"]] == refs[2:]
    assert second["next_cursor"] is None
    row = second["transactions"][0]
    # Exactly the documented fields (NOTES §2.2): no token of the client's.
    assert set(row) == {"type", "date", "asset", "amount", "status", "ref_id"}
    assert row["amount"] == "0.00080000"  # net of the 0.0002 fee by default


def test_transactions_newest_first_and_gross_modes(sandbox, seed):
    sandbox.set_mode("history_order", "newest_first")
    sandbox.set_mode("history_amount", "gross")
    target = "/b2b/funds/withdrawals" + user(seed)
    refs = [
        answer(call(sandbox, seed, "POST", target, withdraw_body(seed, "0.001")))["result"][
            "ref_id"
        ]
        for _ in range(2)
    ]
    base = "/b2b/funds/transactions?type=withdrawal&user=" + seed.credentials.account
    rows = answer(call(sandbox, seed, "GET", base))["result"]["transactions"]
    assert [t["ref_id"] for t in rows] == refs[::-1]
    assert rows[0]["amount"] == "0.001"


@pytest.mark.parametrize("query", ["", "type=trade", "type=withdrawal&page_size=501"])
def test_transactions_query_is_validated(sandbox, seed, query):
    response = call(sandbox, seed, "GET", "/b2b/funds/transactions?" + query)
    assert (response.status, answer(response)) == (400, {"error": ["EGeneral:Bad data"]})


# --- saved addresses --------------------------------------------------------------------------


def test_save_list_and_delete_addresses(sandbox, seed):
    target = "/b2b/funds/withdrawals/addresses" + user(seed)
    eth_method = "3a8f1d2e-5b6c-4d7e-8f90-a1b2c3d4e5f6"
    body = {
        "asset": "ETH",
        "method_id": eth_method,
        "key": "eth-cold",
        "address": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    }
    saved = call(sandbox, seed, "POST", target, body)
    assert answer(saved) == {"result": {"key": "eth-cold"}}
    duplicate = call(sandbox, seed, "POST", target, body)
    assert (duplicate.status, answer(duplicate)) == (
        409,
        {"error": ["EFunding:Duplicate withdraw key"]},
    )
    bad_address = call(sandbox, seed, "POST", target, body | {"key": "x", "address": "0x12"})
    assert answer(bad_address) == {"error": ["EGeneral:Bad data"]}
    bad_method = call(sandbox, seed, "POST", target, body | {"key": "y", "method_id": "nope"})
    assert answer(bad_method) == {"error": ["EGeneral:Bad data"]}
    listing = answer(
        call(
            sandbox,
            seed,
            "GET",
            "/b2b/funds/withdrawals/addresses?asset=ETH&user=" + seed.credentials.account,
        )
    )
    assert sorted(a["key"] for a in listing["result"]["addresses"]) == ["eth-cold", "eth-treasury"]
    removed = call(
        sandbox, seed, "DELETE", "/b2b/funds/withdrawals/addresses/eth-cold" + user(seed)
    )
    assert answer(removed) == {"result": True}
    again = call(sandbox, seed, "DELETE", "/b2b/funds/withdrawals/addresses/eth-cold" + user(seed))
    assert answer(again) == {"error": ["EFunding:Unknown withdraw key"]}


def test_xrp_tag_must_be_numeric(sandbox, seed):
    body = {
        "asset": "XRP",
        "method_id": "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
        "key": "xrp-2",
        "address": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh",
        "tag": "abc",
    }
    target = "/b2b/funds/withdrawals/addresses" + user(seed)
    assert answer(call(sandbox, seed, "POST", target, body)) == {"error": ["EGeneral:Bad data"]}
    ok = call(sandbox, seed, "POST", target, body | {"tag": "42"})
    assert answer(ok) == {"result": {"key": "xrp-2"}}


# --- faults and seed --------------------------------------------------------------------------


def test_rate_limit_and_http_errors_use_the_envelope(sandbox):
    limited = sandbox.render_rate_limit(7)
    assert (limited.status, limited.headers["Retry-After"]) == (429, "7")
    assert json.loads(limited.body) == {"error": ["EAPI:Rate limit exceeded"]}
    for status, error in [
        (408, "EService:Deadline elapsed"),
        (500, "EGeneral:Internal error"),
        (503, "EService:Unavailable"),
    ]:
        response = sandbox.render_http_error(status)
        assert (response.status, json.loads(response.body)) == (status, {"error": [error]})


def test_seed_registers_every_destination(sandbox, seed):
    assert seed.destinations[0]["venue_key"] == seed.venue_key == "btc-treasury"
    assert seed.minimum * 2 < seed.balance / 100
    assert 14 <= len(seed.credentials.account) <= 42
    listing = answer(call(sandbox, seed, "GET", "/b2b/funds/withdrawals/addresses" + user(seed)))
    saved = {a["key"]: a for a in listing["result"]["addresses"]}
    for dest in seed.destinations:
        assert saved[dest["venue_key"]]["address"] == dest["address"]
        assert saved[dest["venue_key"]]["network"] == dest["network"]
    assert saved["xrp-ops"]["memo"].isdigit()
