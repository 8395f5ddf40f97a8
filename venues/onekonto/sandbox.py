"""1Konto sandbox: JWT login, blockchain withdraw requests to whitelisted wallets, and the query.

Documented (NOTES.md §4): the login body and SHA-256 password, Bearer tokens with a 24 h expiry,
the withdraw body with ``"<qty> <ASSET>"`` amounts, the ``{"errors": [...], "status":
"badRequest", "httpStatusCode": 400}`` envelope with its two example errors, the
``{"status": 404, "error": "..."}`` envelope, and the five request statuses.

Assumed (the pages say nothing or were cut off), each phrased in the venue's own style:
the login/401 answers and their texts, the whitelist refusal, the below-minimum and
over-precise refusals, a 429 with ``Retry-After`` for rate limits, and each listed request
carrying ``withdrawRequestId``, ``amount``, ``network``, ``address`` and a ``createdAt``.

Modes (``set_mode``): the query answer is not in the stored pages (NOTES §4.3, §7), so each
unknown is a mode, the least convenient reading the default:

``list_key``           ``bare_list`` (default: the body is the list itself), ``withdrawRequests``
                       or ``requests`` (the list under that key, beside ``status`` and
                       ``httpStatusCode``).
``history_order``      ``oldest_first`` (default) or ``newest_first``; ``max`` keeps the first
                       ones of that order.
``instructions_echo``  ``none`` (default) or ``echoed``: whether requests show ``instructions``.
``amount_format``      ``padded`` (default: ``"1.00000000 BTC"``), ``as_sent`` (``"1 BTC"``),
                       ``number`` (a JSON number, no asset) or ``object``
                       (``{"quantity": "1.00000000", "asset": "BTC"}``; the body table types
                       ``amount`` "object").
``status_key``         ``requestStatus`` (default, the submit answer's name) or ``status``.

Per-account knobs for tests (``account_upsert``): ``token_seconds`` (token lifetime) and the
base's ``settle_seconds``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from venues.interface import VenueCredentials, VenueSettings
from venues.sandbox.app import (
    SandboxApp,
    SandboxError,
    SandboxRequest,
    SandboxResponse,
    SandboxSeed,
    dec,
    iso,
    now_ts,
)
from venues.sandbox.store import StoreTx

TOKEN_SECONDS = 24 * 3600
# Like a real venue's, the signing key outlives any one state file, so a token cached by a
# client stays valid as long as its user exists.
JWT_KEY = hashlib.sha256(b"1konto-sandbox-jwt-signing-key").digest()
DEFAULT_USER = "treasury@countersign.example"
ACCOUNT_PREFIX = "/api/v1/accounting/account/(?P<account_id>[^/]+)"

# The venue's own truth about its assets: (decimal places, minimum withdrawal).
VENUE_ASSETS: dict[str, tuple[int, Decimal]] = {
    "BTC": (8, Decimal("0.0001")),
    "ETH": (8, Decimal("0.001")),
    "USDT": (6, Decimal("1")),
    "USDC": (6, Decimal("1")),
}

# Whitelisted wallets every seeded account gets, the primary one first.
SEED_WALLETS: tuple[dict[str, str], ...] = (
    {"asset": "BTC", "network": "bitcoin", "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"},
    {
        "asset": "ETH",
        "network": "ethereum",
        "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    },
    {"asset": "USDT", "network": "tron", "address": "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"},
    {
        "asset": "USDC",
        "network": "ethereum",
        "address": "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    },
)

INSUFFICIENT = (
    "Insufficient Funds: Requested {qty} {asset} but only {available} {asset} is available"
)
NOT_WHITELISTED = (
    "Address Not Whitelisted: {address} is not a whitelisted {network} wallet of this account"
)
ACCOUNT_NOT_FOUND = "The account with the provided ID was not found"
BAD_LOGIN = "Unauthorized: invalid user or password"
NO_BEARER = "Unauthorized: missing bearer token"
BAD_BEARER = "Unauthorized: invalid token"
EXPIRED_BEARER = "Unauthorized: token expired"

AMOUNT_RE = re.compile(r"^(?P<qty>\S+)(?: (?P<asset>[A-Z0-9]+))?$")
STATUSES = ("invalid", "pending", "completed", "canceled", "rejected")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seed_password(user: str) -> str:
    """A stable sandbox password per user, so re-seeding keeps stored credentials valid."""
    return "sandbox-" + hashlib.sha256(user.encode()).hexdigest()[:16]


def seed_account_id(user: str) -> str:
    return "1K" + hashlib.sha256(b"account:" + user.encode()).hexdigest()[:12].upper()


class OneKontoSandbox(SandboxApp):
    kind = "onekonto"
    QUOTE_PATH = ""  # 1Konto has no quote call
    SUBMIT_PATH = "/request/withdraw/blockchain"
    HISTORY_PATH = "/request/withdraw"
    STATUS_PATH = "/request/withdraw"
    LOGIN_PATH = "/api/v1/identity/jwt"
    MODES: ClassVar[dict[str, tuple[str, ...]]] = {
        "list_key": ("bare_list", "withdrawRequests", "requests"),
        "history_order": ("oldest_first", "newest_first"),
        "instructions_echo": ("none", "echoed"),
        "amount_format": ("padded", "as_sent", "number", "object"),
        "status_key": ("requestStatus", "status"),
    }
    DOCUMENTED_ERRORS: ClassVar[dict[str, str]] = {
        "Insufficient Funds: Requested 1100 BTC but only 999 BTC is available": "VenueRejected",
        "ValidationFailed: Amount: must be positive. Asset: required": "VenueRejected",
        "ValidationFailed: Amount: below the minimum withdrawal of 0.0001 BTC": "VenueRejected",
        "ValidationFailed: Amount: at most 8 decimal places for BTC": "VenueRejected",
        NOT_WHITELISTED.format(address="myWalletAddress", network="bitcoin"): "VenueRejected",
        ACCOUNT_NOT_FOUND: "VenueAccessRefused",
    }
    # Errors whose documented HTTP status is not the default 400.
    ERROR_STATUS: ClassVar[dict[str, int]] = {ACCOUNT_NOT_FOUND: 404, "Not Found": 404}

    def route_table(self) -> list[tuple[str, str, str]]:
        return [
            ("POST", "/api/v1/identity/jwt", "login"),
            ("POST", ACCOUNT_PREFIX + "/request/withdraw/blockchain", "withdraw_blockchain"),
            ("GET", ACCOUNT_PREFIX + "/request/withdraw", "query_withdraws"),
        ]

    # --- envelopes -----------------------------------------------------------------------

    def render_error(self, error: str, status: int | None = None) -> SandboxResponse:
        status = status or self.ERROR_STATUS.get(error, 400)
        if status == 404:
            # The deposit-instructions page's envelope for a missing resource.
            return SandboxResponse.json({"status": 404, "error": error}, status=404)
        names = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 429: "tooManyRequests"}
        name = names.get(status, "internalServerError" if status >= 500 else "error")
        return SandboxResponse.json(
            {"errors": [error], "status": name, "httpStatusCode": status}, status=status
        )

    def render_rate_limit(self, retry_after: float) -> SandboxResponse:
        response = self.render_error(
            f"Too Many Requests: retry in {retry_after:g} seconds", status=429
        )
        response.headers["Retry-After"] = f"{retry_after:g}"
        return response

    def render_http_error(self, status: int) -> SandboxResponse:
        return self.render_error("Internal Server Error", status)

    def settle(self, withdrawal: dict[str, Any], *, failed: bool) -> None:
        withdrawal["status"] = "rejected" if failed else "completed"
        withdrawal["updated_at"] = now_ts()

    # --- seeding -------------------------------------------------------------------------

    def seed(self, *, api_key: str = "", balance: Decimal = Decimal("10")) -> SandboxSeed:
        user = api_key or DEFAULT_USER
        password = seed_password(user)
        account_id = seed_account_id(user)
        self.account_upsert(
            user,
            password_sha256=hashlib.sha256(password.encode()).hexdigest(),
            account_id=account_id,
            balances={w["asset"]: str(balance) for w in SEED_WALLETS},
            wallets=list(SEED_WALLETS),
        )
        destinations = tuple(
            {
                **wallet,
                "memo": "",
                "venue_key": "",
                "precision": VENUE_ASSETS[wallet["asset"]][0],
                "minimum": VENUE_ASSETS[wallet["asset"]][1],
            }
            for wallet in SEED_WALLETS
        )
        primary = destinations[0]
        return SandboxSeed(
            credentials=VenueCredentials(api_key=user, api_secret=password, account=account_id),
            options=VenueSettings(),
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

    # --- auth ----------------------------------------------------------------------------

    def _issue_token(self, user: str, seconds: float) -> str:
        issued = now_ts()
        expires = issued + seconds
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"sub": user, "iat": int(issued), "exp": expires, "jti": secrets.token_hex(8)}
        payload = _b64url(json.dumps(claims).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = hmac.new(JWT_KEY, signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def _authenticate(self, tx: StoreTx, request: SandboxRequest, account_id: str) -> dict:
        """The account behind the bearer token, which must own ``account_id``."""
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme != "Bearer" or not token:
            raise SandboxError(NO_BEARER, 401)
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(JWT_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64url(signature)):
                raise SandboxError(BAD_BEARER, 401)
            claims = json.loads(_unb64url(payload))
        except ValueError as exc:
            raise SandboxError(BAD_BEARER, 401) from exc
        if float(claims.get("exp", 0)) <= now_ts():
            raise SandboxError(EXPIRED_BEARER, 401)
        account = self.account(tx, str(claims.get("sub", "")))
        if account is None:
            raise SandboxError(BAD_BEARER, 401)
        if account.get("account_id") != account_id:
            raise SandboxError(ACCOUNT_NOT_FOUND, 404)
        return account

    def login(self, request: SandboxRequest) -> SandboxResponse:
        body = _json_body(request)
        user, password = body.get("user"), body.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise SandboxError("ValidationFailed: User: required. Password: required")
        with self.store.tx() as tx:
            account = self.account(tx, user)
            if account is None or not hmac.compare_digest(
                account.get("password_sha256", ""), password
            ):
                raise SandboxError(BAD_LOGIN, 401)
            # Counted so tests can prove that clients reuse their token.
            account["logins"] = account.get("logins", 0) + 1
            self.save_account(tx, account)
            seconds = float(account.get("token_seconds", TOKEN_SECONDS))
            token = self._issue_token(user, seconds)
        return SandboxResponse.json(
            # Only "the token property" is documented (NOTES §4.1): no expiry beside it.
            {"token": token, "status": "ok", "httpStatusCode": 200}
        )

    # --- withdrawals ---------------------------------------------------------------------

    def withdraw_blockchain(self, request: SandboxRequest, account_id: str) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self._authenticate(tx, request, account_id)
            body = _json_body(request)
            qty, asset = _parse_amount(body.get("amount"))
            network, address = body.get("network"), body.get("address")
            instructions = body.get("instructions") or []
            if not isinstance(instructions, list) or not all(
                isinstance(i, str) for i in instructions
            ):
                raise SandboxError("ValidationFailed: Instructions: must be a list of strings")
            if not isinstance(address, str) or not address:
                raise SandboxError("ValidationFailed: Address: required")
            if asset not in VENUE_ASSETS:
                raise SandboxError(f"ValidationFailed: Asset: {asset} is not supported")
            places, minimum = VENUE_ASSETS[asset]
            if qty != qty.quantize(Decimal(1).scaleb(-places)):
                raise SandboxError(
                    f"ValidationFailed: Amount: at most {places} decimal places for {asset}"
                )
            if qty < minimum:
                raise SandboxError(
                    f"ValidationFailed: Amount: below the minimum withdrawal of {minimum} {asset}"
                )
            if not any(
                w["asset"] == asset and w["network"] == network and w["address"] == address
                for w in account.get("wallets", [])
            ):
                raise SandboxError(NOT_WHITELISTED.format(address=address, network=network))
            available = dec(account["balances"].get(asset, "0"))
            if qty > available:
                raise SandboxError(INSUFFICIENT.format(qty=qty, asset=asset, available=available))
            account["balances"][asset] = str(available - qty)
            self.save_account(tx, account)
            wid = _b64url(secrets.token_bytes(16))
            self.new_withdrawal(
                tx,
                account["key"],
                {
                    "id": wid,
                    "reference": wid,
                    "account_id": account_id,
                    "asset": asset,
                    "amount": body["amount"],
                    "amount_sent": body["amount"].split(" ")[0],
                    "debited": str(qty),
                    "network": network,
                    "address": address,
                    "instructions": instructions,
                    "status": "pending",
                },
            )
        return SandboxResponse.json(
            {
                "withdrawRequestId": wid,
                "requestStatus": "pending",
                "status": "ok",
                "httpStatusCode": 200,
            }
        )

    def query_withdraws(self, request: SandboxRequest, account_id: str) -> SandboxResponse:
        with self.store.tx() as tx:
            account = self._authenticate(tx, request, account_id)
            docs = self.withdrawals(tx, account["key"])
            modes = {name: self.mode_in(tx, name) for name in self.MODES}
        query = request.query
        try:
            limit = int(query.get("max", "100"))
        except ValueError as exc:
            raise SandboxError("ValidationFailed: Max: must be an integer") from exc
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise SandboxError(f"ValidationFailed: Status: {status} is not a valid value")
        filters = {
            "id": query.get("withdrawRequestId"),
            "status": status,
            "network": query.get("network"),
        }
        if query.get("type") not in (None, "blockchain"):
            docs = []  # the sandbox only holds blockchain withdrawals
        if modes["history_order"] == "newest_first":
            docs.reverse()
        picked = [
            doc
            for doc in docs
            if all(value is None or doc.get(field) == value for field, value in filters.items())
        ][: max(limit, 0)]
        items = [_render_request(doc, modes) for doc in picked]
        if modes["list_key"] == "bare_list":
            return SandboxResponse(
                status=200,
                body=_json_text(items).encode(),
                headers={"content-type": "application/json"},
            )
        body = {modes["list_key"]: items, "status": "ok", "httpStatusCode": 200}
        return SandboxResponse(
            status=200, body=_json_text(body).encode(), headers={"content-type": "application/json"}
        )


def _json_body(request: SandboxRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise SandboxError("ValidationFailed: Body: must be a JSON object") from exc
    if not isinstance(body, dict):
        raise SandboxError("ValidationFailed: Body: must be a JSON object")
    return body


def _parse_amount(raw: Any) -> tuple[Decimal, str]:
    """``"<qty> <ASSET>"``; errors in the documented combined style."""
    match = AMOUNT_RE.match(raw) if isinstance(raw, str) else None
    problems = []
    qty = Decimal(0)
    if match is None:
        problems.append("Amount: required")
    else:
        try:
            qty = Decimal(match["qty"])
        except InvalidOperation:
            problems.append("Amount: must be a number")
        else:
            if not qty.is_finite() or qty <= 0:
                problems.append("Amount: must be positive")
    asset = match["asset"] if match and match["asset"] else ""
    if not asset:
        problems.append("Asset: required")
    if problems:
        raise SandboxError("ValidationFailed: " + ". ".join(problems))
    return qty, asset


def _render_request(doc: dict[str, Any], modes: dict[str, str]) -> dict[str, Any]:
    qty, asset = _parse_amount(doc["amount"])
    places = VENUE_ASSETS[asset][0]
    padded = qty.quantize(Decimal(1).scaleb(-places))
    amount: Any = {
        "padded": f"{padded} {asset}",
        "as_sent": doc["amount"],
        "number": padded,
        "object": {"quantity": str(padded), "asset": asset},
    }[modes["amount_format"]]
    item = {
        "withdrawRequestId": doc["id"],
        "amount": amount,
        "network": doc["network"],
        "address": doc["address"],
        modes["status_key"]: doc["status"],
        "createdAt": iso(doc["created_at"]),
    }
    if modes["instructions_echo"] == "echoed":
        item["instructions"] = doc["instructions"]
    return item


def _json_text(value: Any) -> str:
    """JSON with Decimals written as numbers, exactly, without passing through a float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)
