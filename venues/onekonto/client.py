"""1Konto client (NOTES.md §4, 1konto-request-withdraw-blockchain.txt).

Auth is a JWT: ``POST /api/v1/identity/jwt`` with the login e-mail and the SHA-256 hex of the
password, then ``Authorization: Bearer <token>``. Nothing is signed, so there is no nonce.
1Konto documents no fee quote, no cancel, no saved-address listing and no idempotency key; our
request id travels as an instruction (``countersign:<uuid>``), which is what :meth:`find` looks
for in the withdraw-request history.

What the stored pages do not say, and how this client copes (NOTES §4.3, §7):

* The query answer's shape: the list may sit under any key, or be the whole body; each
  request's state may be ``requestStatus`` (as in the submit answer) or ``status``. The one list
  of objects in the answer is read.
* Its order, and whether ``max`` keeps the newest or the oldest: a list as long as ``max`` may
  be missing ours, so absence is only concluded from a shorter one.
* Whether ``instructions`` are echoed: when they are, the match is exact. When they are not,
  :meth:`OneKontoClient.find` falls back on the same address and amount (compared as Decimals,
  however the venue writes them), near one of our recorded sends when the request carries a
  readable ``createdAt`` (our assumption), never a request our journal gives to another
  withdrawal; anything short of exactly one dated candidate goes to people
  (:class:`VenueAmbiguous`).
* A rate limit is HTTP 429 with ``Retry-After``; the login response may omit the expiry, so we
  read ``exp`` from the token itself and otherwise assume the documented 24 hours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx
from django.conf import settings
from django.core.cache import cache

from venues.budget import Purpose
from venues.http import amount_str, compact_json, retry_after, send, server_error
from venues.interface import (
    Quote,
    SavedAddress,
    SubmitReceipt,
    VenueAccessRefused,
    VenueAmbiguous,
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
from venues.journal import SubmitJournal
from venues.nonces import DatabaseNonceSource

LOGIN_PATH = "/api/v1/identity/jwt"
TOKEN_LIFETIME = 24 * 3600.0  # "The API issues tokens with a 24 hour expiry."
REFRESH_MARGIN = 3600.0  # log in again when less than this is left on the cached token
DEFAULT_RETRY_AFTER = 60.0  # a 429 without Retry-After: back off for a minute
FIND_WINDOW = 5000  # the query has "max" but no offset or time filter: ask for many at once
INSTRUCTION_PREFIX = "countersign:"
# find(): how far a request's createdAt may lie from a recorded send and still be that send.
RECONCILE_WINDOW = timedelta(minutes=5)
# Where an amount written as an object may keep its quantity (the body table types it
# "object"; the example writes "1 BTC").
AMOUNT_KEYS = ("quantity", "qty", "amount", "value")

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
    # Our account id, user or token was refused: nothing about any withdrawal follows.
    "The account with the provided ID was not found": VenueAccessRefused,
    "Unauthorized": VenueAccessRefused,
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
        # An amount written as a JSON number must never pass through a float.
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return None


def request_items(data: Any) -> list[dict[str, Any]]:
    """The withdraw requests of a query answer, whatever the (undocumented) key of the list:
    the whole body if it is a list, else the one list of objects it holds."""
    if isinstance(data, list):
        found: Any = data
    else:
        lists = [
            value
            for key, value in data.items()
            if isinstance(value, list) and key not in ("errors", "instructions")
        ]
        if len(lists) != 1:
            raise VenueUnavailable("1Konto answered the withdraw query without one request list")
        found = lists[0]
    return [item for item in found if isinstance(item, dict)]


def amount_of(value: Any, asset: str) -> Decimal | None:
    """The quantity of a request's ``amount`` however it is written ("1 BTC", "1.00000000 BTC",
    1, "1", or an object), or None if it is unreadable or names another asset."""
    if isinstance(value, dict):
        if str(value.get("asset", asset)).upper() != asset.upper():
            return None
        value = next((value[k] for k in AMOUNT_KEYS if k in value), None)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        qty, _, named = value.strip().partition(" ")
        if named and named.strip().upper() != asset.upper():
            return None
        value = qty
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def created_at(item: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(item["createdAt"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _request_status(item: dict[str, Any]) -> str:
    """A request's state: ``requestStatus`` as in the submit answer, else ``status``."""
    return str(item.get("requestStatus") or item.get("status") or "")


class OneKontoClient:
    kind: ClassVar[str] = "onekonto"
    supports_cancel: ClassVar[bool] = False
    supports_saved_addresses: ClassVar[bool] = False
    supports_quote: ClassVar[bool] = False
    idempotent_submit: ClassVar[bool] = False
    supports_fee_cap: ClassVar[bool] = False
    request_id_in_history: ClassVar[bool] = True  # the instruction
    quote_creates_request: ClassVar[bool] = False  # no quote call at all

    def __init__(
        self,
        *,
        http: httpx.Client,
        credentials: VenueCredentials,
        options: VenueSettings,
        nonces: DatabaseNonceSource,
        purpose: Purpose | None = None,
    ) -> None:
        # ``options``, ``nonces`` and ``purpose`` are part of the shared constructor; a bearer
        # token needs no nonce, and 1Konto documents no call budget to rank calls on.
        self.http = http
        self._user = credentials.api_key
        self._password_hash = password_hash(credentials.api_secret)
        self._account = credentials.account
        self._journal = SubmitJournal(self.kind)
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
        entry = self._journal.mark_sent(spec.request_id)
        data = self._call("POST", self._account_path("/request/withdraw/blockchain"), body=body)
        reference = data.get("withdrawRequestId") if isinstance(data, dict) else None
        if not isinstance(reference, str) or not reference:
            # A success answer without the id: the request may well exist at the venue.
            raise VenueOutcomeUnknown("1Konto answered without a withdrawRequestId")
        self._journal.mark_reference(spec.request_id, reference, entry=entry)
        return SubmitReceipt(reference=reference, raw=data)

    def status(self, spec: WithdrawalSpec, *, reference: str) -> VenueStatus:
        for item in self._query({"withdrawRequestId": reference}):
            if item.get("withdrawRequestId") == reference:
                return self._to_status(item)
        # Not concluding anything from absence: the lifecycle only moves on a real status.
        raise VenueUnavailable(f"1Konto does not list withdraw request {reference} (yet)")

    def find(self, spec: WithdrawalSpec) -> VenueStatus | None:
        """This withdrawal among 1Konto's withdraw requests, or None if 1Konto has no trace.

        The reference recorded when 1Konto answered our submission is the exact link; then
        our instruction, where the venue echoes instructions. Otherwise (see the module
        docstring) only a single dated candidate of the same address and amount, near a send
        of ours and held by no other withdrawal of ours, is taken; anything else is for people.
        """
        sent = self._journal.sent_times(spec.request_id)
        if not sent:
            return None
        reference = self._journal.reference(spec.request_id)
        if reference:
            return self.status(spec, reference=reference)
        items, complete = self._history(spec)
        wanted = instruction_for(spec)
        echoed = any("instructions" in item for item in items)
        if echoed:
            candidates = [i for i in items if wanted in (i.get("instructions") or [])]
            dated = candidates
        else:
            candidates = self._lookalikes(spec, items, sent)
            dated = [i for i in candidates if created_at(i) is not None]
        if not candidates:
            if not complete:
                raise VenueUnavailable(
                    "1Konto listed as many requests as asked for: ours may be beyond them"
                )
            return None
        if len(candidates) > 1 or len(dated) != 1:
            ids = ", ".join(str(i.get("withdrawRequestId")) for i in candidates)
            raise VenueAmbiguous(
                f"1Konto withdraw requests {ids} could be this withdrawal of {spec.amount} "
                f"{spec.asset} to {spec.address}; people must decide"
            )
        found = self._to_status(candidates[0])
        self._journal.mark_reference(spec.request_id, found.reference)
        return found

    def statuses(self, spec: WithdrawalSpec, references: Sequence[str]) -> dict[str, VenueStatus]:
        """Many requests' status from one query (status refresh, batched). References not
        listed (yet) are missing from the answer."""
        wanted = set(references)
        items, _ = self._history(spec)
        return {
            str(item["withdrawRequestId"]): self._to_status(item)
            for item in items
            if str(item.get("withdrawRequestId")) in wanted
        }

    def traces(self, spec: WithdrawalSpec) -> list[VenueStatus]:
        """Requests carrying our instruction, or a reference our journal recorded for us."""
        wanted = instruction_for(spec)
        references = set(self._journal.references(spec.request_id))
        items, _ = self._history(spec)
        return [
            self._to_status(item)
            for item in items
            if wanted in (item.get("instructions") or [])
            or str(item.get("withdrawRequestId")) in references
        ]

    def _history(self, spec: WithdrawalSpec) -> tuple[list[dict[str, Any]], bool]:
        """The blockchain requests on the spec's network, and whether the list is complete."""
        params = {"network": spec.network, "type": "blockchain", "max": FIND_WINDOW}
        items = self._query(params)
        return items, len(items) < FIND_WINDOW

    def _lookalikes(
        self, spec: WithdrawalSpec, items: list[dict[str, Any]], sent: list[datetime]
    ) -> list[dict[str, Any]]:
        """Requests of the same address and amount, not held by another withdrawal of ours,
        and not dated away from every send of ours."""
        found = []
        for item in items:
            if item.get("address") != spec.address:
                continue
            if amount_of(item.get("amount"), spec.asset) != spec.amount:
                continue
            moment = created_at(item)
            if moment is not None and all(abs(moment - at) > RECONCILE_WINDOW for at in sent):
                continue
            found.append(item)
        claimed = self._journal.claimed_by_others(
            spec.request_id, [str(item.get("withdrawRequestId")) for item in found]
        )
        return [item for item in found if str(item.get("withdrawRequestId")) not in claimed]

    def cancel(self, spec: WithdrawalSpec, *, reference: str) -> bool:
        raise NotImplementedError("1Konto documents no way to cancel a withdraw request")

    def saved_addresses(self, *, asset: str = "") -> list[SavedAddress]:
        raise NotImplementedError("1Konto documents no listing of whitelisted wallets")

    def check_connection(self) -> str:
        items = self._query({"max": 1})
        latest = f"a request {_request_status(items[0]) or '?'}" if items else "no requests yet"
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
        return request_items(data)

    def _to_status(self, item: dict[str, Any]) -> VenueStatus:
        raw_status = _request_status(item)
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
    ) -> Any:
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

    def _result(self, response: httpx.Response, *, mutating: bool) -> Any:
        """The one place where 1Konto answers become data or one of the three outcomes."""
        body = _parse(response)
        status = response.status_code
        if status < 400 and isinstance(body, list) and not mutating:
            return body  # a query answered with the bare list of requests
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
        if status in (401, 403):
            outcome = VenueAccessRefused  # the token or its rights, not any withdrawal
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
            # A refused login says nothing about any withdrawal (a changed password, say).
            raise VenueAccessRefused(
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
