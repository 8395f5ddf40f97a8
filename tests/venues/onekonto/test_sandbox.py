"""The 1Konto sandbox on its own terms: JWT login, bearer checks and the documented envelopes."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from venues.onekonto.client import password_hash
from venues.onekonto.sandbox import OneKontoSandbox
from venues.sandbox.registry import sandbox_for
from venues.sandbox.transport import InProcessTransport

LOGIN = "/api/v1/identity/jwt"


@pytest.fixture
def sandbox():
    return sandbox_for("onekonto")


@pytest.fixture
def seed(sandbox):
    return sandbox.seed()


@pytest.fixture
def http(sandbox):
    with httpx.Client(
        base_url="http://sandbox.invalid", transport=InProcessTransport(sandbox)
    ) as c:
        yield c


def login(http, seed, password: str | None = None) -> httpx.Response:
    body = {
        "user": seed.credentials.api_key,
        "password": password or password_hash(seed.credentials.api_secret),
    }
    return http.post(LOGIN, content=json.dumps(body), headers={"Content-Type": "application/json"})


def withdraw_path(seed, account: str | None = None) -> str:
    return f"/api/v1/accounting/account/{account or seed.credentials.account}/request/withdraw"


def test_login_issues_a_jwt_with_a_24_hour_expiry(http, seed):
    answer = login(http, seed)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["httpStatusCode"] == 200
    assert body["token"].count(".") == 2
    assert set(body) == {"token", "status", "httpStatusCode"}  # only the token is documented


@pytest.mark.parametrize(
    "password",
    ["wrong", password_hash("wrong")],
    ids=["plaintext-or-garbage", "hash-of-wrong-password"],
)
def test_login_refuses_a_wrong_password(http, seed, password):
    answer = login(http, seed, password=password)
    assert answer.status_code == 401
    assert answer.json() == {
        "errors": ["Unauthorized: invalid user or password"],
        "status": "unauthorized",
        "httpStatusCode": 401,
    }


def test_login_refuses_the_plaintext_password(http, seed):
    assert login(http, seed, password=seed.credentials.api_secret).status_code == 401


def test_missing_bearer_token_is_refused(http, seed):
    answer = http.get(withdraw_path(seed))
    assert answer.status_code == 401
    assert answer.json()["errors"] == ["Unauthorized: missing bearer token"]


def test_tampered_token_is_refused(http, seed):
    token = login(http, seed).json()["token"]
    header, payload, _ = token.split(".")
    forged = f"{header}.{payload}.{'A' * 43}"
    answer = http.get(withdraw_path(seed), headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401
    assert answer.json()["errors"] == ["Unauthorized: invalid token"]


def test_expired_token_is_refused(sandbox, http, seed):
    sandbox.account_upsert(seed.credentials.api_key, token_seconds=-1)
    token = login(http, seed).json()["token"]
    answer = http.get(withdraw_path(seed), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.json()["errors"] == ["Unauthorized: token expired"]


def test_other_account_id_answers_in_the_404_envelope(http, seed):
    token = login(http, seed).json()["token"]
    answer = http.get(withdraw_path(seed, "1KOTHER"), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404
    assert answer.json() == {
        "status": 404,
        "error": "The account with the provided ID was not found",
    }


def test_the_documented_validation_example_is_reproduced(http, seed):
    token = login(http, seed).json()["token"]
    answer = http.post(
        withdraw_path(seed) + "/blockchain",
        content=json.dumps({"amount": "0", "network": "bitcoin", "address": seed.address}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "errors": ["ValidationFailed: Amount: must be positive. Asset: required"],
        "status": "badRequest",
        "httpStatusCode": 400,
    }


def test_the_documented_success_answer_and_query_with_instructions(sandbox, http, seed):
    token = login(http, seed).json()["token"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = {
        "amount": "0.5 BTC",
        "network": "bitcoin",
        "address": seed.address,
        "instructions": ["countersign:abc"],
    }
    answer = http.post(withdraw_path(seed) + "/blockchain", content=json.dumps(body), headers=auth)
    created = answer.json()
    assert set(created) == {"withdrawRequestId", "requestStatus", "status", "httpStatusCode"}
    assert created["requestStatus"] == "pending" and created["status"] == "ok"
    assert len(created["withdrawRequestId"]) == 22  # like "oiJ8s7oh8EqFwwnkZViCGg"

    sandbox.set_mode("list_key", "requests")
    sandbox.set_mode("instructions_echo", "echoed")
    sandbox.set_mode("amount_format", "as_sent")
    sandbox.set_mode("status_key", "status")
    listed = http.get(withdraw_path(seed), params={"max": 1}, headers=auth).json()
    (item,) = listed["requests"]
    assert item["withdrawRequestId"] == created["withdrawRequestId"]
    assert item["amount"] == "0.5 BTC"
    assert item["instructions"] == ["countersign:abc"]
    assert item["status"] == "completed"  # settle_seconds is 0 under test
    with sandbox.store.tx() as tx:
        assert sandbox.account(tx, seed.credentials.api_key)["balances"]["BTC"] == "9.5"


def test_query_defaults_are_the_least_convenient_readings(sandbox, http, seed):
    token = login(http, seed).json()["token"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ids = []
    for amount in ("0.5 BTC", "0.25 BTC"):
        body = {"amount": amount, "network": "bitcoin", "address": seed.address}
        answer = http.post(
            withdraw_path(seed) + "/blockchain", content=json.dumps(body), headers=auth
        )
        ids.append(answer.json()["withdrawRequestId"])
    listed = json.loads(http.get(withdraw_path(seed), headers=auth).content, parse_float=Decimal)
    assert isinstance(listed, list)  # list_key=bare_list
    assert [item["withdrawRequestId"] for item in listed] == ids  # oldest first
    assert listed[0]["amount"] == "0.50000000 BTC"  # padded
    assert "instructions" not in listed[0] and "status" not in listed[0]
    assert listed[0]["requestStatus"] == "completed"


@pytest.mark.parametrize(
    ("fmt", "written"),
    [
        ("padded", "0.50000000 BTC"),
        ("as_sent", "0.5 BTC"),
        ("number", Decimal("0.50000000")),
        ("object", {"quantity": "0.50000000", "asset": "BTC"}),
    ],
)
def test_amount_format_modes(sandbox, http, seed, fmt, written):
    sandbox.set_mode("amount_format", fmt)
    token = login(http, seed).json()["token"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = {"amount": "0.5 BTC", "network": "bitcoin", "address": seed.address}
    http.post(withdraw_path(seed) + "/blockchain", content=json.dumps(body), headers=auth)
    listed = json.loads(http.get(withdraw_path(seed), headers=auth).content, parse_float=Decimal)
    assert listed[0]["amount"] == written


def test_query_validates_its_status_filter(http, seed):
    token = login(http, seed).json()["token"]
    answer = http.get(
        withdraw_path(seed), params={"status": "done"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == ["ValidationFailed: Status: done is not a valid value"]


def test_rate_limit_answer_carries_retry_after(sandbox, http, seed):
    sandbox.inject("rate_limit", path=LOGIN, retry_after=7)
    answer = login(http, seed)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["status"] == "tooManyRequests"


def test_seed_registers_whitelisted_destinations_primary_first(seed):
    assert (
        seed.destinations[0]["address"]
        == seed.address
        == ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")
    )
    assert {d["network"] for d in seed.destinations} == {"bitcoin", "ethereum", "tron"}
    assert seed.minimum * 2 < seed.balance / 1000


def test_every_documented_error_is_rendered_in_a_venue_envelope(sandbox):
    for error in OneKontoSandbox.DOCUMENTED_ERRORS:
        body = json.loads(sandbox.render_error(error).body)
        assert error in (body.get("errors") or [body.get("error")])
