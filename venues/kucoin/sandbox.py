"""KuCoin sandbox: the withdrawal endpoints of NOTES.md §3, with KuCoin's gateway auth.

Documented, and emulated as documented: the KC-API-* headers, the signature over
``timestamp + METHOD + path?raw-query + body`` and the signed passphrase of key version 3, 5 s
of timestamp skew (NOTES §3.1); quotas, v3 withdraw (no client id: ``remark`` only), cancel of
PROCESSING withdrawals only, history and by-id reads with their fields and statuses (§3.3); the
``{"code", "msg"}`` envelope and the gateway and business codes with their texts (§3.4).

Assumptions where the docs are silent (documented here, not quoted from KuCoin):
- HTTP status of errors: 401 for the auth codes 400001-400005/400008/400009, 403 for 400006,
  400007 and 411100, 400 for 400100, the code's own status for 404000/415000/429000/500000, and
  HTTP 200 for the business codes 200004/260210/260325 (so a client must read ``code``, never
  just the HTTP status).
- Messages for below-minimum and over-precise amounts, and for an unknown withdrawal id, are ours.
- A cancelled withdrawal reads ``FAILURE`` with ``failureReason`` ``CANCELED`` (KuCoin documents
  no cancelled status); it becomes ``WALLET_PROCESSING`` (no longer cancellable) halfway to its
  settlement.

Modes (``set_mode``), the least convenient reading the default:

``history_ids``    ``absent`` (default) or ``present``: whether ``GET /api/v1/withdrawals``
                   items carry ``id``. The spec's field list has it (NOTES §3.3); KuCoin's own
                   response example shows items without one.
``history_order``  ``oldest_first`` (default) or ``newest_first``: no page states the order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import unquote

from venues.interface import VenueCredentials, VenueSettings
from venues.sandbox.app import (
    SandboxApp,
    SandboxError,
    SandboxRequest,
    SandboxResponse,
    SandboxSeed,
    dec,
    now_ts,
)
from venues.sandbox.store import StoreTx

TIMESTAMP_TOLERANCE_MS = 5000
AUTH_HEADERS = ("kc-api-key", "kc-api-sign", "kc-api-timestamp", "kc-api-passphrase")

MSG = {
    "400001": "Any of KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE is missing",
    "400002": "Invalid KC-API-TIMESTAMP",
    "400003": "KC-API-KEY does not exist",
    "400004": "Invalid KC-API-PASSPHRASE",
    "400005": "Invalid KC-API-SIGN",
    "400007": "Access denied, requires more permission",
    "400008": "V1 & V2 API keys are no longer supported by this API. Please create a V3 API key.",
    "400009": "Invalid KC-API-KEY-VERSION",
    "400100": "Parameter Error",
    "404000": "Url Not Found",
    "411100": "User are frozen",
    "415000": "Unsupported Media Type",
    "429000": "Too Many Requests",
    "500000": "Internal Server Error",
    "200004": "Balance insufficient",
    "260210": "withdraw.disabled",
    "260325": "Already set withdraw whitelist, this address is not favorite address",
}
HTTP_STATUS = {
    **dict.fromkeys(("400001", "400002", "400003", "400004", "400005", "400008", "400009"), 401),
    **dict.fromkeys(("400006", "400007", "411100"), 403),
    "400100": 400,
    "404000": 404,
    "415000": 415,
    "429000": 429,
    "500000": 500,
    **dict.fromkeys(("200004", "260210", "260325"), 200),
}
NOT_CANCELLABLE = "Only withdrawal requests with PROCESSING status can be canceled."

# currency:chainId -> withdrawal parameters, as GET /api/v1/withdrawals/quotas reports them.
CHAINS: dict[str, dict[str, Any]] = {
    "BTC:bech32": {
        "chainName": "BTC-Segwit",
        "precision": 8,
        "withdrawMinSize": "0.001",
        "withdrawMinFee": "0.0005",
        "address": r"bc1[02-9ac-hj-np-z]{25,62}",
        "memo": False,
    },
    "ETH:eth": {
        "chainName": "ERC20",
        "precision": 8,
        "withdrawMinSize": "0.01",
        "withdrawMinFee": "0.002",
        "address": r"0x[0-9a-fA-F]{40}",
        "memo": False,
    },
    "USDT:trx": {
        "chainName": "TRC20",
        "precision": 6,
        "withdrawMinSize": "10",
        "withdrawMinFee": "1",
        "address": r"T[1-9A-HJ-NP-Za-km-z]{33}",
        "memo": False,
    },
    "USDT:eth": {
        "chainName": "ERC20",
        "precision": 6,
        "withdrawMinSize": "10",
        "withdrawMinFee": "5",
        "address": r"0x[0-9a-fA-F]{40}",
        "memo": False,
    },
    "XRP:xrp": {
        "chainName": "XRP",
        "precision": 6,
        "withdrawMinSize": "20",
        "withdrawMinFee": "0.5",
        "address": r"r[1-9A-HJ-NP-Za-km-z]{24,34}",
        "memo": True,
    },
}
DAILY_LIMITS = {"BTC": "100", "ETH": "2000", "USDT": "2000000", "XRP": "2000000"}

# The seed's destinations, the primary first (its minimum * 2 is far below the BTC balance).
SEED_DESTINATIONS = (
    ("BTC", "bech32", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", ""),
    ("ETH", "eth", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", ""),
    ("USDT", "trx", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", ""),
    ("USDT", "eth", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", ""),
    ("XRP", "xrp", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "104729"),
)


def _hmac_b64(secret: str, message: bytes) -> str:
    # Written apart from the client's signer on purpose: a shared bug must not verify itself.
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _ms(ts: float) -> int:
    return int(ts * 1000)


def _fail(code: str, msg: str = "") -> SandboxError:
    return SandboxError(f"{code}:{msg or MSG[code]}")


class KucoinSandbox(SandboxApp):
    kind = "kucoin"
    QUOTE_PATH = "/api/v1/withdrawals/quotas"
    SUBMIT_PATH = "/api/v3/withdrawals"
    HISTORY_PATH = "/api/v1/withdrawals"
    STATUS_PATH = "/api/v1/withdrawals/"
    MODES: ClassVar[dict[str, tuple[str, ...]]] = {
        "history_ids": ("absent", "present"),
        "history_order": ("oldest_first", "newest_first"),
    }
    # "code:msg" -> the outcome the client must raise when the submit call answers it.
    DOCUMENTED_ERRORS: ClassVar[dict[str, str]] = {
        "400001:" + MSG["400001"]: "VenueAccessRefused",
        "400002:" + MSG["400002"]: "VenueUnavailable",
        "400003:" + MSG["400003"]: "VenueAccessRefused",
        "400004:" + MSG["400004"]: "VenueAccessRefused",
        "400005:" + MSG["400005"]: "VenueAccessRefused",
        "400006:Invalid request IP, the current client IP is: 203.0.113.7": "VenueAccessRefused",
        "400007:" + MSG["400007"]: "VenueAccessRefused",
        "400008:" + MSG["400008"]: "VenueAccessRefused",
        "400009:" + MSG["400009"]: "VenueAccessRefused",
        "400100:Parameter Error": "VenueRejected",
        "400100:account.available.amount": "VenueRejected",
        "400100:request parameter illegal": "VenueRejected",
        "400100:Incorrect withdrawal address": "VenueRejected",
        "404000:" + MSG["404000"]: "VenueRejected",
        "411100:" + MSG["411100"]: "VenueAccessRefused",
        "415000:" + MSG["415000"]: "VenueRejected",
        "200004:" + MSG["200004"]: "VenueRejected",
        "260210:" + MSG["260210"]: "VenueRejected",
        "260325:" + MSG["260325"]: "VenueRejected",
        "429000:" + MSG["429000"]: "VenueUnavailable",
        "500000:" + MSG["500000"]: "VenueOutcomeUnknown",
    }

    def route_table(self) -> list[tuple[str, str, str]]:
        # The quotas route comes before the {withdrawalId} one, which would also match it.
        return [
            ("GET", r"/api/v1/withdrawals/quotas", "get_quotas"),
            ("POST", r"/api/v3/withdrawals", "post_withdrawal"),
            ("GET", r"/api/v1/withdrawals", "get_history"),
            ("GET", r"/api/v1/withdrawals/(?P<wid>[^/]+)", "get_withdrawal"),
            ("DELETE", r"/api/v1/withdrawals/(?P<wid>[^/]+)", "delete_withdrawal"),
            ("GET", r"/api/v1/user/api-key", "get_api_key"),
        ]

    # --- envelope -------------------------------------------------------------------------

    def render_error(self, error: str, status: int | None = None) -> SandboxResponse:
        code, sep, msg = error.partition(":")
        if not (sep and code.isdigit()):
            # A bare text from the base class ("Internal Server Error" for injected 5xx).
            code = next((c for c, m in MSG.items() if m == error), "500000")
            msg = error
        http_status = status or HTTP_STATUS.get(code, 400)
        return SandboxResponse.json({"code": code, "msg": msg}, status=http_status)

    def render_rate_limit(self, retry_after: float) -> SandboxResponse:
        return SandboxResponse.json(
            {"code": "429000", "msg": MSG["429000"]},
            status=429,
            headers={
                "gw-ratelimit-limit": "2000",
                "gw-ratelimit-remaining": "0",
                "gw-ratelimit-reset": str(int(retry_after * 1000)),
            },
        )

    def render_not_found(self, request: SandboxRequest) -> SandboxResponse:
        return self.render_error("404000:" + MSG["404000"])

    @staticmethod
    def ok(data: Any) -> SandboxResponse:
        return SandboxResponse.json({"code": "200000", "data": data})

    # --- auth -----------------------------------------------------------------------------

    def authenticate(self, tx: StoreTx, request: SandboxRequest) -> dict[str, Any]:
        """The account behind a correctly signed request, or the gateway's own error."""
        if any(not request.header(name) for name in AUTH_HEADERS):
            raise _fail("400001")
        account = self.account(tx, request.header("kc-api-key"))
        if account is None or "secret" not in account:
            raise _fail("400003")
        stamp = request.header("kc-api-timestamp")
        if not stamp.isdigit() or abs(_ms(now_ts()) - int(stamp)) > TIMESTAMP_TOLERANCE_MS:
            raise _fail("400002")
        # KuCoin treats a request without KC-API-KEY-VERSION as a v1 key.
        version = request.header("kc-api-key-version") or "1"
        if version != account.get("key_version", "3"):
            raise _fail("400009")
        if version == "1":
            raise _fail("400008")
        secret = account["secret"]
        expected = _hmac_b64(secret, account["passphrase"].encode())
        if not hmac.compare_digest(request.header("kc-api-passphrase"), expected):
            raise _fail("400004")
        # The signature covers the URL as it reads before URL-encoding.
        prehash = stamp.encode() + request.method.encode() + unquote(request.target).encode()
        expected = _hmac_b64(secret, prehash + request.body)
        if not hmac.compare_digest(request.header("kc-api-sign"), expected):
            raise _fail("400005")
        if account.get("frozen"):
            raise _fail("411100")
        return account

    # --- handlers -------------------------------------------------------------------------

    def get_api_key(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self.authenticate(tx, request)
        return self.ok(
            {
                "remark": account.get("remark", "countersign"),
                "apiKey": account["key"],
                "apiVersion": int(account.get("key_version", "3")),
                "permission": ",".join(account.get("permissions", ["General", "Withdrawal"])),
                "ipWhitelist": "",
                "createdAt": _ms(account.get("created_at", now_ts())),
                "uid": account["uid"],
                "isMaster": True,
            }
        )

    def _settled(self, tx: StoreTx, account: dict[str, Any]) -> dict[str, Any]:
        """The account after every withdrawal due by now has settled (failures refund)."""
        self.withdrawals(tx, account["key"])
        return self.account(tx, account["key"]) or account

    def _chain(self, account: dict[str, Any], currency: str, chain: str) -> dict[str, Any]:
        config = CHAINS.get(f"{currency}:{chain}")
        if config is None:
            if not any(key.startswith(f"{currency}:") for key in CHAINS):
                raise _fail("400100")
            # KuCoin's misleading answer to a wrong chain id (kucoin-python-sdk#42).
            raise _fail("400100", "Incorrect withdrawal address")
        enabled = f"{currency}:{chain}" not in account.get("disabled_chains", [])
        return {**config, "enabled": enabled}

    def _used_today(self, tx: StoreTx, account: dict[str, Any], currency: str) -> Decimal:
        day_start = now_ts() - now_ts() % 86400
        return sum(
            (
                dec(w["debited"])
                for w in self.withdrawals(tx, account["key"])
                if w["asset"] == currency
                and w["created_at"] >= day_start
                and self._status(w) != "FAILURE"
            ),
            Decimal(0),
        )

    def get_quotas(self, request: SandboxRequest) -> SandboxResponse:
        query = request.query
        currency = query.get("currency", "")
        chain = query.get("chain") or "eth"
        with self.store.tx() as tx:
            account = self._settled(tx, self.authenticate(tx, request))
            if not currency:
                raise _fail("400100")
            config = self._chain(account, currency, chain)
            limit = dec(DAILY_LIMITS.get(currency, "0"))
            used = self._used_today(tx, account, currency)
        available = dec(account["balances"].get(currency, "0"))
        return self.ok(
            {
                "currency": currency,
                f"limit{currency}Amount": str(limit),
                f"used{currency}Amount": str(used),
                "quotaCurrency": "USDT",
                "limitQuotaCurrencyAmount": "999999.00000000",
                "usedQuotaCurrencyAmount": "0",
                "remainAmount": str(max(limit - used, Decimal(0))),
                "availableAmount": str(available),
                "withdrawMinFee": config["withdrawMinFee"],
                "innerWithdrawMinFee": "0",
                "withdrawMinSize": config["withdrawMinSize"],
                "isWithdrawEnabled": config["enabled"],
                "precision": config["precision"],
                "chain": config["chainName"],
                "reason": None if config["enabled"] else "withdraw.disabled",
                "lockedAmount": "0",
            }
        )

    def post_withdrawal(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self.authenticate(tx, request)
            if not request.header("content-type").startswith("application/json"):
                raise _fail("415000")
            try:
                body = request.json()
            except ValueError:
                raise _fail("400100") from None
            if not isinstance(body, dict):
                raise _fail("400100")
            doc = self._withdraw(tx, self._settled(tx, account), body)
        return self.ok({"withdrawalId": doc["reference"]})

    def _withdraw(self, tx: StoreTx, account: dict[str, Any], body: dict[str, Any]):
        currency = body.get("currency")
        address = body.get("toAddress")
        raw_amount = body.get("amount")
        if not (isinstance(currency, str) and currency and isinstance(address, str) and address):
            raise _fail("400100")
        if body.get("withdrawType") != "ADDRESS" or raw_amount is None:
            raise _fail("400100")
        chain = str(body.get("chain") or "eth")
        memo = str(body.get("memo") or "")
        config = self._chain(account, currency, chain)
        if not re.fullmatch(config["address"], address):
            raise _fail("400100", "Incorrect withdrawal address")
        if config["memo"] and not memo:
            raise _fail("400100")
        try:
            amount = dec(raw_amount)
        except InvalidOperation:
            raise _fail("400100") from None
        if not amount.is_finite() or amount <= 0:
            raise _fail("400100")
        precision = config["precision"]
        if amount != amount.quantize(Decimal(1).scaleb(-precision)):
            raise _fail(
                "400100",
                f"The withdrawal amount must be a multiple of the amount precision ({precision})",
            )
        minimum = dec(config["withdrawMinSize"])
        if amount < minimum:
            raise _fail("400100", f"The withdrawal amount is below the minimum ({minimum})")
        if not config["enabled"]:
            raise _fail("260210")
        if account.get("whitelist_enabled") and not any(
            entry == {"currency": currency, "chain": chain, "address": address, "memo": memo}
            for entry in account.get("whitelist", [])
        ):
            raise _fail("260325")
        fee = dec(config["withdrawMinFee"])
        balance = dec(account["balances"].get(currency, "0"))
        deduct = body.get("feeDeductType")
        if deduct not in (None, "", "INTERNAL", "EXTERNAL"):
            raise _fail("400100")
        if amount > balance:
            raise _fail("200004")
        if not deduct:
            deduct = "EXTERNAL" if balance >= amount + fee else "INTERNAL"
        debited = amount + fee if deduct == "EXTERNAL" else amount
        if debited > balance:
            raise _fail("400100", "account.available.amount")
        account["balances"][currency] = str(balance - debited)
        self.save_account(tx, account)
        wid = f"{int(now_ts()):08x}{uuid.uuid4().hex[:16]}"
        review_above = account.get("review_above", {}).get(currency)
        return self.new_withdrawal(
            tx,
            account["key"],
            {
                "id": wid,
                "reference": wid,
                "asset": currency,
                # As received: a client sending a JSON number is caught by the tests.
                "amount_sent": raw_amount,
                "debited": str(debited),
                "fee": str(fee),
                "fee_deduct_type": deduct,
                "chain": chain,
                "chain_name": config["chainName"],
                "address": address,
                "memo": memo,
                "remark": str(body.get("remark") or ""),
                "is_inner": bool(body.get("isInner", False)),
                "status": "REVIEW" if review_above and amount > dec(review_above) else "PROCESSING",
                "failure_reason": "",
                "failure_reason_msg": "",
                "wallet_tx_id": "",
                "updated_at": now_ts(),
            },
        )

    @staticmethod
    def _status(doc: dict[str, Any]) -> str:
        if doc["final"] or doc["status"] != "PROCESSING":
            return doc["status"]
        # Past halfway to settlement the wallet has it: it can no longer be cancelled.
        halfway = doc["created_at"] + (doc["settle_at"] - doc["created_at"]) / 2
        return "WALLET_PROCESSING" if now_ts() >= halfway else "PROCESSING"

    def _item(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": doc["id"],
            "currency": doc["asset"],
            "chain": doc["chain"],
            "status": self._status(doc),
            "address": doc["address"],
            "memo": doc["memo"],
            "isInner": doc["is_inner"],
            "amount": str(doc["amount_sent"]),
            "fee": doc["fee"],
            "walletTxId": doc["wallet_tx_id"] or None,
            "createdAt": _ms(doc["created_at"]),
            "updatedAt": _ms(doc["updated_at"]),
            "remark": doc["remark"],
        }

    def _detail(self, account: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
        status = self._status(doc)
        returned = doc["final"] and status == "FAILURE"
        item = self._item(doc)
        return {
            "id": doc["id"],
            "uid": account["uid"],
            "currency": doc["asset"],
            "chainId": doc["chain"],
            "chainName": doc["chain_name"],
            "currencyName": doc["asset"],
            "status": status,
            "failureReason": doc["failure_reason"] or None,
            "failureReasonMsg": doc["failure_reason_msg"] or None,
            "address": doc["address"],
            "memo": doc["memo"],
            "isInner": doc["is_inner"],
            "amount": item["amount"],
            "fee": doc["fee"],
            "walletTxId": item["walletTxId"],
            "addressRemark": None,
            "remark": doc["remark"],
            "createdAt": item["createdAt"],
            "cancelType": "CANCELABLE" if status == "PROCESSING" else "NON_CANCELABLE",
            "taxes": None,
            "taxDescription": None,
            "returnStatus": "SUCCESS" if returned else "NOT_RETURN",
            "returnAmount": doc["debited"] if returned else None,
            "returnCurrency": doc["asset"] if returned else None,
        }

    def get_history(self, request: SandboxRequest) -> SandboxResponse:
        query = request.query
        try:
            page = max(int(query.get("currentPage") or 1), 1)
            size = min(max(int(query.get("pageSize") or 50), 10), 500)
            start = int(query.get("startAt") or 0)
            end = int(query.get("endAt") or 0)
        except ValueError:
            raise _fail("400100") from None
        with self.store.tx() as tx:
            account = self.authenticate(tx, request)
            if not query.get("currency"):
                raise _fail("400100")
            docs = self.withdrawals(tx, account["key"])
            with_ids = self.mode_in(tx, "history_ids") == "present"
            if self.mode_in(tx, "history_order") == "newest_first":
                docs.reverse()
        items = [
            self._item(d) if with_ids else {k: v for k, v in self._item(d).items() if k != "id"}
            for d in docs
            if d["asset"] == query["currency"]
            and (not query.get("status") or self._status(d) == query["status"])
            and (not start or _ms(d["created_at"]) >= start)
            and (not end or _ms(d["created_at"]) <= end)
        ]
        total_pages = (len(items) + size - 1) // size
        return self.ok(
            {
                "currentPage": page,
                "pageSize": size,
                "totalNum": len(items),
                "totalPage": total_pages,
                "items": items[(page - 1) * size : page * size],
            }
        )

    def get_withdrawal(self, request: SandboxRequest, wid: str) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self.authenticate(tx, request)
            doc = self.withdrawal(tx, account["key"], wid)
            if doc is None:
                raise _fail("400100", "withdrawal not found")
        return self.ok(self._detail(account, doc))

    def delete_withdrawal(self, request: SandboxRequest, wid: str) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self.authenticate(tx, request)
            doc = self.withdrawal(tx, account["key"], wid)
            if doc is None:
                raise _fail("400100", "withdrawal not found")
            if self._status(doc) != "PROCESSING":
                raise _fail("400100", NOT_CANCELLABLE)
            doc.update(
                status="FAILURE",
                failure_reason="CANCELED",
                failure_reason_msg="Withdrawal canceled by the user",
                final=True,
                updated_at=now_ts(),
            )
            self.save_withdrawal(tx, doc)
            self.refund(tx, doc)
        return self.ok(None)

    # --- settlement and seed --------------------------------------------------------------

    def settle(self, withdrawal: dict[str, Any], *, failed: bool) -> None:
        withdrawal["updated_at"] = now_ts()
        if failed:
            withdrawal.update(
                status="FAILURE",
                failure_reason="WALLET_FAILED",
                failure_reason_msg="The withdrawal failed on chain; the amount was returned",
            )
            return
        withdrawal["status"] = "SUCCESS"
        withdrawal["wallet_tx_id"] = hashlib.sha256(str(withdrawal["id"]).encode()).hexdigest()

    def seed(self, *, api_key: str = "", balance: Decimal = Decimal("10")) -> SandboxSeed:
        api_key = api_key or secrets.token_hex(12)
        with self.store.tx() as tx:
            existing = self.account(tx, api_key)
        secret = existing["secret"] if existing else str(uuid.uuid4())
        passphrase = existing["passphrase"] if existing else "cs-" + secrets.token_urlsafe(9)
        # Stablecoins and XRP have double-digit minimums, so they are funded in larger units.
        balances = {"BTC": str(balance), "ETH": str(balance)}
        balances |= {"USDT": str(balance * 1000), "XRP": str(balance * 1000)}
        destinations = tuple(
            {
                "asset": asset,
                "network": chain,
                "address": address,
                "memo": memo,
                "venue_key": "",
                "precision": CHAINS[f"{asset}:{chain}"]["precision"],
                "minimum": dec(CHAINS[f"{asset}:{chain}"]["withdrawMinSize"]),
            }
            for asset, chain, address, memo in SEED_DESTINATIONS
        )
        self.account_upsert(
            api_key,
            secret=secret,
            passphrase=passphrase,
            key_version="3",
            uid=existing["uid"] if existing else str(int(time.time() * 1000) % 10**9),
            created_at=existing["created_at"] if existing else now_ts(),
            balances=balances,
            whitelist_enabled=True,
            whitelist=[
                {"currency": a, "chain": c, "address": addr, "memo": m}
                for a, c, addr, m in SEED_DESTINATIONS
            ],
        )
        primary = destinations[0]
        return SandboxSeed(
            credentials=VenueCredentials(api_key=api_key, api_secret=secret, passphrase=passphrase),
            options=VenueSettings(fee_deduct_type="INTERNAL", key_version="3"),
            asset=primary["asset"],
            network=primary["network"],
            address=primary["address"],
            memo=primary["memo"],
            venue_key="",
            precision=primary["precision"],
            minimum=primary["minimum"],
            balance=balance,
            destinations=destinations,
        )
