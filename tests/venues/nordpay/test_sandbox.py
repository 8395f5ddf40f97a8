"""Nord-Pay sandbox on its own terms: auth, validation shape, prefixes, envelopes, state."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from venues.sandbox.app import SandboxRequest
from venues.sandbox.registry import sandbox_for

TRON = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"


@pytest.fixture
def sandbox():
    return sandbox_for("nordpay")


def call(sandbox, method: str, target: str, body=None, key: str | None = None):
    """One request; paths written unprefixed get the prefix the sandbox answers by default."""
    if target.startswith("/balance"):
        target = "/v1" + target
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    response = sandbox.handle(SandboxRequest(method, target, headers, raw))
    return response.status, json.loads(response.body), response.headers


def request_body(amount="50", currency="USDTTRC20"):
    return {"currency": currency, "address": TRON, "amount": amount}


def test_missing_key_is_fastapi_validation_error(sandbox):
    sandbox.seed()
    status, body, _ = call(sandbox, "GET", "/v1/balance/")
    assert status == 422
    assert body == {
        "detail": [{"loc": ["header", "x-api-key"], "msg": "Field required", "type": "missing"}]
    }


def test_unknown_key_is_401(sandbox):
    seed = sandbox.seed()
    status, body, _ = call(sandbox, "GET", "/v1/balance/", key=seed.credentials.api_key + "x")
    assert (status, body) == (401, {"detail": "Invalid API key"})


def test_the_key_is_the_api_key_and_there_is_no_secret(sandbox):
    seed = sandbox.seed()
    assert seed.credentials.api_key and not seed.credentials.api_secret
    status, _, _ = call(sandbox, "GET", "/balance/", key=seed.credentials.api_key)
    assert status == 200


@pytest.mark.parametrize(("mode", "served", "refused"), [("/v1", "/v1", ""), ("none", "", "/v1")])
def test_only_the_configured_prefix_is_served(sandbox, mode, served, refused):
    assert sandbox.MODES["path_prefix"][0] == "/v1"  # the default
    sandbox.set_mode("path_prefix", mode)
    seed = sandbox.seed()
    assert seed.options.path_prefix == served
    key = {"x-api-key": seed.credentials.api_key}
    ok = sandbox.handle(SandboxRequest("GET", served + "/balance/", key, b""))
    assert ok.status == 200 and json.loads(ok.body)["balances"]["USDTTRC20"] == str(seed.balance)
    wrong = sandbox.handle(SandboxRequest("GET", refused + "/balance/", key, b""))
    assert (wrong.status, json.loads(wrong.body)) == (404, {"detail": "Not Found"})


@pytest.mark.parametrize(("mode", "shown"), [("net", "39.8115"), ("gross", "40.5")])
def test_history_amount_modes(sandbox, mode, shown):
    assert sandbox.MODES["history_amount"][0] == "net"  # the default
    sandbox.set_mode("history_amount", mode)
    seed = sandbox.seed()
    key = seed.credentials.api_key
    _, quote, _ = call(sandbox, "POST", "/balance/withdraw/request", request_body("40.5"), key)
    call(sandbox, "POST", "/balance/withdraw/confirm", {"identifier": quote["identifier"]}, key)
    _, history, _ = call(sandbox, "GET", "/balance/withdraws?currency=USDTTRC20", key=key)
    (item,) = history["items"]
    assert (item["amount"], item["service_fee"]) == (shown, "0.688500")


def test_unknown_path_is_404(sandbox):
    seed = sandbox.seed()
    status, body, _ = call(sandbox, "GET", "/v2/balance/", key=seed.credentials.api_key)
    assert (status, body) == (404, {"detail": "Not Found"})


def test_request_answer_matches_the_docs_shape(sandbox):
    seed = sandbox.seed()
    status, body, _ = call(
        sandbox,
        "POST",
        "/balance/withdraw/request",
        request_body("100"),
        seed.credentials.api_key,
    )
    assert status == 200
    assert set(body) == {
        "identifier",
        "currency",
        "address",
        "amount",
        "amount_usd",
        "service_fee",
        "service_fee_usd",
        "expires_at",
    }
    assert body["amount"] == 100 and body["service_fee"] == 1.7  # JSON numbers, as documented
    assert body["expires_at"].endswith("Z")
    assert sandbox.count_withdrawals() == 0


@pytest.mark.parametrize(
    ("amount", "kind"),
    [("50.0000001", "decimal_max_places"), ("0", "greater_than"), ("abc", "decimal_parsing")],
)
def test_bad_amounts_are_422_lists(sandbox, amount, kind):
    seed = sandbox.seed()
    status, body, _ = call(
        sandbox,
        "POST",
        "/balance/withdraw/request",
        request_body(amount),
        seed.credentials.api_key,
    )
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "amount"] and body["detail"][0]["type"] == kind


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (request_body("10"), "Amount is less than minimum withdraw amount for USDTTRC20 (25)"),
        (request_body("999999"), "Not enough balance"),
        (request_body("50", "DOGE"), "DOGE is not available for withdraw at this moment"),
    ],
)
def test_documented_request_errors(sandbox, body, detail):
    seed = sandbox.seed()
    status, answer, _ = call(
        sandbox, "POST", "/v1/balance/withdraw/request", body, seed.credentials.api_key
    )
    assert (status, answer) == (400, {"detail": detail})


def test_confirm_of_unknown_identifier(sandbox):
    seed = sandbox.seed()
    status, body, _ = call(
        sandbox,
        "POST",
        "/balance/withdraw/confirm",
        {"identifier": "00000000-0000-4000-8000-000000000000"},
        seed.credentials.api_key,
    )
    assert (status, body) == (400, {"detail": "Withdraw request not found"})


def test_identifier_belongs_to_its_account(sandbox):
    owner, other = sandbox.seed(), sandbox.seed()
    _, quote, _ = call(
        sandbox, "POST", "/balance/withdraw/request", request_body(), owner.credentials.api_key
    )
    status, body, _ = call(
        sandbox,
        "POST",
        "/balance/withdraw/confirm",
        {"identifier": quote["identifier"]},
        other.credentials.api_key,
    )
    assert (status, body) == (400, {"detail": "Withdraw request not found"})


def test_confirm_debits_and_history_lists_it(sandbox):
    seed = sandbox.seed()
    key = seed.credentials.api_key
    _, quote, _ = call(sandbox, "POST", "/balance/withdraw/request", request_body("40.5"), key)
    status, body, _ = call(
        sandbox, "POST", "/balance/withdraw/confirm", {"identifier": quote["identifier"]}, key
    )
    assert status == 200
    assert body == {
        "detail": "Withdrawal request created and waiting for admin approval",
        "status": "pending",
        "id": body["id"],
    }
    _, balances, _ = call(sandbox, "GET", "/balance/", key=key)
    assert Decimal(balances["balances"]["USDTTRC20"]) == seed.balance - Decimal("40.5")
    _, history, _ = call(
        sandbox, "GET", "/balance/withdraws?currency=USDTTRC20&limit=5&offset=0", key=key
    )
    (item,) = history["items"]
    # Net of the 1.7 % fee by default (mode history_amount).
    assert item["id"] == body["id"] and item["amount"] == "39.8115"
    assert item["status"] == "processed" and item["tx_hash"].startswith("0x")
    assert (history["total"], history["limit"], history["total_pages"]) == (1, 5, 1)


def test_history_limit_above_200_is_422(sandbox):
    seed = sandbox.seed()
    status, body, _ = call(
        sandbox, "GET", "/balance/withdraws?limit=201", key=seed.credentials.api_key
    )
    assert status == 422 and body["detail"][0]["loc"] == ["query", "limit"]


def test_limits_rows(sandbox):
    seed = sandbox.seed()
    status, rows, _ = call(sandbox, "GET", "/balance/withdraw/limits", key=seed.credentials.api_key)
    row = next(r for r in rows if r["currency"] == "USDTTRC20")
    assert status == 200
    assert row == {
        "currency": "USDTTRC20",
        "min_amount": "25",
        "max_amount": str(seed.balance),
        "fee_percent": "1.7",
        "available_balance": str(seed.balance),
    }


def test_newer_envelope_for_success_and_errors(sandbox):
    seed = sandbox.seed()
    sandbox.use_envelope("success")
    status, body, _ = call(sandbox, "GET", "/balance/", key=seed.credentials.api_key)
    assert status == 200 and body["success"] is True and "balances" in body["data"]
    status, body, _ = call(sandbox, "GET", "/balance/", key="nope")
    assert status == 401
    assert body == {
        "success": False,
        "data": None,
        "error": {"type": "unauthorized", "details": "Invalid API key"},
    }


def test_rate_limit_answer_has_retry_after(sandbox):
    sandbox.inject("rate_limit", path="/balance/", retry_after=7)
    status, body, headers = call(sandbox, "GET", "/balance/", key="whatever")
    assert (status, body, headers["Retry-After"]) == (429, {"detail": "Too Many Requests"}, "7")


def test_seed_destinations_are_valid_and_primary_first(sandbox):
    seed = sandbox.seed()
    assert seed.destinations[0]["address"] == seed.address == TRON
    assert {d["asset"] for d in seed.destinations} == {"USDT", "BTC", "ETH"}
    assert seed.minimum * 2 < seed.balance / 10
    assert seed.credentials.api_key and not seed.credentials.api_secret


def test_seeding_a_label_again_keeps_its_key(sandbox):
    first = sandbox.seed(api_key="demo-nordpay-key")
    again = sandbox.seed(api_key="demo-nordpay-key")
    assert again.credentials == first.credentials
    status, body, _ = call(sandbox, "GET", "/balance/", key=first.credentials.api_key)
    assert status == 200 and body["balances"]["USDTTRC20"] == str(first.balance)
