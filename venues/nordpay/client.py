"""Nord-Pay client (NOTES.md §5, venue-docs/nordpay-withdraw-funds.txt, SDK nordpay 1.3.1).

Wire facts, and the choices made where the venue is silent:

* Auth is one static key in ``X-API-KEY``; nothing is signed. It is the venue's API key
  (``credentials.api_key``, NOTES §7), a bearer credential encrypted like every other and never
  shown; Nord-Pay has no secret, so ``api_secret`` is not used. A 401 or 403 refuses the key,
  not a withdrawal (:class:`VenueAccessRefused`).
* Paths: the GitBook writes ``/balance/...``, SDK 1.3.1 writes ``/v1/balance/...``;
  ``options.path_prefix`` ("" or "/v1") chooses.
* The currency code carries the network (``USDTTRC20``): :data:`CURRENCIES` maps our
  (asset, network) to it, with the decimals the venue keeps for it.
* quote = ``GET withdraw/limits`` (minimum, maximum) + ``POST withdraw/request``, whose
  ``identifier`` holds until ``expires_at``. submit = ``POST withdraw/confirm {identifier}``,
  sent once and never retried (the SDK retries POSTs on 429/5xx: we do not).
* Amounts travel as strings. Answers carry them as JSON numbers (GitBook) or strings (SDK
  fixtures); both are parsed without ever making a float.
* Status and reconciliation read ``GET balance/withdraws`` (newest first). Nord-Pay carries no
  client id: :meth:`NordPayClient.find` takes the id the submit journal recorded, else a
  history entry of the same address and amount (the gross amount or net of its
  ``service_fee``: which one history shows is not documented, NOTES §7) created after our
  confirm, that no other withdrawal of ours holds; two such entries are ambiguous.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

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
    VenueQuoteRefused,
    VenueRejected,
    VenueSettings,
    VenueState,
    VenueStatus,
    VenueUnavailable,
    WithdrawalSpec,
    venue_fee,
)
from venues.journal import SubmitJournal
from venues.nonces import DatabaseNonceSource

# (asset, network) -> (Nord-Pay currency, decimal places). Codes are Nord-Pay's own (SDK live
# fixtures: balance, withdraw/limits); the places are those its balances are written with
# (``"USDTTRC20": "39.000000"``, ``"BTC": "0.00018000"``, ``"USDTBEP20": "40.7073000…"``).
CURRENCIES: dict[tuple[str, str], tuple[str, int]] = {
    ("USDT", "TRON"): ("USDTTRC20", 6),
    ("USDT", "BSC"): ("USDTBEP20", 18),
    ("USDT", "ETH"): ("USDTERC20", 6),
    ("USDC", "ETH"): ("USDCERC20", 6),
    ("BTC", "BTC"): ("BTC", 8),
    ("ETH", "ETH"): ("ETH", 18),
    ("TRX", "TRON"): ("TRX", 6),
    ("BNB", "BSC"): ("BNB", 18),
}
# Token-standard names people also write for those chains.
NETWORK_ALIASES = {"TRC20": "TRON", "BEP20": "BSC", "ERC20": "ETH", "BITCOIN": "BTC"}

# Every withdrawal status value Nord-Pay is known to write. Verified: "pending" (confirm
# answer), "processed" and "cancelled" (SDK 1.3.1 live fixture balance_withdraws.json). The
# rest are unverified spellings kept so that a final answer is never mistaken for "still
# moving". Nord-Pay has no client cancel: a "cancelled" withdrawal is one the venue's own
# admin declined ("waiting for admin approval"), so for us it failed and nothing was sent.
STATUS_MAP: dict[str, VenueState] = {
    "pending": VenueState.PENDING,
    "processing": VenueState.PENDING,
    "processed": VenueState.COMPLETED,
    "completed": VenueState.COMPLETED,
    "success": VenueState.COMPLETED,
    "failed": VenueState.FAILED,
    "rejected": VenueState.FAILED,
    "cancelled": VenueState.FAILED,
    "canceled": VenueState.FAILED,
}

# Every documented error string, and the outcome it means. A refusal by name is permanent,
# except "not available ... at this moment" (the venue says: later) and an expired request
# (the quote no longer holds: back for a new quote and approval, never a silent re-request).
ERROR_OUTCOMES: tuple[tuple[re.Pattern[str], type[VenueError]], ...] = (
    (re.compile(r"\S+ is not available for withdraw at this moment"), VenueUnavailable),
    (re.compile(r"Amount is less than minimum withdraw amount for \S+ \(.*\)"), VenueRejected),
    (re.compile(r"Withdraw request not found"), VenueRejected),
    (re.compile(r"Withdraw request expired"), VenueQuoteRefused),
    (re.compile(r"Not enough balance"), VenueRejected),
)
# Statuses whose answer is a refusal of the request as sent (SDK: BadRequest, Authentication,
# Forbidden, NotFound; 422 is FastAPI's validation error).
REFUSAL_STATUSES = frozenset({400, 401, 403, 404, 422})

HISTORY_PAGE = 200  # the SDK's documented maximum page size
HISTORY_MAX_PAGES = 50
# How far before our confirm a venue timestamp may lie and still be that confirm (clock skew).
CLOCK_SKEW = timedelta(seconds=120)


def _dec(value: Any) -> Decimal:
    """A venue number (JSON number kept as text, or string) as a Decimal."""
    if isinstance(value, bool) or value is None:
        raise InvalidOperation(value)
    return Decimal(str(value))


def _same_address(a: str, b: str) -> bool:
    # EVM addresses may come back in another letter case (EIP-55 checksum or not).
    return a == b or (a.lower().startswith("0x") and a.lower() == b.lower())


def _detail_text(detail: Any) -> str:
    """``detail`` as a sentence: a string as is, FastAPI's validation list item by item.

    Only ``loc`` and ``msg`` are used: a validation item's ``input`` may echo a header, and
    the X-API-KEY header must never reach a message.
    """
    if isinstance(detail, str):
        return detail.strip()
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [])
                msg = str(item.get("msg") or item.get("type") or "invalid")
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return ""


def error_text(payload: Any) -> str:
    """The venue's own message from either envelope (plain ``detail`` or ``success: false``)."""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error")
    if payload.get("success") is False and isinstance(error, dict):
        text = _detail_text(error.get("details")) or _detail_text(error.get("detail"))
        return text or _detail_text(error.get("message")) or _detail_text(error.get("type"))
    return _detail_text(payload.get("detail")) or _detail_text(payload.get("message"))


class NordPayClient:
    kind: ClassVar[str] = "nordpay"
    supports_cancel: ClassVar[bool] = False
    supports_saved_addresses: ClassVar[bool] = False
    supports_quote: ClassVar[bool] = True
    idempotent_submit: ClassVar[bool] = False
    supports_fee_cap: ClassVar[bool] = True
    request_id_in_history: ClassVar[bool] = False
    # Every quote creates a withdraw request at the venue: a requester's typing must not ask
    # for one, only an explicit "Get quote" (withdrawal_preview).
    quote_creates_request: ClassVar[bool] = True

    def __init__(
        self,
        *,
        http: httpx.Client,
        credentials: VenueCredentials,
        options: VenueSettings,
        nonces: DatabaseNonceSource,  # part of the common constructor; Nord-Pay has no nonce
        purpose: Purpose | None = None,  # Nord-Pay documents no call budget to rank calls on
    ) -> None:
        self._http = http
        self._key = credentials.api_key
        prefix = options.path_prefix.strip().rstrip("/")
        self._prefix = prefix if not prefix or prefix.startswith("/") else "/" + prefix
        self._journal = SubmitJournal(self.kind)

    def __repr__(self) -> str:
        return f"NordPayClient(base_url={str(self._http.base_url)!r}, prefix={self._prefix!r})"

    # --- the interface --------------------------------------------------------------------

    def quote(self, spec: WithdrawalSpec) -> Quote:
        currency, places = self._currency(spec)
        amount = self._wire_amount(spec, currency, places)
        limits = self._limits(currency)
        data = self._call(
            "POST",
            "/balance/withdraw/request",
            body={"currency": currency, "address": spec.address, "amount": amount},
            mutating=False,  # a request moves nothing; only its confirm does
        )
        try:
            identifier = str(data["identifier"])
            fee = _dec(data["service_fee"])
            quoted = _dec(data["amount"])
            expires_at = datetime.fromisoformat(str(data["expires_at"]))
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise VenueUnavailable("Nord-Pay answered the withdraw request unreadably") from exc
        if quoted != spec.amount or data.get("currency") != currency:
            raise VenueRejected(
                f"Nord-Pay quoted {quoted} {data.get('currency')} for a request of "
                f"{amount} {currency}"
            )
        return Quote(
            fee=fee,
            net_amount=spec.amount - fee,  # "Amount sent to the wallet = amount - service fee"
            limit=limits.get("max_amount"),
            minimum=limits.get("min_amount"),
            precision=places,
            token=identifier,
            expires_at=expires_at,
            fee_asset=spec.asset,
            raw=data,
        )

    def submit(self, spec: WithdrawalSpec, *, quote: Quote | None) -> SubmitReceipt:
        if quote is None or not quote.token:
            raise VenueRejected(
                "Nord-Pay pays only a confirmed withdraw request: a quote (its identifier) "
                "is required to submit."
            )
        currency, _ = self._currency(spec)
        self._check_quote_binds(spec, quote, currency)
        entry = self._journal.mark_sent(spec.request_id)
        data = self._call(
            "POST", "/balance/withdraw/confirm", body={"identifier": quote.token}, mutating=True
        )
        reference = data.get("id") if isinstance(data, dict) else None
        if not isinstance(reference, int) or isinstance(reference, bool):
            raise VenueOutcomeUnknown(
                "Nord-Pay answered the confirm without a withdrawal id; it may have accepted it"
            )
        self._journal.mark_reference(spec.request_id, str(reference), entry=entry)
        return SubmitReceipt(reference=str(reference), raw=data)

    def status(self, spec: WithdrawalSpec, *, reference: str) -> VenueStatus:
        currency, _ = self._currency(spec)
        for item in self._history(currency):
            if str(item.get("id")) == reference:
                return self._status(item)
        raise VenueUnavailable(f"Withdrawal {reference} is not in the Nord-Pay history (yet)")

    def find(self, spec: WithdrawalSpec) -> VenueStatus | None:
        sent_at = self._journal.sent_at(spec.request_id)
        if sent_at is None:
            return None  # we never sent a confirm for this request
        reference = self._journal.reference(spec.request_id)
        if reference:
            return self.status(spec, reference=reference)
        # The confirm's answer was lost: the history alone, from just before our first send.
        currency, _ = self._currency(spec)
        since = min(self._journal.sent_times(spec.request_id)) - CLOCK_SKEW
        candidates = []
        for item in self._history(currency):
            if self._created_at(item) < since:
                break
            if self._same_payload(item, spec):
                candidates.append(item)
        claimed = self._journal.claimed_by_others(
            spec.request_id, [str(item["id"]) for item in candidates]
        )
        candidates = [item for item in candidates if str(item["id"]) not in claimed]
        if len(candidates) > 1:
            ids = ", ".join(str(item["id"]) for item in candidates)
            raise VenueAmbiguous(
                f"Nord-Pay withdrawals {ids} could each be this withdrawal of {spec.amount} "
                f"{currency} to {spec.address}; people must decide"
            )
        if not candidates:
            return None
        self._journal.mark_reference(spec.request_id, str(candidates[0]["id"]))
        return self._status(candidates[0])

    def statuses(self, spec: WithdrawalSpec, references: Sequence[str]) -> dict[str, VenueStatus]:
        """Many withdrawals' status from one walk of the currency's history (status refresh,
        batched). References not listed (yet) are missing from the answer."""
        currency, _ = self._currency(spec)
        wanted, found = set(references), {}
        for item in self._history(currency):
            if str(item.get("id")) in wanted:
                found[str(item["id"])] = self._status(item)
                if len(found) == len(wanted):
                    break
        return found

    def traces(self, spec: WithdrawalSpec) -> list[VenueStatus]:
        references = set(self._journal.references(spec.request_id))
        if not references:
            return []
        currency, _ = self._currency(spec)
        return [
            self._status(item)
            for item in self._history(currency)
            if str(item.get("id")) in references
        ]

    def cancel(self, spec: WithdrawalSpec, *, reference: str) -> bool:
        raise NotImplementedError("Nord-Pay documents no way to cancel a withdrawal")

    def saved_addresses(self, *, asset: str = "") -> list[SavedAddress]:
        raise NotImplementedError("Nord-Pay documents no saved withdrawal addresses")

    def check_connection(self) -> str:
        data = self._call("GET", "/balance/", mutating=False)
        balances = data.get("balances", data) if isinstance(data, dict) else data
        if isinstance(balances, dict):
            funded = [name for name, value in balances.items() if str(value) not in {"0", ""}]
        elif isinstance(balances, list):
            funded = [
                str(entry.get("currency", "?")) for entry in balances if isinstance(entry, dict)
            ]
        else:
            raise VenueUnavailable("Nord-Pay answered the balance call unreadably")
        shown = ", ".join(sorted(funded)[:5]) or "none funded"
        return f"Nord-Pay: {len(balances)} balances ({shown})"

    def close(self) -> None:
        self._http.close()

    # --- helpers --------------------------------------------------------------------------

    def _currency(self, spec: WithdrawalSpec) -> tuple[str, int]:
        network = spec.network.strip().upper()
        key = (spec.asset.strip().upper(), NETWORK_ALIASES.get(network, network))
        if key not in CURRENCIES:
            raise VenueRejected(f"Nord-Pay has no currency for {spec.asset} on {spec.network}")
        return CURRENCIES[key]

    @staticmethod
    def _wire_amount(spec: WithdrawalSpec, currency: str, places: int) -> str:
        # Refuse rather than round: the approved amount is the one that must leave.
        if spec.amount != spec.amount.quantize(Decimal(1).scaleb(-places)):
            raise VenueRejected(
                f"{spec.amount} {currency} has more than {places} decimal places, "
                f"the precision Nord-Pay keeps for {currency}"
            )
        return amount_str(spec.amount, places)

    def _check_quote_binds(self, spec: WithdrawalSpec, quote: Quote, currency: str) -> None:
        """The identifier alone decides what is paid: make sure it is this payload's."""
        raw = quote.raw or {}
        try:
            same = (
                raw.get("currency") == currency
                and _same_address(str(raw.get("address", "")), spec.address)
                and _dec(raw.get("amount")) == spec.amount
            )
        except InvalidOperation:
            same = False
        if not same:
            raise VenueQuoteRefused(
                "The Nord-Pay withdraw request was made for another currency, address or "
                "amount than this withdrawal: a new quote is needed"
            )

    def _limits(self, currency: str) -> dict[str, Decimal]:
        data = self._call("GET", "/balance/withdraw/limits", mutating=False)
        for entry in data if isinstance(data, list) else []:
            if isinstance(entry, dict) and entry.get("currency") == currency:
                try:
                    return {
                        name: _dec(entry[name])
                        for name in ("min_amount", "max_amount")
                        if entry.get(name) is not None
                    }
                except InvalidOperation as exc:
                    raise VenueUnavailable("Nord-Pay answered its limits unreadably") from exc
        return {}

    def _history(self, currency: str) -> Iterator[dict[str, Any]]:
        """The withdrawal history of ``currency``, newest first.

        A withdrawal created while we page shifts later pages by one: an entry may be seen
        twice, never missed, which is harmless to a lookup.
        """
        offset = 0
        for _ in range(HISTORY_MAX_PAGES):
            page = self._call(
                "GET",
                "/balance/withdraws",
                params={
                    "currency": currency,
                    "limit": HISTORY_PAGE,
                    "offset": offset,
                    "sort": "created_at:desc",
                },
                mutating=False,
            )
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise VenueUnavailable("Nord-Pay answered its withdrawal history unreadably")
            yield from (item for item in items if isinstance(item, dict))
            offset += len(items)
            if not items or offset >= int(page.get("total") or 0):
                return

    @staticmethod
    def _created_at(item: dict[str, Any]) -> datetime:
        try:
            created = datetime.fromisoformat(str(item["created_at"]))
        except (KeyError, ValueError) as exc:
            raise VenueUnavailable("Nord-Pay history entry without a readable date") from exc
        return created if created.tzinfo else created.replace(tzinfo=UTC)

    @staticmethod
    def _same_payload(item: dict[str, Any], spec: WithdrawalSpec) -> bool:
        """Same address, and the amount either as requested or net of the entry's fee."""
        if not isinstance(item.get("id"), int) or isinstance(item.get("id"), bool):
            return False
        try:
            amount = _dec(item.get("amount"))
            fee = _dec(item.get("service_fee") or 0)
        except InvalidOperation:
            return False
        same_address = _same_address(str(item.get("address", "")), spec.address)
        return same_address and spec.amount in (amount, amount + fee)

    @staticmethod
    def _status(item: dict[str, Any]) -> VenueStatus:
        raw_status = str(item.get("status", ""))
        state = STATUS_MAP.get(raw_status.lower())
        detail = ""
        if state is None:
            # Never conclude from a word we do not know: a wrong "failed" could pay twice.
            state = VenueState.PENDING
            detail = f"Nord-Pay status {raw_status!r} is not one we know; still tracking it"
        return VenueStatus(
            reference=str(item.get("id")),
            state=state,
            raw_status=raw_status,
            txid=str(item.get("tx_hash") or ""),
            detail=detail,
            raw=item,
            fee=venue_fee(item.get("service_fee")),
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        mutating: bool,
    ) -> Any:
        """One request; the answer's data (unwrapped from ``success: true``), or an outcome."""
        if not self._key:
            raise VenueAccessRefused(
                "No Nord-Pay API key is configured for this venue account (the X-API-KEY goes "
                "in the venue's API key field)"
            )
        request = self._http.build_request(
            method,
            self._prefix + path,
            params=params,
            content=compact_json(body) if body is not None else None,
            headers={
                "X-API-KEY": self._key,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        response = send(self._http, request, mutating=mutating)
        try:
            # parse_float=str: an amount never passes through a float, and raw stays JSON.
            payload = json.loads(response.content, parse_float=str)
        except ValueError:
            payload = None
        failed = isinstance(payload, dict) and payload.get("success") is False
        if response.is_success and not failed:
            if isinstance(payload, dict) and payload.get("success") is True and "data" in payload:
                payload = payload["data"]
            if payload is None:
                message = f"Nord-Pay answered {method} {path} unreadably"
                if mutating:
                    raise VenueOutcomeUnknown(message + "; it may have accepted the request")
                raise VenueUnavailable(message)
            return payload
        raise self._failure(response, payload, mutating=mutating)

    @staticmethod
    def _failure(response: httpx.Response, payload: Any, *, mutating: bool) -> VenueError:
        """The outcome of a refused call: the one place venue errors are mapped."""
        status = response.status_code
        text = error_text(payload) or f"HTTP {status}"
        if status == 429:
            return VenueUnavailable(text, retry_after=retry_after(response), http_status=status)
        if status >= 500 or status == 408:
            server_error(response, mutating=mutating, message=f"Nord-Pay HTTP {status}: {text}")
        if status in (401, 403):
            # SDK: AuthenticationError, ForbiddenError. The key was refused, not a withdrawal.
            return VenueAccessRefused(text, http_status=status)
        for pattern, outcome in ERROR_OUTCOMES:
            if pattern.fullmatch(text):
                return outcome(text, http_status=status)
        if status in REFUSAL_STATUSES or response.is_success:
            return VenueRejected(text, http_status=status)
        message = f"Nord-Pay answered HTTP {status}: {text}"
        if mutating:
            return VenueOutcomeUnknown(message + "; it may have accepted the request")
        return VenueUnavailable(message, http_status=status)
