"""Nord-Pay sandbox: the two-step withdraw request/confirm behind a static X-API-KEY.

Faithful to NOTES.md §5, the GitBook page and the SDK 1.3.1 live fixtures where they speak;
where they are silent the choices are written down here:

* The key travels in ``X-API-KEY`` (GitBook, quickstart): the account's API key; there is no
  secret.
* No ``X-API-KEY`` -> 422 in FastAPI's validation shape; an unknown key -> 401
  ``{"detail": "Invalid API key"}`` (the quickstart says "401 or 422"; the text is ours).
* A withdraw request (identifier) lives :data:`REQUEST_TTL` (10 minutes; the docs' example
  does not say). A confirmed identifier is spent: a second confirm answers
  "Withdraw request not found" (undocumented by the venue: assumption).
* The fee is ``fee_percent`` of the amount and comes out of it ("Amount sent to the wallet =
  amount - service fee"); the amount itself is debited at confirm. The live fixture's
  ``max_amount`` (available / (1 + fee%)) hints the fee may be charged on top: unverified, so
  the sandbox follows the docs' sentence and reports ``max_amount`` = available balance.
* An over-precise or non-positive amount is refused with 422 in FastAPI's shape.
* Withdrawals settle to "processed" (with a tx hash) or, if a failure is injected,
  "cancelled" with an empty hash, the two final values seen live; refunds on failure.
* Quote answers carry numbers as JSON numbers (as the GitBook shows); history, limits and
  balances carry strings (as the SDK's live fixtures show).
* ``use_envelope("success")`` switches every answer to the newer
  ``{"success", "data", "error"}`` envelope the SDK also parses.

Modes (``set_mode``) where the sources disagree or are silent, the least convenient the default:

``path_prefix``     ``/v1`` (default: SDK 1.3.1, the only source of the history call) or
                    ``none`` (the GitBook's unprefixed paths). Only the configured form is
                    answered; the other is a 404 (NOTES §5.1: "check which form the live server
                    accepts"). ``seed()`` hands out the options of the current mode.
``history_amount``  ``net`` (default: amount minus ``service_fee``, what reaches the wallet) or
                    ``gross`` (the amount requested): history rows come from the SDK only, and
                    which amount they show is unknown (NOTES §7).
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
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
    now_ts,
)
from ..sandbox.store import StoreTx

REQUEST_TTL = 600.0
FEE_PERCENT = Decimal("1.7")  # every currency in the live limits fixture

# currency -> (decimals, min_amount, max_amount, USD rate). Minimums from the live limits
# fixture; decimals as its balances are written.
CURRENCIES: dict[str, tuple[int, Decimal, Decimal, Decimal]] = {
    "USDTTRC20": (6, Decimal("25"), Decimal("1000000"), Decimal("1")),
    "USDTBEP20": (18, Decimal("1"), Decimal("1000000"), Decimal("1")),
    "USDTERC20": (6, Decimal("5"), Decimal("1000000"), Decimal("1")),
    "BTC": (8, Decimal("0.001"), Decimal("100"), Decimal("60000")),
    "ETH": (18, Decimal("0.002"), Decimal("1000"), Decimal("3000")),
    "TRX": (6, Decimal("5"), Decimal("10000000"), Decimal("0.12")),
}

INVALID_KEY = "Invalid API key"
STATUS_BY_ERROR = {INVALID_KEY: 401, "Too Many Requests": 429, "Not Found": 404}
ERROR_TYPES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 422: "validation_error"}


def _json_text(value: Any) -> str:
    """JSON with Decimals written as numbers, exactly, without passing through a float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)


def _validation(loc: list[str], msg: str, kind: str) -> list[dict[str, Any]]:
    return [{"loc": loc, "msg": msg, "type": kind}]


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


class NordPaySandbox(SandboxApp):
    kind: ClassVar[str] = "nordpay"
    QUOTE_PATH: ClassVar[str] = "/balance/withdraw/request"
    SUBMIT_PATH: ClassVar[str] = "/balance/withdraw/confirm"
    HISTORY_PATH: ClassVar[str] = "/balance/withdraws"
    STATUS_PATH: ClassVar[str] = "/balance/withdraws"
    MODES: ClassVar[dict[str, tuple[str, ...]]] = {
        "path_prefix": ("/v1", "none"),
        "history_amount": ("net", "gross"),
    }
    # Every documented error string (GitBook "Withdraw Funds", both calls), and the one we
    # answer for a bad key. The first two are documented on the request call; the client maps
    # them the same wherever they come from.
    DOCUMENTED_ERRORS: ClassVar[dict[str, str]] = {
        "USDTTRC20 is not available for withdraw at this moment": "VenueUnavailable",
        "Amount is less than minimum withdraw amount for USDTTRC20 (25)": "VenueRejected",
        "Withdraw request not found": "VenueRejected",
        "Withdraw request expired": "VenueQuoteRefused",
        "Not enough balance": "VenueRejected",
        INVALID_KEY: "VenueAccessRefused",
    }

    def route_table(self) -> list[tuple[str, str, str]]:
        # The prefix is checked per request (mode path_prefix): see _dispatch.
        return [
            ("POST", r"/balance/withdraw/request", "withdraw_request"),
            ("POST", r"/balance/withdraw/confirm", "withdraw_confirm"),
            ("GET", r"/balance/withdraw/limits", "withdraw_limits"),
            ("GET", r"/balance/withdraws", "withdraws"),
            ("GET", r"/balance/?", "balance"),
        ]

    def _prefix(self) -> str:
        mode = self.mode("path_prefix")
        return "" if mode == "none" else mode

    # --- envelopes ------------------------------------------------------------------------

    def use_envelope(self, style: str) -> None:
        """ "detail" (GitBook) or "success" (the newer envelope the SDK unwraps)."""
        if style not in {"detail", "success"}:
            raise ValueError(style)
        with self.store.tx() as tx:
            tx.put(self._c("config"), "envelope", {"style": style})

    def _envelope(self) -> str:
        with self.store.tx() as tx:
            return (tx.get(self._c("config"), "envelope") or {}).get("style", "detail")

    def _ok(self, data: Any) -> SandboxResponse:
        if self._envelope() == "success":
            data = {"success": True, "data": data, "error": None}
        return SandboxResponse(
            status=200, body=_json_text(data).encode(), headers={"content-type": "application/json"}
        )

    def _fail(self, status: int, detail: str | list[dict[str, Any]]) -> SandboxResponse:
        if self._envelope() == "success":
            error = {"type": ERROR_TYPES.get(status, "error"), "details": detail}
            return SandboxResponse.json({"success": False, "data": None, "error": error}, status)
        return SandboxResponse.json({"detail": detail}, status)

    def render_error(self, error: str, status: int | None = None) -> SandboxResponse:
        return self._fail(status or STATUS_BY_ERROR.get(error, 400), error)

    def render_rate_limit(self, retry_after: float) -> SandboxResponse:
        response = self._fail(429, "Too Many Requests")
        response.headers["Retry-After"] = str(int(retry_after) if retry_after >= 1 else 1)
        return response

    def render_http_error(self, status: int) -> SandboxResponse:
        return self._fail(status, "Internal Server Error")

    # --- accounts -------------------------------------------------------------------------

    def seed(self, *, api_key: str = "", balance: Decimal = Decimal("5000")) -> SandboxSeed:
        """A funded account; ``balance`` is its USDTTRC20 (the primary destination's) balance.

        ``api_key`` names the account (a label); the key it is given is random, and is also
        the account's name in the store, as every sandbox keys accounts by API key.
        """
        label = api_key or f"nordpay-{secrets.token_hex(4)}"
        with self.store.tx() as tx:
            existing = tx.get(self._c("labels"), label)
        # Seeding a label again refunds it but keeps its key: clients built earlier still work.
        token = existing["token"] if existing else secrets.token_urlsafe(24)
        # Every destination holds well over twice the primary's minimum (50), in its own unit,
        # so a caller that picks any seeded destination with the primary's amounts is funded.
        balances = {"USDTTRC20": str(balance), "USDTBEP20": "2500", "BTC": "100", "ETH": "250"}
        self.account_upsert(token, token=token, label=label, balances=balances)
        with self.store.tx() as tx:
            tx.put(self._c("labels"), label, {"token": token})
            tx.put(self._c("tokens"), token, {"account": token})
        destinations = (
            self._destination("USDT", "TRON", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", "USDTTRC20"),
            self._destination(
                "USDT", "BSC", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "USDTBEP20"
            ),
            self._destination("BTC", "BTC", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "BTC"),
            self._destination("ETH", "ETH", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", "ETH"),
        )
        primary = destinations[0]
        return SandboxSeed(
            credentials=VenueCredentials(api_key=token),
            options=VenueSettings(path_prefix=self._prefix()),
            asset=primary["asset"],
            network=primary["network"],
            address=primary["address"],
            memo="",
            venue_key="",
            precision=primary["precision"],
            minimum=primary["minimum"],
            balance=balance,
            destinations=destinations,
        )

    @staticmethod
    def _destination(asset: str, network: str, address: str, currency: str) -> dict[str, Any]:
        places, minimum, _, _ = CURRENCIES[currency]
        return {
            "asset": asset,
            "network": network,
            "address": address,
            "memo": "",
            "venue_key": "",
            "precision": places,
            "minimum": minimum,
        }

    def _authenticate(self, tx: StoreTx, request: SandboxRequest) -> dict[str, Any]:
        key = request.header("x-api-key")
        if not key:
            raise _Validation(_validation(["header", "x-api-key"], "Field required", "missing"))
        entry = tx.get(self._c("tokens"), key)
        account = self.account(tx, entry["account"]) if entry else None
        if account is None or not secrets.compare_digest(account.get("token", ""), key):
            raise SandboxError(INVALID_KEY, 401)
        return account

    def _body(self, request: SandboxRequest) -> dict[str, Any]:
        try:
            body = json.loads(request.body.decode() or "null", parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Validation(_validation(["body"], "JSON decode error", "json_invalid")) from exc
        if not isinstance(body, dict):
            raise _Validation(
                _validation(["body"], "Input should be a valid dictionary", "model_type")
            )
        return body

    # --- dispatch with the sandbox's own validation answers ---------------------------------

    def _dispatch(self, request: SandboxRequest) -> SandboxResponse:
        prefix = self._prefix()
        path = request.path
        if prefix and not path.startswith(prefix + "/"):
            return self.render_not_found(request)
        unprefixed = path.removeprefix(prefix) if prefix else path
        if not prefix and unprefixed.startswith("/v1/"):
            return self.render_not_found(request)
        query = request.target.partition("?")[2]
        inner = SandboxRequest(
            method=request.method,
            target=unprefixed + ("?" + query if query else ""),
            headers=request.headers,
            body=request.body,
        )
        try:
            return super()._dispatch(inner)
        except _Validation as exc:
            return self._fail(422, exc.errors)

    def render_not_found(self, request: SandboxRequest) -> SandboxResponse:
        return self._fail(404, "Not Found")

    # --- handlers -------------------------------------------------------------------------

    def withdraw_request(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self._authenticate(tx, request)
            body = self._body(request)
            currency, address = body.get("currency"), body.get("address")
            for name, value in (("currency", currency), ("address", address)):
                if not isinstance(value, str) or not value:
                    raise _Validation(_validation(["body", name], "Field required", "missing"))
            amount_sent, amount = self._amount(body.get("amount"))
            if currency not in CURRENCIES or currency in account.get("unavailable", []):
                raise SandboxError(f"{currency} is not available for withdraw at this moment")
            places, minimum, _, rate = CURRENCIES[currency]
            if amount != amount.quantize(Decimal(1).scaleb(-places)):
                raise _Validation(
                    _validation(
                        ["body", "amount"],
                        f"Decimal input should have no more than {places} decimal places",
                        "decimal_max_places",
                    )
                )
            if amount < minimum:
                raise SandboxError(
                    f"Amount is less than minimum withdraw amount for {currency} "
                    f"({_plain(minimum)})"
                )
            if amount > dec(account["balances"].get(currency, "0")):
                raise SandboxError("Not enough balance")
            fee = (amount * FEE_PERCENT / 100).quantize(Decimal(1).scaleb(-places))
            ttl = float(account.get("request_ttl", REQUEST_TTL))
            doc = {
                "identifier": str(uuid.uuid4()),
                "account": account["key"],
                "currency": currency,
                "address": address,
                "amount_sent": amount_sent,
                "service_fee": str(fee),
                "expires_at": now_ts() + ttl,
                "spent": False,
            }
            tx.put(self._c("requests"), doc["identifier"], doc)
        return self._ok(
            {
                "identifier": doc["identifier"],
                "currency": currency,
                "address": address,
                "amount": amount,
                "amount_usd": (amount * rate).quantize(Decimal("0.01")),
                "service_fee": fee,
                "service_fee_usd": (fee * rate).quantize(Decimal("0.01")),
                "expires_at": _iso_micro(doc["expires_at"]),
            }
        )

    def withdraw_confirm(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self._authenticate(tx, request)
            identifier = self._body(request).get("identifier")
            if not isinstance(identifier, str) or not identifier:
                raise _Validation(_validation(["body", "identifier"], "Field required", "missing"))
            pending = tx.get(self._c("requests"), identifier)
            if pending is None or pending["account"] != account["key"] or pending["spent"]:
                raise SandboxError("Withdraw request not found")
            if now_ts() > pending["expires_at"]:
                raise SandboxError("Withdraw request expired")
            currency, amount = pending["currency"], dec(pending["amount_sent"])
            available = dec(account["balances"].get(currency, "0"))
            if amount > available:
                raise SandboxError("Not enough balance")
            account["balances"][currency] = str(available - amount)
            self.save_account(tx, account)
            pending["spent"] = True
            tx.put(self._c("requests"), identifier, pending)
            wid = tx.next_id(self._c("withdraw-id"))
            self.new_withdrawal(
                tx,
                account["key"],
                {
                    "id": wid,
                    "reference": str(wid),
                    "asset": currency,
                    "currency": currency,
                    "address": pending["address"],
                    "amount_sent": pending["amount_sent"],
                    "debited": str(amount),
                    "service_fee": pending["service_fee"],
                    "identifier": identifier,
                    "status": "pending",
                    "tx_hash": None,
                },
            )
        return self._ok(
            {
                "detail": "Withdrawal request created and waiting for admin approval",
                "status": "pending",
                "id": wid,
            }
        )

    def withdraw_limits(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self._authenticate(tx, request)
        rows = []
        for currency, (_, minimum, maximum, _) in CURRENCIES.items():
            available = dec(account["balances"].get(currency, "0"))
            rows.append(
                {
                    "currency": currency,
                    "min_amount": _plain(minimum),
                    "max_amount": _plain(min(maximum, available)),
                    "fee_percent": _plain(FEE_PERCENT),
                    "available_balance": _plain(available),
                }
            )
        return self._ok(rows)

    def withdraws(self, request: SandboxRequest) -> SandboxResponse:
        query = request.query
        try:
            offset = int(query.get("offset", "0"))
            limit = int(query.get("limit", "50"))
        except ValueError as exc:
            raise _Validation(
                _validation(["query", "limit"], "Input should be a valid integer", "int_parsing")
            ) from exc
        if not 1 <= limit <= 200 or offset < 0:
            raise _Validation(
                _validation(["query", "limit"], "Input should be less than or equal to 200", "le")
            )
        with self.store.tx() as tx:
            account = self._authenticate(tx, request)
            docs = self.withdrawals(tx, account["key"])
        if query.get("currency"):
            docs = [d for d in docs if d["currency"] == query["currency"]]
        if query.get("status"):
            docs = [d for d in docs if d["status"] == query["status"]]
        net = self.mode("history_amount") == "net"
        newest_first = query.get("sort", "created_at:desc") != "created_at:asc"
        docs.sort(key=lambda d: (d["created_at"], d["seq"]), reverse=newest_first)
        rate = {c: row[3] for c, row in CURRENCIES.items()}
        items = [
            {
                "id": d["id"],
                "currency": d["currency"],
                "address": d["address"],
                "tx_hash": d["tx_hash"],
                "amount": _plain(_shown(d, net=net)),
                "amount_usd": _plain(
                    (_shown(d, net=net) * rate[d["currency"]]).quantize(Decimal("0.01"))
                ),
                "service_fee": d["service_fee"],
                "service_fee_usd": _plain(
                    (dec(d["service_fee"]) * rate[d["currency"]]).quantize(Decimal("0.01"))
                ),
                "status": d["status"],
                "created_at": datetime.fromtimestamp(d["created_at"], UTC).isoformat(),
            }
            for d in docs[offset : offset + limit]
        ]
        return self._ok(
            {
                "items": items,
                "total": len(docs),
                "offset": offset,
                "limit": limit,
                "total_pages": -(-len(docs) // limit),
            }
        )

    def balance(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self._authenticate(tx, request)
        return self._ok({"balances": dict(account["balances"])})

    # --- settlement -----------------------------------------------------------------------

    def settle(self, withdrawal: dict[str, Any], *, failed: bool) -> None:
        if failed:
            withdrawal["status"], withdrawal["tx_hash"] = "cancelled", ""
        else:
            withdrawal["status"] = "processed"
            withdrawal["tx_hash"] = "0x" + secrets.token_hex(32)

    @staticmethod
    def _amount(value: Any) -> tuple[str, Decimal]:
        """The amount as received (its text) and its value. The SDK sends ``str(amount)``."""
        text = format(value, "f") if isinstance(value, Decimal | int) else value
        if isinstance(value, bool) or not isinstance(text, str):
            raise _Validation(
                _validation(["body", "amount"], "Input should be a valid decimal", "decimal_type")
            )
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:
            raise _Validation(
                _validation(
                    ["body", "amount"], "Input should be a valid decimal", "decimal_parsing"
                )
            ) from exc
        if not amount.is_finite() or amount <= 0:
            raise _Validation(
                _validation(["body", "amount"], "Input should be greater than 0", "greater_than")
            )
        return text, amount


def _shown(doc: dict[str, Any], *, net: bool) -> Decimal:
    """The amount a history row shows: requested, or what reaches the wallet (mode)."""
    amount = dec(doc["amount_sent"])
    return amount - dec(doc["service_fee"]) if net else amount


class _Validation(Exception):
    """A FastAPI-style 422: ``detail`` is a list of {loc, msg, type}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["msg"])
        self.errors = errors


def _iso_micro(ts: float) -> str:
    # The GitBook's shape: "2025-06-12T10:04:32.962319Z".
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
