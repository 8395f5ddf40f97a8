"""KuCoin sandbox: gateway auth on KuCoin's own terms, withdrawal rules, settlement."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from venues.http import compact_json

from .support import raw_call

pytestmark = pytest.mark.django_db

QUOTAS = "/api/v1/withdrawals/quotas?currency=BTC&chain=bech32"


def error_of(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["code"], body["msg"]


# --- auth -------------------------------------------------------------------------------------


def test_signed_request_is_answered_in_the_envelope(sandbox, seed):
    response = raw_call(sandbox, seed.credentials, "GET", QUOTAS)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "200000"
    assert body["data"]["withdrawMinFee"] == "0.0005"
    assert body["data"]["precision"] == 8
    assert body["data"]["chain"] == "BTC-Segwit"


@pytest.mark.parametrize(
    "header", ["KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE"]
)
def test_missing_header_is_400001(sandbox, seed, header):
    response = raw_call(sandbox, seed.credentials, "GET", QUOTAS, tamper={header: None})
    assert error_of(response) == (
        401,
        "400001",
        "Any of KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE is missing",
    )


def test_stale_timestamp_is_400002(sandbox, seed):
    stale = str(int(time.time() * 1000) - 5001)
    response = raw_call(sandbox, seed.credentials, "GET", QUOTAS, timestamp=stale)
    assert error_of(response) == (401, "400002", "Invalid KC-API-TIMESTAMP")


def test_timestamp_within_five_seconds_is_accepted(sandbox, seed):
    recent = str(int(time.time() * 1000) - 4000)
    response = raw_call(sandbox, seed.credentials, "GET", QUOTAS, timestamp=recent)
    assert response.json()["code"] == "200000"


def test_unknown_key_is_400003(sandbox, seed):
    response = raw_call(sandbox, seed.credentials, "GET", QUOTAS, tamper={"KC-API-KEY": "nokey"})
    assert error_of(response) == (401, "400003", "KC-API-KEY does not exist")


def test_bad_passphrase_is_400004(sandbox, seed):
    response = raw_call(
        sandbox, seed.credentials, "GET", QUOTAS, tamper={"KC-API-PASSPHRASE": "plain"}
    )
    assert error_of(response) == (401, "400004", "Invalid KC-API-PASSPHRASE")


def test_bad_signature_is_400005(sandbox, seed):
    response = raw_call(sandbox, seed.credentials, "GET", QUOTAS, tamper={"KC-API-SIGN": "AAAA"})
    assert error_of(response) == (401, "400005", "Invalid KC-API-SIGN")


def test_signature_over_other_bytes_is_400005(sandbox, seed):
    # Signed over the default-separator JSON, sent compact: the httpx 0.28 pitfall.
    signed_body = b'{"currency": "BTC"}'
    response = raw_call(
        sandbox,
        seed.credentials,
        "POST",
        "/api/v3/withdrawals",
        body=signed_body,
        tamper={"KC-API-SIGN": None},
    )
    assert error_of(response)[1] == "400001"
    honest = raw_call(sandbox, seed.credentials, "POST", "/api/v3/withdrawals", body=signed_body)
    assert error_of(honest)[1] == "400100"  # signature fine, the body is what is wrong
    tampered = raw_call(
        sandbox,
        seed.credentials,
        "GET",
        "/api/v1/withdrawals/quotas?currency=BTC&chain=eth",
        sent_target=QUOTAS,
    )
    assert error_of(tampered) == (401, "400005", "Invalid KC-API-SIGN")


def test_signature_covers_the_query_before_url_encoding(sandbox, seed):
    response = raw_call(
        sandbox,
        seed.credentials,
        "GET",
        "/api/v1/withdrawals?currency=BTC&status=NOT A STATUS",
        sent_target="/api/v1/withdrawals?currency=BTC&status=NOT%20A%20STATUS",
    )
    assert response.json()["code"] == "200000"
    assert response.json()["data"]["items"] == []


def test_wrong_key_version_is_400009_and_v1_is_400008(sandbox, seed):
    wrong = raw_call(sandbox, seed.credentials, "GET", QUOTAS, key_version="2")
    assert error_of(wrong) == (401, "400009", "Invalid KC-API-KEY-VERSION")
    sandbox.account_upsert(seed.credentials.api_key, key_version="1")
    legacy = raw_call(sandbox, seed.credentials, "GET", QUOTAS, key_version="1")
    assert error_of(legacy)[:2] == (401, "400008")
    missing = raw_call(
        sandbox, seed.credentials, "GET", QUOTAS, tamper={"KC-API-KEY-VERSION": None}
    )
    assert error_of(missing)[:2] == (401, "400008")


def test_v2_key_is_accepted_with_a_signed_passphrase(sandbox, seed):
    sandbox.account_upsert(seed.credentials.api_key, key_version="2")
    response = raw_call(sandbox, seed.credentials, "GET", QUOTAS, key_version="2")
    assert response.json()["code"] == "200000"


def test_post_without_json_content_type_is_415000(sandbox, seed):
    response = raw_call(
        sandbox,
        seed.credentials,
        "POST",
        "/api/v3/withdrawals",
        body=b"{}",
        tamper={"Content-Type": "text/plain"},
    )
    assert error_of(response) == (415, "415000", "Unsupported Media Type")


def test_unknown_path_is_404000(sandbox, seed):
    response = raw_call(sandbox, seed.credentials, "GET", "/api/v1/nothing")
    assert error_of(response) == (404, "404000", "Url Not Found")


def test_frozen_user_is_411100(sandbox, seed):
    sandbox.account_upsert(seed.credentials.api_key, frozen=True)
    assert error_of(raw_call(sandbox, seed.credentials, "GET", QUOTAS))[:2] == (403, "411100")


# --- withdraw rules ---------------------------------------------------------------------------


def withdraw(sandbox, seed, **changes):
    body = {
        "currency": "BTC",
        "toAddress": seed.address,
        "amount": "0.002",
        "withdrawType": "ADDRESS",
        "chain": "bech32",
        "remark": "r-1",
    } | changes
    body = {k: v for k, v in body.items() if v is not None}
    return raw_call(
        sandbox, seed.credentials, "POST", "/api/v3/withdrawals", body=compact_json(body)
    )


def balance(sandbox, seed, asset="BTC") -> Decimal:
    response = raw_call(
        sandbox,
        seed.credentials,
        "GET",
        f"/api/v1/withdrawals/quotas?currency={asset}&chain=bech32",
    )
    return Decimal(response.json()["data"]["availableAmount"])


def test_internal_fee_comes_out_of_the_amount(sandbox, seed):
    response = withdraw(sandbox, seed, feeDeductType="INTERNAL")
    assert len(response.json()["data"]["withdrawalId"]) == 24
    assert balance(sandbox, seed) == Decimal("9.998")


def test_external_fee_comes_from_the_account(sandbox, seed):
    withdraw(sandbox, seed, feeDeductType="EXTERNAL")
    assert balance(sandbox, seed) == Decimal("9.9975")


def test_over_precise_amount_is_400100_with_precision(sandbox, seed):
    response = withdraw(sandbox, seed, amount="0.002000001")
    assert error_of(response) == (
        400,
        "400100",
        "The withdrawal amount must be a multiple of the amount precision (8)",
    )
    assert sandbox.count_withdrawals() == 0


def test_below_minimum_is_400100(sandbox, seed):
    response = withdraw(sandbox, seed, amount="0.0009")
    assert error_of(response)[:2] == (400, "400100")
    assert "minimum" in error_of(response)[2]


@pytest.mark.parametrize("amount", ["0", "-1", "abc"])
def test_nonsense_amount_is_parameter_error(sandbox, seed, amount):
    assert error_of(withdraw(sandbox, seed, amount=amount)) == (400, "400100", "Parameter Error")


def test_amount_over_balance_is_200004_on_http_200(sandbox, seed):
    assert error_of(withdraw(sandbox, seed, amount="11")) == (200, "200004", "Balance insufficient")


def test_external_fee_not_covered_is_account_available_amount(sandbox, seed):
    response = withdraw(sandbox, seed, amount="10", feeDeductType="EXTERNAL")
    assert error_of(response) == (400, "400100", "account.available.amount")
    assert balance(sandbox, seed) == Decimal(10)


def test_unspecified_fee_type_falls_back_to_the_amount(sandbox, seed):
    withdraw(sandbox, seed, amount="10")
    assert balance(sandbox, seed) == Decimal(0)


def test_disabled_chain_is_260210(sandbox, seed):
    sandbox.account_upsert(seed.credentials.api_key, disabled_chains=["BTC:bech32"])
    assert error_of(withdraw(sandbox, seed)) == (200, "260210", "withdraw.disabled")


def test_address_off_whitelist_is_260325_and_whitelist_is_case_sensitive(sandbox, seed):
    response = withdraw(sandbox, seed, toAddress="bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
    assert error_of(response)[1] == "260325"
    eth = withdraw(
        sandbox,
        seed,
        currency="ETH",
        chain="eth",
        amount="0.02",
        toAddress="0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
    )
    assert error_of(eth)[1] == "260325"


def test_without_a_whitelist_any_valid_address_goes(sandbox, seed):
    sandbox.account_upsert(seed.credentials.api_key, whitelist_enabled=False)
    response = withdraw(sandbox, seed, toAddress="bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
    assert response.json()["code"] == "200000"


def test_wrong_chain_gives_kucoins_misleading_address_error(sandbox, seed):
    response = withdraw(sandbox, seed, chain="avaxc")
    assert error_of(response) == (400, "400100", "Incorrect withdrawal address")
    bad_address = withdraw(sandbox, seed, toAddress="not-an-address")
    assert error_of(bad_address)[2] == "Incorrect withdrawal address"


def test_memo_chain_requires_a_memo(sandbox, seed):
    xrp = seed.destinations[4]
    response = withdraw(
        sandbox, seed, currency="XRP", chain="xrp", amount="40", toAddress=xrp["address"]
    )
    assert error_of(response) == (400, "400100", "Parameter Error")


def test_settlement_failure_refunds_and_history_filters(sandbox, seed):
    sandbox.inject("settle_failure")
    failed_id = withdraw(sandbox, seed, remark="first").json()["data"]["withdrawalId"]
    ok_id = withdraw(sandbox, seed, remark="second").json()["data"]["withdrawalId"]
    # Both took amount + fee from the account (fee type unspecified, balance sufficient).
    assert balance(sandbox, seed) == Decimal("9.9975")
    detail = raw_call(sandbox, seed.credentials, "GET", f"/api/v1/withdrawals/{failed_id}")
    data = detail.json()["data"]
    assert data["status"] == "FAILURE"
    assert (data["returnStatus"], data["returnAmount"]) == ("SUCCESS", "0.0025")
    history = raw_call(sandbox, seed.credentials, "GET", "/api/v1/withdrawals?currency=BTC")
    # By default items carry no id (KuCoin's own example) and come oldest first.
    assert [i["remark"] for i in history.json()["data"]["items"]] == ["first", "second"]
    assert all("id" not in i for i in history.json()["data"]["items"])
    sandbox.set_mode("history_ids", "present")
    sandbox.set_mode("history_order", "newest_first")
    history = raw_call(sandbox, seed.credentials, "GET", "/api/v1/withdrawals?currency=BTC")
    assert [i["id"] for i in history.json()["data"]["items"]] == [ok_id, failed_id]
    only_success = raw_call(
        sandbox, seed.credentials, "GET", "/api/v1/withdrawals?currency=BTC&status=SUCCESS"
    )
    assert [i["remark"] for i in only_success.json()["data"]["items"]] == ["second"]


def test_history_requires_a_currency(sandbox, seed):
    response = raw_call(sandbox, seed.credentials, "GET", "/api/v1/withdrawals")
    assert error_of(response) == (400, "400100", "Parameter Error")


def test_withdrawal_becomes_uncancellable_halfway(sandbox, seed, monkeypatch):
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=100)
    wid = withdraw(sandbox, seed).json()["data"]["withdrawalId"]
    detail = raw_call(sandbox, seed.credentials, "GET", f"/api/v1/withdrawals/{wid}")
    assert detail.json()["data"]["cancelType"] == "CANCELABLE"
    later = time.time() + 60
    monkeypatch.setattr("venues.sandbox.app.now_ts", lambda: later)
    monkeypatch.setattr("venues.kucoin.sandbox.now_ts", lambda: later)
    status = raw_call(
        sandbox,
        seed.credentials,
        "GET",
        f"/api/v1/withdrawals/{wid}",
        timestamp=str(int(later * 1000)),
    )
    assert status.json()["data"]["status"] == "WALLET_PROCESSING"
    cancel = raw_call(
        sandbox,
        seed.credentials,
        "DELETE",
        f"/api/v1/withdrawals/{wid}",
        timestamp=str(int(later * 1000)),
    )
    assert error_of(cancel) == (
        400,
        "400100",
        "Only withdrawal requests with PROCESSING status can be canceled.",
    )


def test_cancel_answers_null_data(sandbox, seed):
    sandbox.account_upsert(seed.credentials.api_key, settle_seconds=3600)
    wid = withdraw(sandbox, seed).json()["data"]["withdrawalId"]
    response = raw_call(sandbox, seed.credentials, "DELETE", f"/api/v1/withdrawals/{wid}")
    assert response.json() == {"code": "200000", "data": None}
    assert balance(sandbox, seed) == Decimal(10)


def test_seed_registers_every_destination_primary_first(sandbox):
    seed = sandbox.seed(balance=Decimal(5))
    assert (seed.asset, seed.network, seed.address) == (
        "BTC",
        "bech32",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    )
    assert seed.destinations[0]["address"] == seed.address
    assert {d["network"] for d in seed.destinations} == {"bech32", "eth", "trx", "xrp"}
    assert seed.minimum * 2 < seed.balance / 100
    assert seed.options.fee_deduct_type == "INTERNAL"
    assert balance(sandbox, seed) == Decimal(5)
