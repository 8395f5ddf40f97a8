"""An emulator of Kraken Embed's withdrawal API (NOTES.md §2), faithful where the docs speak.

Documented, and emulated as documented: ``API-Key``/``API-Nonce``/``API-Sign`` over the path
with its query and the exact body, ``Payward-Version`` (NOTES §2.1); the methods answer with
``fee_token`` (§2.2 example); ``POST /b2b/funds/withdrawals`` with ``asset, key, amount,
idempotency_token, fee_token, preview`` and its ``ref_id, amount, fee, total, fee_token`` answer
(kraken-embed-withdraw-funds.txt); a fee token good for 10 minutes and a reused token returning
the original result (same page); ``/b2b/funds/transactions`` with ``type``, ``cursor`` and
``page_size`` 1..500 and the statuses ``initial, pending, held, success, failure`` (§2.2).

Where the docs are silent the sandbox makes a choice, stated here so nobody mistakes it for a
documented fact:

* Error bodies are ``{"error": ["..."]}`` with the HTTP statuses of the guide's "Common Errors"
  table; NOTES marks the body shape unverified.
* Amount problems (zero, over-precise, below the minimum, above the maximum) answer
  ``EFunding:Invalid amount`` and a short balance ``EFunding:Insufficient funds``, the strings
  Kraken's spot funding API uses; an unknown or expired ``fee_token`` answers
  ``EFunding:Invalid fee token``; a wrong ``Payward-Version`` ``EGeneral:Invalid arguments``; a
  ``user`` that is not the key's own ``EGeneral:Permission denied``; a 408
  ``EService:Deadline elapsed``.
* The requested amount is debited; the preview's ``amount`` is what is sent after the fee and
  ``total`` what is debited (as spot ``WithdrawInfo``).
* Transaction rows carry exactly the documented fields (``type, date, asset, amount, status,
  ref_id``: NOTES §2.2, funding transactions example); no token of the client's.
* One account per API key: calls with ``user=<its IIBAN>`` and calls without ``user`` act on
  the same balances.
* The address list answers ``{"result": {"addresses": [...]}}`` (its shape is not documented).

Modes (``set_mode``) where the documents are silent, the least convenient reading the default:

``preview_storage``  ``stored`` (default) or ``not_stored``: whether a ``preview: true`` call is
                     kept under its ``idempotency_token``, so that a later call with the same
                     token "returns the original result" - the preview (withdraw-funds page on
                     the token; NOTES §7 says to assume it is stored).
``token_retention``  ``short`` (default: :data:`TOKEN_RETENTION_SECONDS`) or ``kept``: how long
                     a token's original result is remembered; after that a call with the same
                     token is new (NOTES §7: retention is not documented).
``history_amount``   ``net`` (default: requested amount minus fee) or ``gross``: which amount
                     transaction rows show (the example shows only ``"amount": "1.23"``).
``history_order``    ``oldest_first`` (default) or ``newest_first``: the order of transaction
                     rows, which no page states.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import string
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from venues.interface import VenueCredentials, VenueSettings

from ..sandbox.app import (
    SandboxApp,
    SandboxError,
    SandboxRequest,
    SandboxResponse,
    SandboxSeed,
    dec,
    iso,
    now_ts,
)
from ..sandbox.store import StoreTx

API_VERSION = "2025-04-15"
FEE_TOKEN_SECONDS = 600  # "guarantees the quoted fee for 10 minutes"
TOKEN_RETENTION_SECONDS = 120  # mode token_retention=short: an undocumented, short memory

# asset -> precision and its withdrawal methods (network, fee, minimum, maximum).
ASSETS: dict[str, dict[str, Any]] = {
    "BTC": {
        "precision": 8,
        "methods": [
            {
                "method_id": "00e4796b-a142-4589-a7c1-8927933788c9",
                "network": "Bitcoin",
                "fee": "0.0002",
                "minimum": "0.0005",
                "maximum": "1",
            }
        ],
    },
    "ETH": {
        "precision": 10,
        "methods": [
            {
                "method_id": "3a8f1d2e-5b6c-4d7e-8f90-a1b2c3d4e5f6",
                "network": "Ethereum",
                "fee": "0.0015",
                "minimum": "0.005",
                "maximum": "50",
            }
        ],
    },
    "USDT": {
        "precision": 6,
        "methods": [
            {
                "method_id": "7c2e9b41-0d3f-4a58-9e6b-2f1a8c7d5e30",
                "network": "Ethereum",
                "fee": "2.5",
                "minimum": "10",
                "maximum": "100000",
            },
            {
                "method_id": "b5d0e7f3-9a21-4c6e-8b4d-6e3f2a1c0b97",
                "network": "Tron",
                "fee": "1",
                "minimum": "2",
                "maximum": "100000",
            },
        ],
    },
    "XRP": {
        "precision": 6,
        "methods": [
            {
                "method_id": "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
                "network": "Ripple",
                "fee": "0.2",
                "minimum": "1",
                "maximum": "100000",
            }
        ],
    },
}

# Syntax only: enough to refuse an obviously wrong address with "EGeneral:Bad data".
ADDRESS_PATTERNS: dict[str, re.Pattern[str]] = {
    "Bitcoin": re.compile(r"^(bc1[02-9ac-hj-np-z]{11,71}|[13][1-9A-HJ-NP-Za-km-z]{25,34})$"),
    "Ethereum": re.compile(r"^0x[0-9a-fA-F]{40}$"),
    "Tron": re.compile(r"^T[1-9A-HJ-NP-Za-km-z]{33}$"),
    "Ripple": re.compile(r"^r[1-9A-HJ-NP-Za-km-z]{24,34}$"),
}

AMOUNT_PATTERN = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")  # the documented amount pattern

# HTTP status of every error this sandbox answers (guide "Common Errors" table; others chosen).
ERROR_STATUS: dict[str, int] = {
    "EGeneral:Bad data": 400,
    "EGeneral:Invalid arguments": 400,
    "ENexus:Unknown asset": 400,
    "EFunding:Unknown withdraw key": 400,
    "EFunding:Invalid fee token": 400,
    "EFunding:Invalid amount": 400,
    "EFunding:Insufficient funds": 400,
    "EFunding:Duplicate withdraw key": 409,
    "EGeneral:Permission denied": 403,
    "EAPI:Invalid key": 401,
    "EAPI:Invalid signature": 401,
    "EAPI:Invalid nonce": 401,
    "Missing API-Key": 401,
    "EService:Deadline elapsed": 408,
    "EAPI:Rate limit exceeded": 429,
    "EGeneral:Internal error": 500,
    "EService:Unavailable": 503,
}

SEED_DESTINATIONS: tuple[dict[str, str], ...] = (
    {
        "asset": "BTC",
        "network": "Bitcoin",
        "key": "btc-treasury",
        "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        "memo": "",
    },
    {
        "asset": "ETH",
        "network": "Ethereum",
        "key": "eth-treasury",
        "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "memo": "",
    },
    {
        "asset": "USDT",
        "network": "Tron",
        "key": "usdt-trc20-ops",
        "address": "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7",
        "memo": "",
    },
    {
        "asset": "XRP",
        "network": "Ripple",
        "key": "xrp-ops",
        "address": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh",
        "memo": "104729",
    },
)


def _expected_sign(secret: str, target: str, nonce: str, body: bytes) -> str | None:
    # Independent of the client's signer on purpose: the sandbox checks the documented formula.
    try:
        key = base64.b64decode(secret, validate=True)
    except ValueError:
        return None
    message = target.encode() + hashlib.sha256(nonce.encode() + body).digest()
    return base64.b64encode(hmac.new(key, message, hashlib.sha512).digest()).decode()


def _fmt(amount: Decimal, precision: int) -> str:
    return str(amount.quantize(Decimal(1).scaleb(-precision)))


def _method(asset: str, method_id: str) -> dict[str, Any] | None:
    methods = ASSETS.get(asset, {}).get("methods", [])
    return next((m for m in methods if m["method_id"] == method_id), None)


def _ref_id() -> str:
    alphabet = string.ascii_letters + string.digits
    head = "".join(secrets.choice(string.ascii_uppercase) for _ in range(4))
    return (
        head
        + "".join(secrets.choice(alphabet) for _ in range(3))
        + "-"
        + ("".join(secrets.choice(alphabet) for _ in range(22)))
    )


class KrakenEmbedSandbox(SandboxApp):
    kind = "kraken_embed"
    QUOTE_PATH = "/b2b/funds/withdrawals/methods"
    SUBMIT_PATH = "/b2b/funds/withdrawals"
    HISTORY_PATH = "/b2b/funds/transactions"
    STATUS_PATH = "/b2b/funds/transactions"
    MODES: ClassVar[dict[str, tuple[str, ...]]] = {
        "preview_storage": ("stored", "not_stored"),
        "token_retention": ("short", "kept"),
        "history_amount": ("net", "gross"),
        "history_order": ("oldest_first", "newest_first"),
    }
    DOCUMENTED_ERRORS: ClassVar[dict[str, str]] = {
        "EGeneral:Bad data": "VenueRejected",
        "ENexus:Unknown asset": "VenueRejected",
        "EFunding:Unknown withdraw key": "VenueRejected",
        "EFunding:Invalid fee token": "VenueQuoteRefused",
        "EFunding:Invalid amount": "VenueRejected",
        "EFunding:Insufficient funds": "VenueRejected",
        "EGeneral:Permission denied": "VenueAccessRefused",
        "EAPI:Invalid key": "VenueAccessRefused",
        "EAPI:Invalid signature": "VenueAccessRefused",
        "EAPI:Invalid nonce": "VenueUnavailable",
        "Missing API-Key": "VenueAccessRefused",
        "EAPI:Rate limit exceeded": "VenueUnavailable",
        "EService:Deadline elapsed": "VenueOutcomeUnknown",
        "EGeneral:Internal error": "VenueOutcomeUnknown",
        "EService:Unavailable": "VenueOutcomeUnknown",
    }

    def route_table(self) -> list[tuple[str, str, str]]:
        return [
            ("GET", r"/b2b/funds/withdrawals/methods/(?P<asset>[^/]+)", "get_methods"),
            ("GET", r"/b2b/funds/withdrawals/addresses", "list_addresses"),
            ("POST", r"/b2b/funds/withdrawals/addresses", "save_address"),
            ("DELETE", r"/b2b/funds/withdrawals/addresses/(?P<key>[^/]+)", "delete_address"),
            ("POST", r"/b2b/funds/withdrawals", "withdraw"),
            ("GET", r"/b2b/funds/transactions", "list_transactions"),
        ]

    # --- envelope -------------------------------------------------------------------------

    def render_error(self, error: str, status: int | None = None) -> SandboxResponse:
        code = status or ERROR_STATUS.get(error, 400)
        headers = {"Retry-After": "1"} if code == 429 else None
        return SandboxResponse.json({"error": [error]}, status=code, headers=headers)

    def render_rate_limit(self, retry_after: float) -> SandboxResponse:
        return SandboxResponse.json(
            {"error": ["EAPI:Rate limit exceeded"]},
            status=429,
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        )

    def render_http_error(self, status: int) -> SandboxResponse:
        if status == 408:
            return self.render_error("EService:Deadline elapsed", status)
        if status in (502, 503, 504):
            return self.render_error("EService:Unavailable", status)
        return self.render_error("EGeneral:Internal error", status)

    def settle(self, withdrawal: dict[str, Any], *, failed: bool) -> None:
        withdrawal["status"] = "failure" if failed else "success"

    # --- seed -----------------------------------------------------------------------------

    def seed(self, *, api_key: str = "", balance: Decimal = Decimal("10")) -> SandboxSeed:
        api_key = api_key or "embed-" + secrets.token_hex(16)
        with self.store.tx() as tx:
            existing = self.account(tx, api_key) or {}
        secret = existing.get("secret") or base64.b64encode(secrets.token_bytes(64)).decode()
        iiban = existing.get("iiban") or "AA" + "".join(
            secrets.choice(string.digits + string.ascii_uppercase) for _ in range(14)
        )
        addresses = {}
        destinations = []
        for dest in SEED_DESTINATIONS:
            asset_info = ASSETS[dest["asset"]]
            method = next(m for m in asset_info["methods"] if m["network"] == dest["network"])
            addresses[dest["key"]] = {
                "key": dest["key"],
                "asset": dest["asset"],
                "method_id": method["method_id"],
                "network": dest["network"],
                "address": dest["address"],
                "memo": dest["memo"],
                "verified": True,
            }
            destinations.append(
                {
                    "asset": dest["asset"],
                    "network": dest["network"],
                    "address": dest["address"],
                    "memo": dest["memo"],
                    "venue_key": dest["key"],
                    "precision": asset_info["precision"],
                    "minimum": Decimal(method["minimum"]),
                }
            )
        self.account_upsert(
            api_key,
            secret=secret,
            iiban=iiban,
            last_nonce=existing.get("last_nonce", 0),
            balances={asset: str(balance) for asset in ASSETS},
            addresses=addresses,
        )
        primary = destinations[0]
        return SandboxSeed(
            credentials=VenueCredentials(api_key=api_key, api_secret=secret, account=iiban),
            options=VenueSettings(),
            asset=primary["asset"],
            network=primary["network"],
            address=primary["address"],
            memo=primary["memo"],
            venue_key=primary["venue_key"],
            precision=primary["precision"],
            minimum=primary["minimum"],
            balance=balance,
            destinations=tuple(destinations),
        )

    # --- auth -----------------------------------------------------------------------------

    def _authenticate(self, request: SandboxRequest) -> str:
        """Check headers, signature, nonce and ``user``; return the account's API key.

        Runs in its own transaction so a nonce stays spent even when the call then fails.
        """
        api_key = request.header("API-Key")
        if not api_key:
            raise SandboxError("Missing API-Key")
        version = request.header("Payward-Version")
        if version and version != API_VERSION:
            raise SandboxError("EGeneral:Invalid arguments")
        with self.store.tx() as tx:
            account = self.account(tx, api_key)
            if account is None or "secret" not in account:
                raise SandboxError("EAPI:Invalid key")
            nonce = request.header("API-Nonce")
            if not nonce.isdigit() or len(nonce) > 20 or int(nonce) >= 2**64:
                raise SandboxError("EAPI:Invalid nonce")
            body = request.body if request.method in ("POST", "PUT", "PATCH") else b""
            expected = _expected_sign(account["secret"], request.target, nonce, body)
            given = request.header("API-Sign")
            if expected is None or not hmac.compare_digest(given, expected):
                raise SandboxError("EAPI:Invalid signature")
            if int(nonce) <= int(account.get("last_nonce", 0)):
                raise SandboxError("EAPI:Invalid nonce")
            account["last_nonce"] = int(nonce)
            self.save_account(tx, account)
        user = request.query.get("user")
        if user is not None:
            if not 14 <= len(user) <= 42:
                raise SandboxError("EGeneral:Bad data")
            if user != account["iiban"]:
                raise SandboxError("EGeneral:Permission denied")
        return api_key

    def _json_body(self, request: SandboxRequest) -> dict[str, Any]:
        if not request.header("Content-Type").startswith("application/json"):
            raise SandboxError("EGeneral:Bad data")
        try:
            body = request.json()
        except ValueError as exc:
            raise SandboxError("EGeneral:Bad data") from exc
        if not isinstance(body, dict):
            raise SandboxError("EGeneral:Bad data")
        return body

    # --- handlers -------------------------------------------------------------------------

    def get_methods(self, request: SandboxRequest, asset: str) -> SandboxResponse:
        api_key = self._authenticate(request)
        info = ASSETS.get(asset)
        if info is None:
            raise SandboxError("ENexus:Unknown asset")
        precision = info["precision"]
        methods = []
        with self.store.tx() as tx:
            for method in info["methods"]:
                token = self._mint_fee_token(tx, api_key, asset, method)
                methods.append(
                    {
                        "method_id": method["method_id"],
                        "network": method["network"],
                        "fee": {"asset": asset, "amount": _fmt(dec(method["fee"]), precision)},
                        "fee_token": token,
                        "minimum": {
                            "asset": asset,
                            "amount": _fmt(dec(method["minimum"]), precision),
                        },
                        "maximum": {
                            "asset": asset,
                            "amount": _fmt(dec(method["maximum"]), precision),
                        },
                    }
                )
        return SandboxResponse.json({"result": {"methods": methods}})

    def list_addresses(self, request: SandboxRequest) -> SandboxResponse:
        api_key = self._authenticate(request)
        asset = request.query.get("asset", "")
        with self.store.tx() as tx:
            account = self.account(tx, api_key) or {}
        addresses = [
            a for a in account.get("addresses", {}).values() if not asset or a["asset"] == asset
        ]
        return SandboxResponse.json({"result": {"addresses": addresses}})

    def save_address(self, request: SandboxRequest) -> SandboxResponse:
        api_key = self._authenticate(request)
        body = self._json_body(request)
        asset = body.get("asset")
        if not isinstance(asset, str) or asset not in ASSETS:
            raise SandboxError("ENexus:Unknown asset")
        method = _method(asset, str(body.get("method_id", "")))
        address = body.get("address")
        memo = str(body.get("memo") or body.get("tag") or "")
        if method is None or not isinstance(address, str):
            raise SandboxError("EGeneral:Bad data")
        if not ADDRESS_PATTERNS[method["network"]].match(address):
            raise SandboxError("EGeneral:Bad data")
        if method["network"] == "Ripple" and memo and not memo.isdigit():
            raise SandboxError("EGeneral:Bad data")  # an XRP destination tag is numeric
        key = body.get("key") or f"{asset.lower()}-{secrets.token_hex(4)}"
        if not isinstance(key, str):
            raise SandboxError("EGeneral:Bad data")
        with self.store.tx() as tx:
            account = self.account(tx, api_key) or {}
            addresses = account.setdefault("addresses", {})
            if key in addresses:
                raise SandboxError("EFunding:Duplicate withdraw key")
            addresses[key] = {
                "key": key,
                "asset": asset,
                "method_id": method["method_id"],
                "network": method["network"],
                "address": address,
                "memo": memo,
                "verified": True,
            }
            self.save_account(tx, account)
        return SandboxResponse.json({"result": {"key": key}})

    def delete_address(self, request: SandboxRequest, key: str) -> SandboxResponse:
        api_key = self._authenticate(request)
        with self.store.tx() as tx:
            account = self.account(tx, api_key) or {}
            if key not in account.get("addresses", {}):
                raise SandboxError("EFunding:Unknown withdraw key")
            del account["addresses"][key]
            self.save_account(tx, account)
        return SandboxResponse.json({"result": True})

    def withdraw(self, request: SandboxRequest) -> SandboxResponse:
        api_key = self._authenticate(request)
        body = self._json_body(request)
        token = body.get("idempotency_token")
        preview = body.get("preview", False)
        if not isinstance(token, str) or not isinstance(preview, bool):
            raise SandboxError("EGeneral:Bad data")
        try:
            token = str(uuid.UUID(token))
        except ValueError as exc:
            raise SandboxError("EGeneral:Bad data") from exc
        with self.store.tx() as tx:
            original = tx.get(self._c("idempotency"), f"{api_key}:{token}")
            retained = original is not None and (
                self.mode_in(tx, "token_retention") == "kept"
                or now_ts() - original.get("at", 0) <= TOKEN_RETENTION_SECONDS
            )
            if retained:
                # "Reusing the same key on retry returns the original result."
                return SandboxResponse.json({"result": original["result"]})
            account = self.account(tx, api_key) or {}
            checked = self._check_withdrawal(tx, api_key, account, body)
            asset, amount, fee, precision, fee_token = checked
            result = {
                "ref_id": None,
                "amount": _fmt(amount - fee, precision),
                "fee": _fmt(fee, precision),
                "total": _fmt(amount, precision),
                "fee_token": fee_token,
            }
            if preview:
                if self.mode_in(tx, "preview_storage") == "stored":
                    tx.put(
                        self._c("idempotency"),
                        f"{api_key}:{token}",
                        {"result": result, "at": now_ts()},
                    )
                return SandboxResponse.json({"result": result})
            balances = account["balances"]
            balances[asset] = str(dec(balances.get(asset, "0")) - amount)
            self.save_account(tx, account)
            result["ref_id"] = _ref_id()
            self.new_withdrawal(
                tx,
                api_key,
                {
                    "id": result["ref_id"],
                    "reference": result["ref_id"],
                    "asset": asset,
                    "amount_sent": body["amount"],
                    "debited": str(amount),
                    "fee": result["fee"],
                    "key": body["key"],
                    "status": "initial",
                },
            )
            tx.put(self._c("idempotency"), f"{api_key}:{token}", {"result": result, "at": now_ts()})
        return SandboxResponse.json({"result": result})

    def _check_withdrawal(
        self, tx: StoreTx, api_key: str, account: dict[str, Any], body: dict[str, Any]
    ) -> tuple[str, Decimal, Decimal, int, str]:
        """Validate a preview or submit body; return asset, amount, fee, precision, fee token."""
        asset, key, raw_amount = body.get("asset"), body.get("key"), body.get("amount")
        if not isinstance(asset, str) or not 3 <= len(asset) <= 16:
            raise SandboxError("EGeneral:Bad data")
        if not isinstance(key, str) or not isinstance(raw_amount, str):
            raise SandboxError("EGeneral:Bad data")
        if not 1 <= len(raw_amount) <= 64 or not AMOUNT_PATTERN.match(raw_amount):
            raise SandboxError("EGeneral:Bad data")
        info = ASSETS.get(asset)
        if info is None:
            raise SandboxError("ENexus:Unknown asset")
        saved = account.get("addresses", {}).get(key)
        if saved is None or saved["asset"] != asset:
            raise SandboxError("EFunding:Unknown withdraw key")
        method = _method(asset, saved["method_id"])
        if method is None:
            raise SandboxError("EFunding:Unknown withdraw key")
        fee_token = body.get("fee_token")
        if fee_token is None:
            fee = dec(method["fee"])
            fee_token = self._mint_fee_token(tx, api_key, asset, method)
        else:
            fee = self._redeem_fee_token(tx, api_key, asset, method, fee_token)
        try:
            amount = Decimal(raw_amount)
        except InvalidOperation as exc:
            raise SandboxError("EGeneral:Bad data") from exc
        precision = info["precision"]
        if amount != amount.quantize(Decimal(1).scaleb(-precision)):
            raise SandboxError("EFunding:Invalid amount")
        if amount <= fee or amount < dec(method["minimum"]) or amount > dec(method["maximum"]):
            raise SandboxError("EFunding:Invalid amount")
        if amount > dec(account.get("balances", {}).get(asset, "0")):
            raise SandboxError("EFunding:Insufficient funds")
        return asset, amount, fee, precision, fee_token

    def _mint_fee_token(self, tx: StoreTx, api_key: str, asset: str, method: dict[str, Any]) -> str:
        token = "wft_" + secrets.token_urlsafe(12)
        tx.put(
            self._c("fee-tokens"),
            token,
            {
                "token": token,
                "account": api_key,
                "asset": asset,
                "method_id": method["method_id"],
                "fee": method["fee"],
                "expires_at": now_ts() + FEE_TOKEN_SECONDS,
            },
        )
        return token

    def _redeem_fee_token(
        self, tx: StoreTx, api_key: str, asset: str, method: dict[str, Any], token: Any
    ) -> Decimal:
        doc = tx.get(self._c("fee-tokens"), token) if isinstance(token, str) else None
        if (
            doc is None
            or doc["account"] != api_key
            or doc["asset"] != asset
            or doc["method_id"] != method["method_id"]
            or now_ts() >= doc["expires_at"]
        ):
            raise SandboxError("EFunding:Invalid fee token")
        return dec(doc["fee"])

    def expire_fee_tokens(self) -> None:
        """Age every fee token past its 10 minutes (tests of the refusal)."""
        with self.store.tx() as tx:
            for doc in tx.all(self._c("fee-tokens")):
                tx.put(self._c("fee-tokens"), doc["token"], doc | {"expires_at": now_ts() - 1})

    def list_transactions(self, request: SandboxRequest) -> SandboxResponse:
        api_key = self._authenticate(request)
        query = request.query
        if query.get("type") not in ("withdrawal", "deposit"):
            raise SandboxError("EGeneral:Bad data")
        try:
            page_size = int(query.get("page_size", "25"))
            offset = int(query.get("cursor") or "0")
        except ValueError as exc:
            raise SandboxError("EGeneral:Bad data") from exc
        if not 1 <= page_size <= 500 or offset < 0:
            raise SandboxError("EGeneral:Bad data")
        rows: list[dict[str, Any]] = []
        if query["type"] == "withdrawal":
            with self.store.tx() as tx:
                docs = self.withdrawals(tx, api_key)
                net = self.mode_in(tx, "history_amount") == "net"
                if self.mode_in(tx, "history_order") == "newest_first":
                    docs.reverse()
            rows = [
                {
                    "type": "withdrawal",
                    "date": iso(doc["created_at"]),
                    "asset": doc["asset"],
                    "amount": _fmt(
                        dec(doc["debited"]) - dec(doc["fee"]), ASSETS[doc["asset"]]["precision"]
                    )
                    if net
                    else doc["amount_sent"],
                    "status": doc["status"],
                    "ref_id": doc["reference"],
                }
                for doc in docs
            ]
        page = rows[offset : offset + page_size]
        more = offset + page_size < len(rows)
        next_cursor = str(offset + page_size) if more else None
        return SandboxResponse.json({"result": {"transactions": page, "next_cursor": next_cursor}})
