"""An emulator of Kraken's spot funding API (NOTES.md §1, kraken-spot-funding-via-api.txt).

Documented, and emulated as documented:

* signed ``POST /0/private/<Call>`` (form or JSON body holding the nonce), HTTP 200
  ``{"error": [...], "result": ...}`` and the error strings of NOTES §1.1-1.4;
* a per-key nonce that must always increase (nonce window 0, as NOTES §1.2 recommends for
  withdrawal keys) and the call counter of NOTES §1.3 (starter tier by default);
* saved withdrawal keys (``WithdrawAddresses``, NOTES §1.5), ``WithdrawInfo``'s
  ``method/limit/amount/fee`` (funding page example), ``Withdraw`` answering ``refid``, the
  ``address`` check and ``max_fee`` (NOTES §1.5);
* ``WithdrawStatus`` rows with exactly the funding page's fields (``method, aclass, asset,
  refid, txid, info, amount, fee, time, status`` and ``status-prop`` when set): **no ``key``**
  (NOTES §1.5 and §7), the net ``amount`` (funding page: 100 requested, ``amount`` 96, ``fee``
  4), and ``info`` printing an EVM address in lower case, as Kraken's own examples do
  (``0xc2ed79...``, NOTES §1.5). At most 500 rows of the past 90 days (python-kraken-sdk).

Modes (``set_mode``), where the documents are silent; the default is the least convenient:

``history_order``  ``oldest_first`` (default) or ``newest_first``: the order of
                   ``WithdrawStatus`` rows; no document states it.

Other sandbox choices, marked "assumption" below: per-asset precision, a flat fee per method,
every unusable amount answering ``EFunding:Invalid amount``, an immediate cancel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from ..interface import VenueCredentials, VenueSettings
from ..sandbox.app import (
    SandboxApp,
    SandboxError,
    SandboxRequest,
    SandboxResponse,
    SandboxSeed,
    dec,
    now_ts,
)


@dataclass(frozen=True)
class Method:
    method: str
    network: str
    minimum: Decimal
    fee: Decimal  # assumption: a flat fee per method, taken out of the amount (docs example)


@dataclass(frozen=True)
class Asset:
    code: str  # Kraken's own code, as its answers show it (XXBT)
    aliases: tuple[str, ...]  # what requests may say instead (the docs use asset=btc, doge)
    precision: int  # assumption: no precision field in the docs; finer -> EFunding:Invalid amount
    methods: tuple[Method, ...]


ASSETS: tuple[Asset, ...] = (
    Asset(
        "XXBT", ("XBT", "BTC"), 8, (Method("Bitcoin", "Bitcoin", dec("0.0004"), dec("0.00015")),)
    ),
    Asset("XETH", ("ETH",), 8, (Method("Ether", "Ethereum", dec("0.005"), dec("0.0025")),)),
    Asset(
        "USDT",
        (),
        6,
        (
            Method("Tether USD (TRC20)", "Tron", dec("5"), dec("2.5")),
            Method("Tether USD (ERC20)", "Ethereum", dec("10"), dec("5")),
        ),
    ),
    Asset("XXRP", ("XRP",), 6, (Method("Ripple XRP", "Ripple", dec("2"), dec("0.2")),)),
)
_BY_NAME = {name.upper(): a for a in ASSETS for name in (a.code, *a.aliases)}

# Call counter per API key (NOTES §1.3): tier -> (max counter, decay per second). Every funding
# call adds 1. A key's "rate_tier" may be set to "" to switch the counter off (benchmarks).
RATE_TIERS: dict[str, tuple[float, float]] = {
    "starter": (15, 0.33),
    "intermediate": (20, 0.5),
    "pro": (20, 1.0),
}
HISTORY_SECONDS = 90 * 86400  # WithdrawStatus: "withdraws of the past 90 days but at max 500"
HISTORY_ROWS = 500
_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_REFID_ALPHABET = string.ascii_letters + string.digits

# Seeded destinations: (asset as the client names it, method, address, memo, saved key name).
DESTINATIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("BTC", "Bitcoin", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "", "btc-cold-wallet"),
    ("ETH", "Ether", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "", "eth-treasury"),
    ("ETH", "Ether", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "", "eth-ops"),
    ("USDT", "Tether USD (TRC20)", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", "", "usdt-tron"),
    ("XRP", "Ripple XRP", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "104857", "xrp-ledger"),
)


def sandbox_sign(uri_path: str, nonce: str, body: bytes, secret_b64: str) -> str:
    """Kraken's API-Sign, computed on the venue's side from the bytes received."""
    digest = hashlib.sha256(nonce.encode() + body).digest()
    mac = hmac.new(base64.b64decode(secret_b64), uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def fmt(value: Decimal) -> str:
    """Kraken prints amounts with 8 decimals ("96.00000000")."""
    return f"{value.quantize(Decimal('0.00000001')):f}"


def new_refid() -> str:
    """A refid shaped like the docs' ``FTQcuak-V6Za8qrWnhzTx67yYHz8Tg``."""
    pick = secrets.choice
    return (
        "".join(pick(_REFID_ALPHABET) for _ in range(7))
        + "-"
        + ("".join(pick(_REFID_ALPHABET) for _ in range(22)))
    )


def _printed_address(address: str) -> str:
    """An address as Kraken prints it in ``info``: EVM addresses in lower case (NOTES §1.5)."""
    return address.lower() if address.lower().startswith("0x") else address


class KrakenSandbox(SandboxApp):
    kind: ClassVar[str] = "kraken"
    QUOTE_PATH: ClassVar[str] = "/0/private/WithdrawInfo"
    # A path substring: it also matches WithdrawInfo/Status/...; tests inject right before submit.
    SUBMIT_PATH: ClassVar[str] = "/0/private/Withdraw"
    HISTORY_PATH: ClassVar[str] = "/0/private/WithdrawStatus"
    STATUS_PATH: ClassVar[str] = "/0/private/WithdrawStatus"
    MODES: ClassVar[dict[str, tuple[str, ...]]] = {
        "history_order": ("oldest_first", "newest_first"),
    }
    # Every documented error that can answer Withdraw (NOTES §1.4, the funding page).
    DOCUMENTED_ERRORS: ClassVar[dict[str, str]] = {
        "EAPI:Invalid key": "VenueAccessRefused",
        "EAPI:Invalid signature": "VenueAccessRefused",
        "EAPI:Invalid nonce": "VenueUnavailable",
        "EAPI:Rate limit exceeded": "VenueUnavailable",
        "EService: Throttled: 1700000000": "VenueUnavailable",
        "EService:Unavailable": "VenueUnavailable",
        "EService:Busy": "VenueUnavailable",
        "EGeneral:Temporary lockout": "VenueUnavailable",
        "EGeneral:Permission denied": "VenueAccessRefused",
        "EGeneral:Invalid arguments": "VenueRejected",
        "EGeneral:Invalid arguments:beneficiary_recipient": "VenueRejected",
        "EFunding:Unknown withdraw key": "VenueRejected",
        "EFunding:Invalid amount": "VenueRejected",
        "EFunding:Insufficient funds": "VenueRejected",
        "EFunding:Max fee exceeded": "VenueQuoteRefused",
        "EFunding:Invalid withdrawal address": "VenueRejected",
        "EFunding:Unknown asset": "VenueRejected",
        "EGeneral:Internal error": "VenueOutcomeUnknown",  # NOTES §7
        "EDatabase:Internal error": "VenueOutcomeUnknown",
    }

    def route_table(self) -> list[tuple[str, str, str]]:
        return [
            ("POST", "/0/private/WithdrawMethods", "withdraw_methods"),
            ("POST", "/0/private/WithdrawAddresses", "withdraw_addresses"),
            ("POST", "/0/private/WithdrawInfo", "withdraw_info"),
            ("POST", "/0/private/Withdraw", "withdraw"),
            ("POST", "/0/private/WithdrawStatus", "withdraw_status"),
            ("POST", "/0/private/WithdrawCancel", "withdraw_cancel"),
        ]

    # --- envelope -------------------------------------------------------------------------

    def render_error(self, error: str, status: int | None = None) -> SandboxResponse:
        return SandboxResponse.json({"error": [error]}, status=status or 200)

    def render_rate_limit(self, retry_after: float) -> SandboxResponse:
        # Kraken's answer carries no wait hint: the client derives it from the counter decay.
        return self.render_error("EAPI:Rate limit exceeded")

    def render_http_error(self, status: int) -> SandboxResponse:
        return self.render_error("EService:Unavailable", status)

    def render_not_found(self, request: SandboxRequest) -> SandboxResponse:
        return self.render_error("EGeneral:Unknown method", 404)

    @staticmethod
    def ok(result: Any) -> SandboxResponse:
        return SandboxResponse.json({"error": [], "result": result})

    # --- authentication -------------------------------------------------------------------

    def authenticate(self, request: SandboxRequest) -> tuple[str, dict[str, str]]:
        """Check key, signature, nonce and call counter; return the key and the parameters.

        Runs in its own store transaction so the nonce and the counter stay spent even when the
        call itself then fails, as they do at Kraken.
        """
        api_key = request.header("API-Key")
        signature = request.header("API-Sign")
        params = self._params(request)
        nonce = params.get("nonce", "")
        limited = False
        with self.store.tx() as tx:
            account = self.account(tx, api_key) if api_key else None
            if account is None:
                raise SandboxError("EAPI:Invalid key")
            if not nonce.isdigit():
                raise SandboxError("EAPI:Invalid nonce")
            expected = sandbox_sign(request.path, nonce, request.body, account["secret"])
            if not hmac.compare_digest(signature.encode(), expected.encode()):
                raise SandboxError("EAPI:Invalid signature")
            if int(nonce) <= int(account.get("last_nonce", 0)):
                raise SandboxError("EAPI:Invalid nonce")
            account["last_nonce"] = int(nonce)
            limited = not self._count_call(account)
            self.save_account(tx, account)
        if limited:
            raise SandboxError("EAPI:Rate limit exceeded")
        return api_key, params

    @staticmethod
    def _params(request: SandboxRequest) -> dict[str, str]:
        if request.header("Content-Type").startswith("application/json"):
            try:
                data = request.json()
            except ValueError as exc:
                raise SandboxError("EGeneral:Invalid arguments") from exc
            if not isinstance(data, dict):
                raise SandboxError("EGeneral:Invalid arguments")
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        return request.form()

    @staticmethod
    def _count_call(account: dict[str, Any]) -> bool:
        """Add this call to the key's counter; False when it would exceed the tier's maximum."""
        tier = account.get("rate_tier", "starter")
        if not tier:
            return True
        maximum, decay = RATE_TIERS[tier]
        now = now_ts()
        rate = account.get("rate") or {"counter": 0.0, "at": now}
        counter = max(0.0, float(rate["counter"]) - decay * (now - float(rate["at"])))
        allowed = counter + 1 <= maximum
        account["rate"] = {"counter": counter + 1 if allowed else counter, "at": now}
        return allowed

    # --- lookups --------------------------------------------------------------------------

    @staticmethod
    def _asset(name: str) -> Asset:
        if not name:
            raise SandboxError("EGeneral:Invalid arguments")
        asset = _BY_NAME.get(name.upper())
        if asset is None:
            raise SandboxError("EFunding:Unknown asset")
        return asset

    @staticmethod
    def _saved(account: dict[str, Any], asset: Asset, key: str) -> tuple[dict[str, Any], Method]:
        for saved in account.get("addresses", []):
            if saved["key"] == key and saved["asset"] == asset.code:
                method = next(m for m in asset.methods if m.method == saved["method"])
                return saved, method
        raise SandboxError("EFunding:Unknown withdraw key")

    @staticmethod
    def _amount(raw: str, asset: Asset, method: Method) -> Decimal:
        """Assumption: every unusable amount (malformed, over-precise, below the method's
        minimum, not above its fee) answers EFunding:Invalid amount."""
        if not _AMOUNT.match(raw) or len(raw.partition(".")[2]) > asset.precision:
            raise SandboxError("EFunding:Invalid amount")
        amount = Decimal(raw)
        if amount < method.minimum or amount <= method.fee:
            raise SandboxError("EFunding:Invalid amount")
        return amount

    @staticmethod
    def _required(params: dict[str, str], *names: str) -> list[str]:
        missing = [n for n in names if not params.get(n)]
        if missing:
            raise SandboxError("EGeneral:Invalid arguments:" + missing[0])
        return [params[n] for n in names]

    # --- calls ----------------------------------------------------------------------------

    def withdraw_methods(self, request: SandboxRequest) -> SandboxResponse:
        _, params = self.authenticate(request)
        assets = [self._asset(params["asset"])] if params.get("asset") else list(ASSETS)
        network = params.get("network", "")
        return self.ok(
            [
                {
                    "asset": a.code,
                    "method": m.method,
                    "network": m.network,
                    "minimum": fmt(m.minimum),
                }
                for a in assets
                for m in a.methods
                if not network or m.network == network
            ]
        )

    def withdraw_addresses(self, request: SandboxRequest) -> SandboxResponse:
        key, params = self.authenticate(request)
        asset = self._asset(params["asset"]).code if params.get("asset") else ""
        with self.store.tx() as tx:
            account = self.account(tx, key) or {}
        rows = []
        for saved in account.get("addresses", []):
            if asset and saved["asset"] != asset:
                continue
            if params.get("method") and saved["method"] != params["method"]:
                continue
            if params.get("key") and saved["key"] != params["key"]:
                continue
            row = {k: saved[k] for k in ("address", "asset", "method", "key", "verified")}
            if saved.get("memo"):
                row["memo"] = saved["memo"]
            rows.append(row)
        return self.ok(rows)

    def withdraw_info(self, request: SandboxRequest) -> SandboxResponse:
        key, params = self.authenticate(request)
        asset_name, saved_key, raw_amount = self._required(params, "asset", "key", "amount")
        asset = self._asset(asset_name)
        with self.store.tx() as tx:
            account = self.account(tx, key) or {}
        _, method = self._saved(account, asset, saved_key)
        amount = self._amount(raw_amount, asset, method)
        balance = dec(account["balances"].get(asset.code, "0"))
        return self.ok(
            {
                "method": method.method,
                "limit": fmt(max(balance - method.fee, Decimal(0))),
                "amount": fmt(amount - method.fee),
                "fee": fmt(method.fee),
            }
        )

    def withdraw(self, request: SandboxRequest) -> SandboxResponse:
        key, params = self.authenticate(request)
        asset_name, saved_key, raw_amount = self._required(params, "asset", "key", "amount")
        asset = self._asset(asset_name)
        with self.store.tx() as tx:
            account = self.account(tx, key) or {}
            saved, method = self._saved(account, asset, saved_key)
            # "will return Invalid withdrawal address error if different" (NOTES §1.5)
            if params.get("address") and params["address"] != saved["address"]:
                raise SandboxError("EFunding:Invalid withdrawal address")
            amount = self._amount(raw_amount, asset, method)
            if params.get("max_fee"):
                try:
                    max_fee = Decimal(params["max_fee"])
                except InvalidOperation as exc:
                    raise SandboxError("EGeneral:Invalid arguments:max_fee") from exc
                if method.fee > max_fee:
                    raise SandboxError("EFunding:Max fee exceeded")
            balance = dec(account["balances"].get(asset.code, "0"))
            if amount > balance:
                # Assumption: ccxt maps both "Insufficient funds" (substring) and
                # "EFunding:Invalid amount" to InsufficientFunds (NOTES §1.4); we answer the
                # explicit one so that a short balance is told apart from a bad amount.
                raise SandboxError("EFunding:Insufficient funds")
            account["balances"][asset.code] = str(balance - amount)
            self.save_account(tx, account)
            refid = new_refid()
            self.new_withdrawal(
                tx,
                key,
                {
                    "id": refid,
                    "reference": refid,
                    "asset": asset.code,
                    "amount_sent": raw_amount,
                    "debited": str(amount),
                    "key": saved_key,
                    "method": method.method,
                    "info": saved["address"],
                    "fee": str(method.fee),
                    "status": "Pending",
                    "status_prop": "",
                    "txid": "",
                },
            )
        return self.ok({"refid": refid})

    def withdraw_status(self, request: SandboxRequest) -> SandboxResponse:
        key, params = self.authenticate(request)
        asset = self._asset(params["asset"]).code if params.get("asset") else ""
        now = now_ts()
        try:
            start = float(params.get("start") or now - HISTORY_SECONDS)
            end = float(params.get("end") or now)
            limit = min(int(params.get("limit") or HISTORY_ROWS), HISTORY_ROWS)
        except ValueError as exc:
            raise SandboxError("EGeneral:Invalid arguments") from exc
        with self.store.tx() as tx:
            docs = self.withdrawals(tx, key)
            if self.mode_in(tx, "history_order") == "newest_first":
                docs.reverse()
        rows = [
            self._row(d)
            for d in docs
            if (not asset or d["asset"] == asset)
            and (not params.get("method") or d["method"] == params["method"])
            and start <= d["created_at"] <= end
        ]
        return self.ok(rows[:limit])

    @staticmethod
    def _row(doc: dict[str, Any]) -> dict[str, Any]:
        fee = dec(doc["fee"])
        row = {
            "method": doc["method"],
            "aclass": "currency",
            "asset": doc["asset"],
            "refid": doc["reference"],
            "txid": doc["txid"],
            "info": _printed_address(doc["info"]),
            "amount": fmt(dec(doc["debited"]) - fee),  # net, as in the docs' example
            "fee": fmt(fee),
            "time": int(doc["created_at"]),
            "status": doc["status"],
        }
        if doc["status_prop"]:
            row["status-prop"] = doc["status_prop"]
        return row

    def withdraw_cancel(self, request: SandboxRequest) -> SandboxResponse:
        key, params = self.authenticate(request)
        asset_name, refid = self._required(params, "asset", "refid")
        asset = self._asset(asset_name)
        with self.store.tx() as tx:
            doc = self.withdrawal(tx, key, refid)
            if doc is None or doc["asset"] != asset.code:
                raise SandboxError("EFunding:Unknown reference id")
            if doc["final"]:
                # "will only be successful if the withdraw is not being processed so far"
                raise SandboxError("EFunding:Invalid reference id")
            # Assumption: the cancel is granted at once (no cancel-pending phase).
            doc.update(status="Failure", status_prop="canceled", final=True)
            self.save_withdrawal(tx, doc)
            self.refund(tx, doc)
        return self.ok(True)

    # --- settlement and seeding -----------------------------------------------------------

    def settle(self, withdrawal: dict[str, Any], *, failed: bool) -> None:
        withdrawal["status"] = "Failure" if failed else "Success"
        if not failed:
            withdrawal["txid"] = secrets.token_hex(32)

    def seed(self, *, api_key: str = "", balance: Decimal = Decimal("10")) -> SandboxSeed:
        key = api_key or secrets.token_urlsafe(42)  # Kraken keys are 56 base64 characters
        with self.store.tx() as tx:
            existing = self.account(tx, key) or {}
        secret = existing.get("secret") or base64.b64encode(secrets.token_bytes(64)).decode()
        destinations = []
        addresses = []
        for name, method_name, address, memo, saved_key in DESTINATIONS:
            asset = _BY_NAME[name]
            method = next(m for m in asset.methods if m.method == method_name)
            addresses.append(
                {
                    "key": saved_key,
                    "asset": asset.code,
                    "method": method.method,
                    "address": address,
                    "memo": memo,
                    "verified": True,
                }
            )
            destinations.append(
                {
                    "asset": name,
                    "network": method.network,
                    "address": address,
                    "memo": memo,
                    "venue_key": saved_key,
                    "precision": asset.precision,
                    "minimum": method.minimum,
                }
            )
        self.account_upsert(
            key,
            secret=secret,
            balances={a.code: str(balance) for a in ASSETS},
            addresses=addresses,
        )
        primary = destinations[0]
        return SandboxSeed(
            credentials=VenueCredentials(api_key=key, api_secret=secret),
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
