"""Kraken Embed (B2B "nexus") withdrawals: NOTES.md §2.

Wire facts this client relies on:

* Every call carries ``API-Key``, ``API-Nonce`` (a header, unlike spot), ``API-Sign`` and
  ``Payward-Version: 2025-04-15``. The signature covers the path *with its query string* and,
  for POST, the exact compact JSON we send.
* ``POST /b2b/funds/withdrawals`` both quotes (``preview: true``) and submits. Its
  ``idempotency_token`` (our request id) makes a repeated submit return the original result, so
  this is the one venue where resending the same submission is safe - within a retention time
  nobody documents (NOTES §7). Whether a preview is stored under its token is not documented
  either: if it were, a submit sharing the preview's token would get the preview back. So every
  preview carries a fresh token of its own, never the request id.
* Errors are HTTP statuses with a Kraken-style ``{"error": [...]}`` body. NOTES marks that body
  shape unverified, so the status code alone must also be enough to classify an answer.

Assumptions (documented, not quoted from Kraken):

* The preview's ``amount`` is the net amount sent after the fee and ``total`` what is debited,
  as for spot ``WithdrawInfo``; so the requested amount is fee-inclusive.
* The venue formats amounts at the asset's precision ("0.00050000" for BTC), so the precision is
  read from the decimal places of the withdrawal method's amounts.
* The documented transaction rows (``type, date, asset, amount, status, ref_id``) carry no
  idempotency token. Reconciliation reads them first (:meth:`KrakenEmbedClient.find`): the
  ``ref_id`` our submit journal recorded, else the same asset and amount (the requested amount or
  the amount net of the method's fee: which one rows show is not documented) near a recorded
  send; rows another of our withdrawals holds are never taken, and two candidates are ambiguous.
* A refused ``fee_token`` answers ``EFunding:Invalid fee token`` (NOTES only says "if rejected,
  fetch withdrawal methods again"); the withdrawal then needs a new preview.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote as urlquote
from urllib.parse import urlencode

import httpx

from venues.budget import Purpose, key_turn
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
    VenueQuoteRefused,
    VenueRejected,
    VenueSettings,
    VenueState,
    VenueStatus,
    VenueUnavailable,
    WithdrawalSpec,
)
from venues.journal import SubmitJournal
from venues.nonces import DatabaseNonceSource, nonce_scope

API_VERSION = "2025-04-15"
WITHDRAWALS_PATH = "/b2b/funds/withdrawals"
METHODS_PATH = "/b2b/funds/withdrawals/methods/"
ADDRESSES_PATH = "/b2b/funds/withdrawals/addresses"
TRANSACTIONS_PATH = "/b2b/funds/transactions"
# "guarantees the quoted fee for 10 minutes" (withdraw-funds page, fee_token).
FEE_TOKEN_LIFETIME = timedelta(minutes=10)
PAGE_SIZE = 500  # the documented maximum of page_size
MAX_PAGES = 20  # bounds a history walk; reconciliation concerns recent withdrawals
# The guide says 429 is "Retryable with backoff" but names no hint; used when no Retry-After.
DEFAULT_RETRY_AFTER = 5.0
# find(): how far a transaction's ``date`` may lie from a recorded send and still be that send.
RECONCILE_WINDOW = timedelta(minutes=5)

# Every documented withdrawal status (guide table, plus "initial" from the transactions example).
STATUS_MAP: dict[str, VenueState] = {
    "initial": VenueState.PENDING,
    "pending": VenueState.PENDING,
    "held": VenueState.PENDING,
    "success": VenueState.COMPLETED,
    "failure": VenueState.FAILED,
}

# Every error string the venue documents, and the one outcome it means. VenueOutcomeUnknown
# stands for "server-side trouble": unknown after a mutating call, merely unavailable after a
# read (see _raise_error).
ERROR_OUTCOMES: dict[str, type[VenueError]] = {
    "EGeneral:Bad data": VenueRejected,
    "EGeneral:Invalid arguments": VenueRejected,
    # Our credentials or permissions were refused: nothing about any withdrawal follows.
    "EGeneral:Permission denied": VenueAccessRefused,
    "ENexus:Unknown asset": VenueRejected,
    "EFunding:Unknown withdraw key": VenueRejected,
    "EFunding:Duplicate withdraw key": VenueRejected,
    # The fee token expired or is unknown: a new quote and a new approval, never through.
    "EFunding:Invalid fee token": VenueQuoteRefused,
    "EFunding:Invalid amount": VenueRejected,
    "EFunding:Insufficient funds": VenueRejected,
    "EAPI:Invalid key": VenueAccessRefused,
    "EAPI:Invalid signature": VenueAccessRefused,
    # A refused nonce means the request was not processed: retrying with a new nonce is safe.
    "EAPI:Invalid nonce": VenueUnavailable,
    "Missing API-Key": VenueAccessRefused,
    "EAPI:Rate limit exceeded": VenueUnavailable,
    "EService:Deadline elapsed": VenueOutcomeUnknown,
    "EGeneral:Internal error": VenueOutcomeUnknown,
    "EDatabase:Internal error": VenueOutcomeUnknown,
    "EService:Unavailable": VenueOutcomeUnknown,
}


def sign(secret: str, path_with_query: str, nonce: str, body: bytes = b"") -> str:
    """API-Sign: base64(HMAC-SHA512(b64decode(secret), path + SHA256(nonce + body))).

    ``body`` is empty for GET/DELETE ("nonce only") and the exact JSON bytes sent for POST.
    """
    digest = hashlib.sha256(nonce.encode() + body).digest()
    mac = hmac.new(base64.b64decode(secret), path_with_query.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise VenueUnavailable(f"Kraken Embed sent an unreadable amount {value!r}") from exc


def _date(value: Any) -> datetime | None:
    """A transaction's ``date`` ("2023-03-13T12:34:56Z"); None if unreadable."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _places(text: str) -> int:
    return len(text.partition(".")[2])


class KrakenEmbedClient:
    kind: ClassVar[str] = "kraken_embed"
    supports_cancel: ClassVar[bool] = False  # Embed documents no withdrawal cancel
    supports_saved_addresses: ClassVar[bool] = True
    supports_quote: ClassVar[bool] = True
    idempotent_submit: ClassVar[bool] = True
    supports_fee_cap: ClassVar[bool] = True
    request_id_in_history: ClassVar[bool] = False
    quote_creates_request: ClassVar[bool] = False  # a preview creates nothing

    def __init__(
        self,
        *,
        http: httpx.Client,
        credentials: VenueCredentials,
        options: VenueSettings,
        nonces: DatabaseNonceSource,
        purpose: Purpose | None = None,  # Embed documents no call counter to rank calls on
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._options = options
        self._nonces = nonces
        self._scope = nonce_scope(self.kind, credentials.api_key)
        self._journal = SubmitJournal(self.kind)

    def __repr__(self) -> str:
        return f"KrakenEmbedClient(base_url={str(self._http.base_url)!r})"

    # --- the VenueClient interface --------------------------------------------------------

    def quote(self, spec: WithdrawalSpec) -> Quote:
        method = self._method(spec)
        fee_token = str(method.get("fee_token") or "")
        amounts = [method[k]["amount"] for k in ("fee", "minimum", "maximum") if k in method]
        precision = max((_places(str(a)) for a in amounts), default=None)
        body = self._withdraw_body(
            spec, fee_token=fee_token, precision=precision, token=str(uuid.uuid4()), preview=True
        )
        # A preview creates nothing, so a failure on it is as safe to retry as a read.
        result = self._call("POST", WITHDRAWALS_PATH, body=body, mutating=False)
        fee = _decimal(result["fee"])
        return Quote(
            fee=fee,
            net_amount=_decimal(result["amount"]),
            limit=_decimal(method["maximum"]["amount"]) if "maximum" in method else None,
            minimum=_decimal(method["minimum"]["amount"]) if "minimum" in method else None,
            precision=precision,
            token=str(result.get("fee_token") or fee_token),
            expires_at=datetime.now(UTC) + FEE_TOKEN_LIFETIME,
            fee_asset=str(method.get("fee", {}).get("asset", spec.asset)),
            raw={"method": method, "preview": result},
        )

    def submit(self, spec: WithdrawalSpec, *, quote: Quote | None) -> SubmitReceipt:
        body = self._withdraw_body(
            spec,
            fee_token=quote.token if quote else "",
            precision=quote.precision if quote else None,
            token=str(spec.request_id),
            preview=False,
        )
        entry = self._journal.mark_sent(spec.request_id)
        result = self._call("POST", WITHDRAWALS_PATH, body=body, mutating=True)
        reference = str(result.get("ref_id") or "")
        if not reference:
            raise VenueOutcomeUnknown("Kraken Embed accepted the withdrawal but sent no ref_id")
        self._journal.mark_reference(spec.request_id, reference, entry=entry)
        return SubmitReceipt(reference=reference, raw=result)

    def status(self, spec: WithdrawalSpec, *, reference: str) -> VenueStatus:
        row = self._search(lambda tx: tx.get("ref_id") == reference)
        if row is None:
            # The history may lag behind the submit answer; the withdrawal is not lost.
            raise VenueUnavailable(
                f"Withdrawal {reference} is not in Kraken Embed's transaction history yet",
                retry_after=30.0,
            )
        return self._status_of(row)

    def find(self, spec: WithdrawalSpec) -> VenueStatus | None:
        """This withdrawal in ``/b2b/funds/transactions``, or None if Kraken has no trace.

        Read before anything is re-sent. The ``ref_id`` recorded when Kraken answered our
        submission is the exact link; without it, a row of the same asset, the requested or
        net amount, dated near one of our recorded sends, that no other withdrawal of ours
        holds. Two such rows: :class:`VenueAmbiguous`. Never sent by us: None.
        """
        sent = self._journal.sent_times(spec.request_id)
        if not sent:
            return None
        reference = self._journal.reference(spec.request_id)
        if reference:
            return self.status(spec, reference=reference)
        amounts = {spec.amount}
        fee = self._method(spec).get("fee", {}).get("amount")
        if fee is not None:
            amounts.add(spec.amount - _decimal(fee))
        earliest = min(sent) - RECONCILE_WINDOW
        candidates = []
        for row in self._rows():
            moment = _date(row.get("date"))
            if moment is None or moment < earliest:
                continue
            near = any(abs(moment - at) <= RECONCILE_WINDOW for at in sent)
            if near and row.get("asset") == spec.asset and _decimal(row.get("amount")) in amounts:
                candidates.append(row)
        claimed = self._journal.claimed_by_others(
            spec.request_id, [str(row.get("ref_id")) for row in candidates]
        )
        candidates = [row for row in candidates if str(row.get("ref_id")) not in claimed]
        if len(candidates) > 1:
            refs = ", ".join(str(row.get("ref_id")) for row in candidates)
            raise VenueAmbiguous(
                f"{len(candidates)} Kraken Embed withdrawals ({refs}) match {spec.amount} "
                f"{spec.asset} near our submission; people must decide"
            )
        if not candidates:
            return None
        self._journal.mark_reference(spec.request_id, str(candidates[0].get("ref_id")))
        return self._status_of(candidates[0])

    def statuses(self, spec: WithdrawalSpec, references: Sequence[str]) -> dict[str, VenueStatus]:
        """Many withdrawals' status from one walk of the transactions (status refresh,
        batched). References not listed (yet) are missing from the answer."""
        wanted, found = set(references), {}
        for row in self._rows():
            if row.get("ref_id") in wanted:
                found[str(row["ref_id"])] = self._status_of(row)
                if len(found) == len(wanted):
                    break
        return found

    def traces(self, spec: WithdrawalSpec) -> list[VenueStatus]:
        """Rows whose ``ref_id`` our journal recorded for this request: the documented rows
        carry no token of ours, so the journal is the only exact link."""
        references = set(self._journal.references(spec.request_id))
        if not references:
            return []
        return [self._status_of(row) for row in self._rows() if row.get("ref_id") in references]

    def cancel(self, spec: WithdrawalSpec, *, reference: str) -> bool:
        raise NotImplementedError("Kraken Embed documents no withdrawal cancel")

    def saved_addresses(self, *, asset: str = "") -> list[SavedAddress]:
        params = {"asset": asset} if asset else {}
        result = self._call("GET", ADDRESSES_PATH, params=params, mutating=False)
        return [
            SavedAddress(
                key=str(item["key"]),
                asset=str(item.get("asset", "")),
                address=str(item.get("address", "")),
                memo=str(item.get("memo") or item.get("tag") or ""),
                network=str(item.get("network", "")),
                verified=bool(item.get("verified", True)),
            )
            for item in result.get("addresses", [])
        ]

    def check_connection(self) -> str:
        count = len(self.saved_addresses())
        who = f"user {self._credentials.account}" if self._credentials.account else "master account"
        return f"Kraken Embed: {who}, {count} saved withdrawal address(es)"

    def close(self) -> None:
        self._http.close()

    # --- helpers --------------------------------------------------------------------------

    def _method(self, spec: WithdrawalSpec) -> dict[str, Any]:
        path = METHODS_PATH + urlquote(spec.asset, safe="")
        result = self._call("GET", path, mutating=False)
        methods = result.get("methods", [])
        for method in methods:
            if str(method.get("network", "")).casefold() == spec.network.casefold():
                return method
        networks = ", ".join(str(m.get("network")) for m in methods) or "none"
        raise VenueRejected(
            f"Kraken Embed has no {spec.asset} withdrawal method on network {spec.network!r} "
            f"(available: {networks})"
        )

    def _withdraw_body(
        self,
        spec: WithdrawalSpec,
        *,
        fee_token: str,
        precision: int | None,
        token: str,
        preview: bool,
    ) -> dict[str, Any]:
        if precision is not None and spec.amount != spec.amount.quantize(
            Decimal(1).scaleb(-precision)
        ):
            raise VenueRejected(
                f"Amount {spec.amount} has more than {precision} decimal places for {spec.asset}"
            )
        body: dict[str, Any] = {
            "asset": spec.asset,
            "key": spec.venue_key,
            "amount": amount_str(spec.amount, precision),
            "idempotency_token": token,
        }
        if fee_token:
            body["fee_token"] = fee_token
        body["preview"] = preview
        return body

    def _rows(self) -> Iterator[dict[str, Any]]:
        """Withdrawal rows of ``/b2b/funds/transactions``, page by page (in the venue's order,
        which is not documented, so every page up to MAX_PAGES is read when needed)."""
        cursor = ""
        for _ in range(MAX_PAGES):
            params = {"type": "withdrawal", "page_size": str(PAGE_SIZE)}
            if cursor:
                params["cursor"] = cursor
            result = self._call("GET", TRANSACTIONS_PATH, params=params, mutating=False)
            for row in result.get("transactions", []):
                if isinstance(row, dict) and row.get("type", "withdrawal") == "withdrawal":
                    yield row
            cursor = str(result.get("next_cursor") or "")
            if not cursor:
                return

    def _search(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((row for row in self._rows() if match(row)), None)

    def _status_of(self, row: dict[str, Any]) -> VenueStatus:
        raw_status = str(row.get("status", ""))
        state = STATUS_MAP.get(raw_status.lower())
        if state is None:
            # An undocumented status cannot be read as final either way.
            raise VenueUnavailable(f"Kraken Embed reported an unknown status {raw_status!r}")
        return VenueStatus(
            reference=str(row.get("ref_id", "")),
            state=state,
            raw_status=raw_status,
            raw=row,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        mutating: bool,
    ) -> dict[str, Any]:
        query = dict(params or {})
        if self._credentials.account:
            query["user"] = self._credentials.account
        target = f"{path}?{urlencode(query)}" if query else path
        content = compact_json(body) if body is not None else b""
        headers = {"API-Key": self._credentials.api_key, "Payward-Version": API_VERSION}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(method, target, content=content, headers=headers)
        # One request in flight per key: a later nonce must never overtake an earlier one.
        with key_turn(self._scope):
            # Sign what goes on the wire: the path and query exactly as httpx encoded them.
            nonce = str(self._nonces.next(self._scope))
            request.headers["API-Nonce"] = nonce
            try:
                request.headers["API-Sign"] = sign(
                    self._credentials.api_secret,
                    request.url.raw_path.decode("ascii"),
                    nonce,
                    content,
                )
            except (binascii.Error, ValueError) as exc:
                raise VenueAccessRefused(
                    "The Kraken Embed API secret is not valid base64."
                ) from exc
            response = send(self._http, request, mutating=mutating)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        errors = payload.get("error") if isinstance(payload, dict) else None
        if response.is_success and not errors:
            result = payload.get("result") if isinstance(payload, dict) else None
            if isinstance(result, dict):
                return result
            if mutating:
                raise VenueOutcomeUnknown(
                    f"Kraken Embed answered HTTP {response.status_code} without a result",
                    http_status=response.status_code,
                )
            raise VenueUnavailable(
                f"Kraken Embed answered HTTP {response.status_code} without a result",
                http_status=response.status_code,
            )
        self._raise_error(response, errors, mutating=mutating)

    def _raise_error(self, response: httpx.Response, errors: Any, *, mutating: bool) -> NoReturn:
        """Map one failed answer to its outcome, by error string first, then by HTTP status."""
        messages = [str(e) for e in errors] if isinstance(errors, list) else []
        message = "; ".join(messages) or f"Kraken Embed error HTTP {response.status_code}"
        code = messages[0] if messages else ""
        status = response.status_code
        outcome = next((ERROR_OUTCOMES[m] for m in messages if m in ERROR_OUTCOMES), None)
        if status == 429 or outcome is VenueUnavailable:
            raise VenueUnavailable(
                message,
                code=code,
                http_status=status,
                retry_after=retry_after(response) or DEFAULT_RETRY_AFTER,
            )
        if status == 408 or status >= 500 or outcome is VenueOutcomeUnknown:
            server_error(response, mutating=mutating, message=message)
        if outcome is VenueQuoteRefused:
            raise VenueQuoteRefused(message, code=code, http_status=status)
        if status in (401, 403) or outcome is VenueAccessRefused:
            # "401 auth failed" (guide): our credentials, not any withdrawal, were refused.
            raise VenueAccessRefused(message, code=code, http_status=status)
        # Any other refusal (4xx bad data, an undocumented string) is permanent.
        raise VenueRejected(message, code=code, http_status=status)
