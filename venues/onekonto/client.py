"""1Konto client (NOTES.md §4, 1konto-request-withdraw-blockchain.txt).

Auth is a JWT: ``POST /api/v1/identity/jwt`` with the login e-mail and the SHA-256 hex of the
password, then ``Authorization: Bearer <token>``. Nothing is signed, so there is no nonce.
1Konto documents no fee quote, no cancel, no saved-address listing and no idempotency key; our
request id travels as an instruction (``countersign:<uuid>``), which is what :meth:`find` looks
for in the withdraw-request history.

Assumptions, because the stored pages were truncated:
the query endpoint answers ``{"requests": [...], "status": "ok", ...}`` with each request
echoing its ``instructions``; a rate limit is HTTP 429 with ``Retry-After``; the login response
may omit the expiry, so we read ``exp`` from the token itself and otherwise assume the
documented 24 hours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any, ClassVar

import httpx
from django.conf import settings
from django.core.cache import cache

from venues.http import amount_str, compact_json, retry_after, send, server_error
from venues.interface import (
    Quote,
    SavedAddress,
    SubmitReceipt,
    VenueCredentials,
    VenueError,
    VenueOutcomeUnknown,
    VenueRejected,
    VenueSettings,
    VenueState,
    VenueStatus,
    VenueUnavailable,
    WithdrawalSpec,
)
from venues.nonces import DatabaseNonceSource

LOGIN_PATH = "/api/v1/identity/jwt"
TOKEN_LIFETIME = 24 * 3600.0  # "The API issues tokens with a 24 hour expiry."
REFRESH_MARGIN = 3600.0  # log in again when less than this is left on the cached token
DEFAULT_RETRY_AFTER = 60.0  # a 429 without Retry-After: back off for a minute
FIND_WINDOW = 500  # the query has "max" but no offset: reconcile over the latest requests
INSTRUCTION_PREFIX = "countersign:"

# Every status value of "Querying for Withdraw Requests".
STATUS_MAP: dict[str, VenueState] = {
    "invalid": VenueState.FAILED,
    "pending": VenueState.PENDING,
    "completed": VenueState.COMPLETED,
    "canceled": VenueState.CANCELLED,
    "rejected": VenueState.FAILED,
}

# (decimal places, minimum) per asset. 1Konto publishes neither; these are our working values
# (the sandbox enforces the same ones) and only feed the UI's preview: the venue decides.
ASSET_RULES: dict[str, tuple[int, Decimal]] = {
    "BTC": (8, Decimal("0.0001")),
    "ETH": (8, Decimal("0.001")),
    "USDT": (6, Decimal("1")),
    "USDC": (6, Decimal("1")),
}
DEFAULT_RULES: tuple[int, Decimal] = (8, Decimal("0.00000001"))

# Every error the venue documents (or that we assume for it), by the text before its first
# colon, mapped to the outcome it implies. Anything else falls back on the HTTP status.
ERROR_OUTCOMES: dict[str, type[VenueError]] = {
    "Insufficient Funds": VenueRejected,
    "ValidationFailed": VenueRejected,
    "Address Not Whitelisted": VenueRejected,
    "The account with the provided ID was not found": VenueRejected,
    "Unauthorized": VenueRejected,
    "Too Many Requests": VenueUnavailable,
}


def password_hash(password: str) -> str:
    """1Konto never receives the password itself, only its lowercase SHA-256 hex."""
    return hashlib.sha256(password.encode()).hexdigest()


def format_amount(amount: Decimal, asset: str) -> str:
    """The documented ``"<qty> <ASSET>"`` form, e.g. ``"1 BTC"``."""
    places, _ = rules_for(asset)
    return f"{amount_str(amount, places)} {asset.upper()}"


def rules_for(asset: str) -> tuple[int, Decimal]:
    return ASSET_RULES.get(asset.upper(), DEFAULT_RULES)


def instruction_for(spec: WithdrawalSpec) -> str:
    return f"{INSTRUCTION_PREFIX}{spec.request_id}"


def token_expiry(token: str, issued_at: float) -> float:
    """The ``exp`` claim of a JWT (not verified: we only schedule a refresh with it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return issued_at + TOKEN_LIFETIME


def venue_message(body: Any) -> str:
    """The venue's own error text from either documented envelope.

    ``{"errors": [...], "status": "badRequest", "httpStatusCode": 400}`` (withdraw pages) or
    ``{"status": 404, "error": "..."}`` (deposit-instructions page).
    """
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)
        if isinstance(body.get("error"), str) and body["error"]:
            return body["error"]
    return ""


def is_error_body(body: Any) -> bool:
    if not isinstance(body, dict):
        return True
    if body.get("errors") or body.get("error"):
        return True
    code = body.get("httpStatusCode", body.get("status"))
    return isinstance(code, int) and code >= 400


def _parse(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class OneKontoClient:
    kind: ClassVar[str] = "onekonto"
    supports_cancel: ClassVar[bool] = False
    supports_saved_addresses: ClassVar[bool] = False
    supports_quote: ClassVar[bool] = False
    idempotent_submit: ClassVar[bool] = False

    def __init__(
        self,
        *,
        http: httpx.Client,
        credentials: VenueCredentials,
        options: VenueSettings,
        nonces: DatabaseNonceSource,
    ) -> None:
        # ``options`` and ``nonces`` are part of the shared constructor; a bearer token needs
        # neither a nonce nor per-account options.
        self.http = http
        self._user = credentials.api_key
        self._password_hash = password_hash(credentials.api_secret)
        self._account = credentials.account
        base = f"{http.base_url}\n{self._user}".encode()
        self._cache_key = "venues:onekonto:jwt:" + hashlib.sha256(base).hexdigest()
        # A cached token is only reused by a client holding the same password: a keyed digest,
        # so the cache reveals nothing that could be brute-forced without SECRET_KEY.
        self._fingerprint = hmac.new(
            settings.SECRET_KEY.encode(), self._password_hash.encode(), hashlib.sha256
        ).hexdigest()

    def __repr__(self) -> str:
        return f"OneKontoClient(base_url={str(self.http.base_url)!r}, account={self._account!r})"

    # --- the interface -------------------------------------------------------------------

    def quote(self, spec: WithdrawalSpec) -> Quote:
        """No fee quote is documented: say so, with our precision and minimum for the UI."""
        places, minimum = rules_for(spec.asset)
        return Quote(
            fee=None,
            net_amount=None,
            minimum=minimum,
            precision=places,
            fee_asset=spec.asset.upper(),
            raw={"note": "1Konto documents no fee quote; the fee is not quoted by the venue."},
        )

    def submit(self, spec: WithdrawalSpec, *, quote: Quote | None) -> SubmitReceipt:
        self._check_sendable(spec)
        body = {
            "amount": format_amount(spec.amount, spec.asset),
            "network": spec.network,
            "address": spec.address,
            "instructions": [instruction_for(spec)],
        }
        data = self._call("POST", self._account_path("/request/withdraw/blockchain"), body=body)
        reference = data.get("withdrawRequestId")
        if not isinstance(reference, str) or not reference:
            # A success answer without the id: the request may well exist at the venue.
            raise VenueOutcomeUnknown("1Konto answered without a withdrawRequestId")
        return SubmitReceipt(reference=reference, raw=data)

    def status(self, spec: WithdrawalSpec, *, reference: str) -> VenueStatus:
        for item in self._query({"withdrawRequestId": reference}):
            if item.get("withdrawRequestId") == reference:
                return self._to_status(item)
        # Not concluding anything from absence: the lifecycle only moves on a real status.
        raise VenueUnavailable(f"1Konto does not list withdraw request {reference} (yet)")

    def find(self, spec: WithdrawalSpec) -> VenueStatus | None:
        wanted = instruction_for(spec)
        items = self._query({"network": spec.network, "type": "blockchain", "max": FIND_WINDOW})
        matches = [item for item in items if wanted in (item.get("instructions") or [])]
        if not matches and any("instructions" not in item for item in items):
            # The venue did not echo instructions, so absence proves nothing; fall back on the
            # closest documented match: same address and exact amount.
            amount = format_amount(spec.amount, spec.asset)
            matches = [
                item
                for item in items
                if item.get("address") == spec.address and item.get("amount") == amount
            ]
            if len(matches) > 1:
                raise VenueOutcomeUnknown(
                    f"{len(matches)} withdraw requests at 1Konto match {amount} to "
                    f"{spec.address}; reconcile by hand"
                )
        return self._to_status(matches[0]) if matches else None

    def traces(self, spec: WithdrawalSpec) -> list[VenueStatus]:
        wanted = instruction_for(spec)
        items = self._query({"network": spec.network, "type": "blockchain", "max": FIND_WINDOW})
        return [
            self._to_status(item) for item in items if wanted in (item.get("instructions") or [])
        ]

    def cancel(self, spec: WithdrawalSpec, *, reference: str) -> bool:
        raise NotImplementedError("1Konto documents no way to cancel a withdraw request")

    def saved_addresses(self, *, asset: str = "") -> list[SavedAddress]:
        raise NotImplementedError("1Konto documents no listing of whitelisted wallets")

    def check_connection(self) -> str:
        items = self._query({"max": 1})
        latest = f"latest request {items[0].get('status', '?')}" if items else "no requests yet"
        return f"1Konto login ok; account {self._account}: {latest}"

    def close(self) -> None:
        self.http.close()

    # --- plumbing ------------------------------------------------------------------------

    def _check_sendable(self, spec: WithdrawalSpec) -> None:
        """Refuse locally what must never be silently altered on its way to the venue."""
        places, _ = rules_for(spec.asset)
        if spec.amount != spec.amount.quantize(Decimal(1).scaleb(-places)):
            raise VenueRejected(
                f"Amount {spec.amount} {spec.asset} has more than {places} decimal places"
            )
        if spec.memo:
            # The documented body has no memo/tag field; without it a tag chain loses funds.
            raise VenueRejected("1Konto documents no memo/tag field for blockchain withdrawals")

    def _account_path(self, suffix: str) -> str:
        return f"/api/v1/accounting/account/{self._account}{suffix}"

    def _query(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        data = self._call("GET", self._account_path("/request/withdraw"), params=params)
        items = data.get("requests")
        if not isinstance(items, list):
            raise VenueUnavailable("1Konto answered the withdraw query without a request list")
        return [item for item in items if isinstance(item, dict)]

    def _to_status(self, item: dict[str, Any]) -> VenueStatus:
        raw_status = str(item.get("status", ""))
        state = STATUS_MAP.get(raw_status)
        if state is None:
            raise VenueUnavailable(f"1Konto reported an undocumented status {raw_status!r}")
        return VenueStatus(
            reference=str(item.get("withdrawRequestId", "")),
            state=state,
            raw_status=raw_status,
            txid=str(item.get("txId") or ""),
            raw=item,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        mutating = method != "GET"
        content = compact_json(body) if body is not None else None
        token = self._token()
        response = self._send(method, path, token, content, params, mutating=mutating)
        if response.status_code == 401:
            # 1Konto checks the bearer token before it processes anything, so a 401 means the
            # request was refused unread - even for the withdraw POST. Logging in again and
            # sending it once more therefore cannot create a second withdrawal.
            self._forget(token)
            token = self._token()
            response = self._send(method, path, token, content, params, mutating=mutating)
        return self._result(response, mutating=mutating)

    def _send(
        self,
        method: str,
        path: str,
        token: str,
        content: bytes | None,
        params: dict[str, Any] | None,
        *,
        mutating: bool,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        request = self.http.build_request(
            method, path, content=content, params=params, headers=headers
        )
        return send(self.http, request, mutating=mutating)

    def _result(self, response: httpx.Response, *, mutating: bool) -> dict[str, Any]:
        """The one place where 1Konto answers become data or one of the three outcomes."""
        body = _parse(response)
        status = response.status_code
        if status < 400 and not is_error_body(body):
            return body
        message = venue_message(body)
        if status == 429:
            wait = retry_after(response) or DEFAULT_RETRY_AFTER
            raise VenueUnavailable(
                message or "1Konto rate limit", retry_after=wait, http_status=status
            )
        if status >= 500 or status == 408:
            server_error(response, mutating=mutating, message=message)
        if status < 400:
            # 2xx whose body is unreadable or carries errors: never assume it was refused.
            code = body.get("httpStatusCode") if isinstance(body, dict) else None
            if not message or not isinstance(code, int) or not 400 <= code < 500:
                server_error(response, mutating=mutating, message="Unreadable 1Konto answer")
        outcome = ERROR_OUTCOMES.get(message.split(":", 1)[0].strip(), VenueRejected)
        if outcome is VenueUnavailable:
            raise VenueUnavailable(message, retry_after=retry_after(response), http_status=status)
        raise outcome(message or f"1Konto refused the request (HTTP {status})", http_status=status)

    # --- token ---------------------------------------------------------------------------

    def _token(self) -> str:
        cached = cache.get(self._cache_key)
        if (
            isinstance(cached, dict)
            and cached.get("fp") == self._fingerprint
            and cached.get("expires_at", 0) - time.time() > REFRESH_MARGIN
        ):
            return cached["token"]
        return self._login()

    def _forget(self, token: str) -> None:
        cached = cache.get(self._cache_key)
        # Leave a token another worker refreshed meanwhile in place.
        if isinstance(cached, dict) and cached.get("token") == token:
            cache.delete(self._cache_key)

    def _login(self) -> str:
        issued_at = time.time()
        content = compact_json({"user": self._user, "password": self._password_hash})
        request = self.http.build_request(
            "POST",
            LOGIN_PATH,
            content=content,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        # A login moves no money: its failures are never "outcome unknown".
        response = send(self.http, request, mutating=False)
        try:
            data = self._result(response, mutating=False)
        except VenueRejected as exc:
            raise VenueRejected(
                f"1Konto refused the login: {exc.message}", http_status=exc.http_status
            ) from None
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise VenueUnavailable("1Konto login answered without a token")
        expires_at = token_expiry(token, issued_at)
        lifetime = expires_at - time.time()
        if lifetime > REFRESH_MARGIN:
            cache.set(
                self._cache_key,
                {"token": token, "expires_at": expires_at, "fp": self._fingerprint},
                timeout=int(lifetime),
            )
        return token
