"""Kraken spot funding client (venue-docs/NOTES.md §1, kraken-spot-funding-via-api.txt).

Every call is a signed ``POST /0/private/<Call>`` with a form-urlencoded body that starts with
``nonce=``; answers are HTTP 200 ``{"error": [...], "result": ...}``, a non-empty ``error``
meaning failure. ``Withdraw`` takes no client id, so reconciliation (:meth:`KrakenClient.find`)
reads the refid our submit journal recorded, else matches on asset, amount, fee, time and the
destination address as Kraken prints it (see there).

Every call on one key takes its turn (:func:`venues.budget.key_turn`: the nonce of NOTES §1.2
must arrive in order) and is counted against the key's call budget (NOTES §1.3), spent in
order of importance (:class:`venues.budget.Purpose`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.core.cache import cache

from ..budget import BudgetRule, CallBudget, Purpose, cache_call, key_turn
from ..http import amount_str, retry_after, send, server_error
from ..interface import (
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
from ..journal import SubmitJournal
from ..nonces import DatabaseNonceSource, nonce_scope

API_PREFIX = "/0/private/"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"

# Every documented WithdrawStatus ``status`` and ``status-prop`` value (NOTES §1.5). The status
# gives the state; a status-prop that ends the withdrawal (canceled, return) overrides it, the
# others only qualify a withdrawal that is still moving.
STATUS_MAP: dict[str, VenueState] = {
    "Initial": VenueState.PENDING,
    "Pending": VenueState.PENDING,
    "Settled": VenueState.PENDING,  # on its way on chain, not yet confirmed
    "Success": VenueState.COMPLETED,
    "Failure": VenueState.FAILED,
    "cancel-pending": VenueState.PENDING,  # cancel asked for, not yet granted
    "canceled": VenueState.CANCELLED,
    "cancel-denied": VenueState.PENDING,  # the withdrawal goes on
    "onhold": VenueState.PENDING,
    "return": VenueState.FAILED,  # Kraken sent the funds back: nothing arrived
}
_PROP_OVERRIDES = frozenset({VenueState.CANCELLED, VenueState.FAILED})

# Decimal places Kraken accepts per asset. The funding calls carry no precision field, so this
# is our own table: 8 (satoshi-like) by default, 6 where the chain's own unit is 10^-6
# (XRP drops, USDT/USDC tokens). The sandbox refuses finer amounts with EFunding:Invalid amount.
PRECISION: dict[str, int] = {
    "BTC": 8,
    "XBT": 8,
    "XXBT": 8,
    "ETH": 8,
    "XETH": 8,
    "USDT": 6,
    "USDC": 6,
    "XRP": 6,
    "XXRP": 6,
}
DEFAULT_PRECISION = 8

# Rate limits (NOTES §1.3): Kraken answers HTTP 200 with no Retry-After; one counter unit decays
# in 1 / 0.33 s on the Starter tier, the slowest one, so that is how long the next call waits.
STARTER_DECAY_PER_SECOND = 0.33
# The call counter per tier (NOTES §1.3). settings.VENUE_KRAKEN_RATE_TIER names the key's tier
# (default: the slowest, so a key on a faster one merely has headroom to spare); "" turns our
# budget off, for accounts without a counter (benchmarks).
RATE_TIERS: dict[str, BudgetRule] = {
    "starter": BudgetRule(capacity=15, decay_per_second=STARTER_DECAY_PER_SECOND),
    "intermediate": BudgetRule(capacity=20, decay_per_second=0.5),
    "pro": BudgetRule(capacity=20, decay_per_second=1.0),
}
RATE_LIMIT_RETRY_SECONDS = round(1 / STARTER_DECAY_PER_SECOND, 2)
THROTTLED_PREFIX = "EService: Throttled:"

# The one place where Kraken's documented errors (NOTES §1.4) become outcomes. Unavailable means
# Kraken refused before doing anything, so a retry (with a fresh nonce) is safe.
ERROR_OUTCOMES: dict[str, type[VenueError]] = {
    "EAPI:Rate limit exceeded": VenueUnavailable,
    "EAPI:Invalid nonce": VenueUnavailable,  # refused before processing; next call, next nonce
    "EService:Unavailable": VenueUnavailable,
    "EService:Busy": VenueUnavailable,
    "EGeneral:Temporary lockout": VenueUnavailable,
    # Our credentials or permissions were refused: nothing about any withdrawal follows.
    "EAPI:Invalid key": VenueAccessRefused,
    "EAPI:Invalid signature": VenueAccessRefused,
    "EGeneral:Permission denied": VenueAccessRefused,
    # "Unexpected server-side error; retry with backoff" (Kraken's catalogue, NOTES §7): after
    # a Withdraw it may have been processed, so it is never a refusal.
    "EGeneral:Internal error": VenueOutcomeUnknown,
    "EDatabase:Internal error": VenueOutcomeUnknown,
    "EGeneral:Invalid arguments": VenueRejected,
    "EFunding:Unknown withdraw key": VenueRejected,
    "EFunding:Invalid amount": VenueRejected,
    "EFunding:Insufficient funds": VenueRejected,
    "EFunding:Max fee exceeded": VenueQuoteRefused,  # the fee rose above the quote: requote
    "EFunding:Invalid withdrawal address": VenueRejected,
    "EFunding:Unknown asset": VenueRejected,
    "EFunding:Too many addresses": VenueRejected,
    "EFunding:Invalid reference id": VenueRejected,
    "EFunding:Unknown reference id": VenueRejected,
    "EFunding:No funding method": VenueRejected,
}

METHODS_CACHE_SECONDS = 300

# find(): how far a WithdrawStatus row's ``time`` may lie from our submission attempt and still
# be that attempt (clock skew between us and Kraken plus the time the request was in flight).
RECONCILE_WINDOW_SECONDS = 300


def sign(uri_path: str, nonce: int | str, body: bytes | str, secret_b64: str) -> str:
    """``API-Sign``: HMAC-SHA512(b64decode(secret), path + SHA256(nonce + body)), base64.

    ``body`` is the exact request body, which itself contains ``nonce=`` (NOTES §1.1).
    """
    raw = body if isinstance(body, bytes) else body.encode()
    digest = hashlib.sha256(str(nonce).encode() + raw).digest()
    key = base64.b64decode(secret_b64, validate=True)
    mac = hmac.new(key, uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def _throttled_wait(error: str) -> float:
    """``EService: Throttled: <unix ts>`` names the moment to come back."""
    try:
        until = float(error.removeprefix(THROTTLED_PREFIX).strip())
    except ValueError:
        return RATE_LIMIT_RETRY_SECONDS
    return max(until - time.time(), 1.0)


def error_outcome(error: str, *, mutating: bool) -> VenueError:
    """The outcome one Kraken error string implies; the message is Kraken's text verbatim."""
    if error.startswith(THROTTLED_PREFIX):
        return VenueUnavailable(error, code=error, retry_after=_throttled_wait(error))
    # Invalid arguments carries the field after a colon ("...:beneficiary_recipient").
    base = next((known for known in ERROR_OUTCOMES if error.startswith(known)), None)
    outcome = ERROR_OUTCOMES.get(base) if base is not None else None
    if outcome is VenueUnavailable:
        wait = RATE_LIMIT_RETRY_SECONDS if base == "EAPI:Rate limit exceeded" else None
        return VenueUnavailable(error, code=error, retry_after=wait)
    server_side = outcome is VenueOutcomeUnknown
    if server_side or (outcome is None and error.startswith("EService:")):
        # Server-side trouble (and an undocumented service error, e.g. a deadline elapsed) may
        # come after processing: unknown after a mutating call, merely unavailable after a read.
        if mutating:
            return VenueOutcomeUnknown(error + "; it may have accepted the request", code=error)
        return VenueUnavailable(error, code=error)
    return (outcome or VenueRejected)(error, code=error)


_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def canonical_address(address: str) -> str:
    """An address in its network's canonical form: EVM addresses (hex, case only a checksum)
    in lower case, as Kraken prints them; every other form is case-sensitive and kept."""
    address = address.strip()
    return address.lower() if _EVM_ADDRESS.fullmatch(address) else address


def state_of(status: str, prop: str = "") -> VenueState:
    """A WithdrawStatus row's state from its ``status`` and optional ``status-prop``.

    An undocumented value keeps the withdrawal pending: we never conclude on a guess.
    """
    state = STATUS_MAP.get(status, VenueState.PENDING)
    prop_state = STATUS_MAP.get(prop) if prop else None
    if prop_state in _PROP_OVERRIDES:
        return prop_state
    return state


def _decimal(value: Any, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise VenueUnavailable(f"Kraken answered an unreadable {what}: {value!r}") from exc


class KrakenClient:
    kind: ClassVar[str] = "kraken"
    supports_cancel: ClassVar[bool] = True
    supports_saved_addresses: ClassVar[bool] = True
    supports_quote: ClassVar[bool] = True
    idempotent_submit: ClassVar[bool] = False
    supports_fee_cap: ClassVar[bool] = True
    request_id_in_history: ClassVar[bool] = False
    quote_creates_request: ClassVar[bool] = False  # WithdrawInfo is a read

    def __init__(
        self,
        *,
        http: httpx.Client,
        credentials: VenueCredentials,
        options: VenueSettings,  # nothing Kraken-specific to configure
        nonces: DatabaseNonceSource,
        purpose: Purpose | None = None,
    ) -> None:
        self._http = http
        self._api_key = credentials.api_key
        self._secret = credentials.api_secret
        self._nonces = nonces
        self._nonce_scope = nonce_scope(self.kind, credentials.api_key)
        self._purpose = purpose
        tier = settings.VENUE_KRAKEN_RATE_TIER
        self._budget = CallBudget(self._nonce_scope, RATE_TIERS[tier]) if tier else None

    def __repr__(self) -> str:  # never let a key or secret reach a log through repr()
        return f"<KrakenClient {self._http.base_url}>"

    # --- wire -----------------------------------------------------------------------------

    def _call(self, call: str, params: dict[str, str], *, mutating: bool) -> Any:
        """One signed POST; returns ``result`` or raises the outcome Kraken's answer implies."""
        with key_turn(self._nonce_scope):
            if self._budget is not None:
                # A withdrawal or cancel is never held back behind the reads that led to it.
                ranked = mutating and self._purpose is not None
                self._budget.spend(1, Purpose.SUBMIT if ranked else self._purpose)
            response = self._send(call, params, mutating=mutating)
        return self._result(call, response, mutating=mutating)

    def _send(self, call: str, params: dict[str, str], *, mutating: bool) -> httpx.Response:
        path = API_PREFIX + call
        nonce = self._nonces.next(self._nonce_scope)
        body = urlencode({"nonce": str(nonce), **params}).encode()
        try:
            signature = sign(path, nonce, body, self._secret)
        except (binascii.Error, ValueError) as exc:
            raise VenueAccessRefused("The Kraken API secret is not valid base64.") from exc
        request = self._http.build_request(
            "POST",
            path,
            content=body,
            headers={
                "API-Key": self._api_key,
                "API-Sign": signature,
                "Content-Type": FORM_CONTENT_TYPE,
            },
        )
        return send(self._http, request, mutating=mutating)

    def _result(self, call: str, response: httpx.Response, *, mutating: bool) -> Any:
        if response.status_code >= 500 or response.status_code == 408:
            server_error(response, mutating=mutating, message=f"Kraken {call}: HTTP error")
        if response.status_code == 429:
            raise VenueUnavailable(
                f"Kraken {call}: rate limited (HTTP 429)",
                http_status=429,
                retry_after=retry_after(response) or RATE_LIMIT_RETRY_SECONDS,
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if response.is_success:
                # Not Kraken's envelope: whatever answered, the call may have been processed.
                server_error(response, mutating=mutating, message=f"Kraken {call}: unreadable")
            raise VenueRejected(
                f"Kraken {call} refused with HTTP {response.status_code}",
                http_status=response.status_code,
            )
        # "W..." entries are warnings (NOTES §1.4); only "E..." entries mean failure.
        errors = [e for e in payload.get("error") or [] if not str(e).startswith("W")]
        if errors:
            if str(errors[0]) == "EAPI:Rate limit exceeded" and self._budget is not None:
                self._budget.exhausted()  # Kraken counts calls we did not see: trust its count
            raise error_outcome(str(errors[0]), mutating=mutating)
        if not response.is_success:
            raise VenueRejected(
                f"Kraken {call} refused with HTTP {response.status_code}",
                http_status=response.status_code,
            )
        return payload.get("result")

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def precision(asset: str) -> int:
        return PRECISION.get(asset.upper(), DEFAULT_PRECISION)

    def _amount(self, spec: WithdrawalSpec) -> str:
        """The amount as sent; refused here, before any call, if Kraken could not take it
        exactly (truncating it would pay something other than what was approved)."""
        places = self.precision(spec.asset)
        text = amount_str(spec.amount, places)
        if spec.amount <= 0 or Decimal(text) != spec.amount:
            raise VenueRejected(
                f"Amount {spec.amount} is not a positive amount with at most {places} "
                f"decimal places, as Kraken takes for {spec.asset}."
            )
        return text

    def _methods(self, asset: str) -> list[dict[str, Any]]:
        """WithdrawMethods of ``asset`` ("" for all), kept a few minutes: methods and their
        minimums rarely change, and each call costs a unit of the key's counter."""
        key = f"venues:kraken:methods:{self._nonce_scope}:{asset}"
        methods = cache_call(cache.get, key)
        if not isinstance(methods, list):
            params = {"asset": asset} if asset else {}
            methods = self._call("WithdrawMethods", params, mutating=False)
            if not isinstance(methods, list):
                raise VenueUnavailable("Kraken answered WithdrawMethods in an unexpected shape.")
            cache_call(cache.set, key, methods, timeout=METHODS_CACHE_SECONDS)
        return methods

    def _rows(self, asset: str, *, start: int | None = None) -> list[dict[str, Any]]:
        params = {"asset": asset}
        if start is not None:
            params["start"] = str(start)  # bounds the 500 rows to the time we care about
        result = self._call("WithdrawStatus", params, mutating=False)
        if not isinstance(result, list):
            raise VenueUnavailable("Kraken answered WithdrawStatus in an unexpected shape.")
        return [row for row in result if isinstance(row, dict)]

    @staticmethod
    def _to_status(row: dict[str, Any]) -> VenueStatus:
        status = str(row.get("status", ""))
        prop = str(row.get("status-prop") or "")
        return VenueStatus(
            reference=str(row.get("refid", "")),
            state=state_of(status, prop),
            raw_status=f"{status} ({prop})" if prop else status,
            txid=str(row.get("txid") or ""),
            detail=prop,
            raw=row,
            fee=venue_fee(row.get("fee")),
        )

    # --- VenueClient ----------------------------------------------------------------------

    def quote(self, spec: WithdrawalSpec) -> Quote:
        amount = self._amount(spec)
        info = self._call(
            "WithdrawInfo",
            {"asset": spec.asset, "key": spec.venue_key, "amount": amount},
            mutating=False,
        )
        methods = self._methods(spec.asset)
        if not isinstance(info, dict):
            raise VenueUnavailable("Kraken answered WithdrawInfo in an unexpected shape.")
        # The minimum is per method: the one WithdrawInfo names, else the spec's network.
        method = next((m for m in methods if m.get("method") == info.get("method")), None)
        method = method or next((m for m in methods if m.get("network") == spec.network), None)
        minimum = _decimal(method["minimum"], "minimum") if method else None
        return Quote(
            fee=_decimal(info.get("fee"), "fee"),
            net_amount=_decimal(info.get("amount"), "net amount"),
            limit=_decimal(info.get("limit"), "limit"),
            minimum=minimum,
            precision=self.precision(spec.asset),
            fee_asset=spec.asset,
            raw=info,
        )

    def submit(self, spec: WithdrawalSpec, *, quote: Quote | None) -> SubmitReceipt:
        params = {"asset": spec.asset, "key": spec.venue_key, "amount": self._amount(spec)}
        if spec.address:
            params["address"] = spec.address  # Kraken checks it against the saved key
        if quote is not None and quote.fee is not None:
            params["max_fee"] = amount_str(quote.fee)
        # Remember when this request was sent, durably and before sending: find() needs it,
        # since Kraken keeps no id of ours (see find).
        journal = SubmitJournal(self.kind)
        entry = journal.mark_sent(spec.request_id)
        result = self._call("Withdraw", params, mutating=True)
        refid = result.get("refid") if isinstance(result, dict) else None
        if not refid:
            raise VenueOutcomeUnknown(
                "Kraken answered Withdraw without a refid; it may have accepted the request."
            )
        journal.mark_reference(spec.request_id, str(refid), entry=entry)
        return SubmitReceipt(reference=str(refid), raw=result)

    def status(self, spec: WithdrawalSpec, *, reference: str) -> VenueStatus:
        # At most 500 rows come back, in an order no page states: from our first send on, the
        # withdrawal is among them however many others the key made before.
        sent = SubmitJournal(self.kind).sent_times(spec.request_id)
        since = int(sent[0].timestamp() - RECONCILE_WINDOW_SECONDS) if sent else None
        for row in self._rows(spec.asset, start=since):
            if row.get("refid") == reference:
                return self._to_status(row)
        # WithdrawStatus covers 90 days / 500 rows; a fresh refid missing is a lag, not an end.
        raise VenueUnavailable(f"Withdrawal {reference} is not in Kraken's withdrawal history.")

    def find(self, spec: WithdrawalSpec) -> VenueStatus | None:
        """The WithdrawStatus row that is this withdrawal, or None if Kraken has no trace.

        Kraken's Withdraw carries no id of ours. The refid recorded when Kraken answered the
        submission is the exact link. Without it (the answer was lost) the documented row
        fields are all there is (no ``key``: NOTES §1.5, §7): the same asset (the query), the
        same gross amount (rows show the net ``amount`` and the ``fee``), a ``time`` near one
        of our recorded sends, and ``info`` equal to the destination in its canonical form
        (EVM addresses compared in lower case). Rows our journal gives to another withdrawal
        are never taken. Two or more rows left cannot be told apart: :class:`VenueAmbiguous`.
        A request we never tried to send has no recorded send and so no trace.
        """
        journal = SubmitJournal(self.kind)
        sent = journal.sent_times(spec.request_id)
        if not sent:
            return None
        reference = journal.reference(spec.request_id)
        if reference:
            return self.status(spec, reference=reference)
        sent_ts = [moment.timestamp() for moment in sent]
        since = int(min(sent_ts) - RECONCILE_WINDOW_SECONDS)
        destination = canonical_address(spec.address)
        candidates = []
        for row in self._rows(spec.asset, start=since):
            if canonical_address(str(row.get("info", ""))) != destination:
                continue
            gross = _decimal(row.get("amount", "0"), "amount") + _decimal(
                row.get("fee", "0"), "fee"
            )
            moment = float(_decimal(row.get("time", 0), "time"))
            near = any(abs(moment - ts) <= RECONCILE_WINDOW_SECONDS for ts in sent_ts)
            if gross == spec.amount and near:
                candidates.append(row)
        claimed = journal.claimed_by_others(
            spec.request_id, [str(row.get("refid")) for row in candidates]
        )
        candidates = [row for row in candidates if str(row.get("refid")) not in claimed]
        if len(candidates) > 1:
            refids = ", ".join(str(row.get("refid")) for row in candidates)
            raise VenueAmbiguous(
                f"{len(candidates)} Kraken withdrawals ({refids}) match {spec.amount} "
                f"{spec.asset} to {spec.address} near our submission; people must decide"
            )
        if not candidates:
            return None
        row = candidates[0]
        journal.mark_reference(spec.request_id, str(row.get("refid")))
        return self._to_status(row)

    def statuses(self, spec: WithdrawalSpec, references: Sequence[str]) -> dict[str, VenueStatus]:
        """The status of many withdrawals of ``spec``'s asset from one WithdrawStatus call
        (status refresh, batched: one unit of the call budget however many are pending).
        References Kraken does not list (yet) are missing from the answer."""
        wanted = set(references)
        return {
            str(row.get("refid")): self._to_status(row)
            for row in self._rows(spec.asset)
            if str(row.get("refid")) in wanted
        }

    def traces(self, spec: WithdrawalSpec) -> list[VenueStatus]:
        """Rows whose refid our journal recorded for this request (one per send that got an
        answer): Kraken keeps no id of ours, so the journal is the only exact link."""
        references = set(SubmitJournal(self.kind).references(spec.request_id))
        if not references:
            return []
        return [
            self._to_status(row)
            for row in self._rows(spec.asset)
            if str(row.get("refid")) in references
        ]

    def cancel(self, spec: WithdrawalSpec, *, reference: str) -> bool:
        result = self._call(
            "WithdrawCancel", {"asset": spec.asset, "refid": reference}, mutating=True
        )
        return result is True

    def saved_addresses(self, *, asset: str = "") -> list[SavedAddress]:
        params = {"asset": asset} if asset else {}
        rows = self._call("WithdrawAddresses", params, mutating=False)
        methods = self._methods(asset)
        if not isinstance(rows, list):
            raise VenueUnavailable("Kraken answered WithdrawAddresses in an unexpected shape.")
        network_of = {m.get("method"): m.get("network", "") for m in methods}
        return [
            SavedAddress(
                key=str(row["key"]),
                # Kraken answers with its own asset code (XXBT); keep the caller's name for it.
                asset=asset or str(row.get("asset", "")),
                address=str(row["address"]),
                memo=str(row.get("memo") or ""),
                network=str(network_of.get(row.get("method")) or row.get("method", "")),
                verified=bool(row.get("verified", False)),
            )
            for row in rows
        ]

    def check_connection(self) -> str:
        rows = self._call("WithdrawAddresses", {}, mutating=False)
        count = len(rows) if isinstance(rows, list) else 0
        return f"Kraken spot: API key accepted; {count} saved withdrawal addresses."

    def close(self) -> None:
        self._http.close()
