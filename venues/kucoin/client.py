"""KuCoin withdrawal client (NOTES.md §3).

Auth: ``KC-API-SIGN = b64(HMAC-SHA256(secret, timestamp + METHOD + path?raw_query + body))`` and,
for key versions 2 and 3, ``KC-API-PASSPHRASE = b64(HMAC-SHA256(secret, passphrase))``.
KuCoin has no idempotency key: our request id travels in ``remark`` and reconciliation matches it
in the withdrawal history. History items need not carry an ``id`` (KuCoin's own example has none):
such an item is read as it stands, with the ``withdrawalId`` our submit journal recorded as its
reference when there is exactly one, else with no reference, and :meth:`KucoinClient.status` of
an empty reference reads the history by remark.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote

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
    VenueRejected,
    VenueSettings,
    VenueState,
    VenueStatus,
    VenueUnavailable,
    WithdrawalSpec,
    venue_fee,
)
from venues.journal import SubmitJournal

SUCCESS_CODE = "200000"
QUOTAS_PATH = "/api/v1/withdrawals/quotas"
WITHDRAW_PATH = "/api/v3/withdrawals"
HISTORY_PATH = "/api/v1/withdrawals"
API_KEY_INFO_PATH = "/api/v1/user/api-key"
HISTORY_PAGE_SIZE = 500  # the documented maximum: fewest calls when reconciling

# Every status value documented for GET /api/v1/withdrawals and /api/v1/withdrawals/{id}.
# KuCoin has no "cancelled" status: a cancelled withdrawal reads FAILURE, and only its detail
# (failureReason / failureReasonMsg) says it was cancelled; see ``_state``.
STATUS_MAP: dict[str, VenueState] = {
    "PROCESSING": VenueState.PENDING,
    "REVIEW": VenueState.PENDING,
    "WALLET_PROCESSING": VenueState.PENDING,
    "SUCCESS": VenueState.COMPLETED,
    "FAILURE": VenueState.FAILED,
}

# Every documented error code -> its outcome, in one place (NOTES.md §3.4). VenueOutcomeUnknown
# here means "the venue failed while handling the call": outcome unknown for a mutating call,
# unavailable for a read (see ``_raise_error``).
ERROR_OUTCOMES: dict[str, type[VenueError]] = {
    # The gateway refused our credentials, permissions or source address before anything else:
    # says nothing about any withdrawal (VenueAccessRefused), and retrying will not help.
    "400001": VenueAccessRefused,  # a KC-API-* header is missing
    # Clock skew over 5 s: nothing was accepted, and a retry with a fresh timestamp can succeed.
    "400002": VenueUnavailable,
    "400003": VenueAccessRefused,  # KC-API-KEY does not exist
    "400004": VenueAccessRefused,  # Invalid KC-API-PASSPHRASE
    "400005": VenueAccessRefused,  # Invalid KC-API-SIGN
    "400006": VenueAccessRefused,  # request IP not on the key's IP whitelist
    "400007": VenueAccessRefused,  # key lacks the permission (e.g. Withdrawal)
    "400008": VenueAccessRefused,  # V1/V2 keys no longer supported
    "400009": VenueAccessRefused,  # Invalid KC-API-KEY-VERSION
    "400100": VenueRejected,  # parameter error, incl. account.available.amount
    "404000": VenueRejected,  # Url Not Found
    "411100": VenueAccessRefused,  # User are frozen: the account, not a withdrawal
    "415000": VenueRejected,  # Unsupported Media Type
    "200004": VenueRejected,  # Balance insufficient
    "260210": VenueRejected,  # withdraw.disabled
    "260325": VenueRejected,  # address not on the favourite-address whitelist
    "429000": VenueUnavailable,  # rate limited (code unverified, NOTES.md §3.4)
    "500000": VenueOutcomeUnknown,  # Internal Server Error
}
FALLBACK_RETRY_AFTER = 1.0


def sign(message: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(secret as UTF-8, message)): KuCoin's signature primitive."""
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_passphrase(passphrase: str, secret: str, key_version: str) -> str:
    """The KC-API-PASSPHRASE header: HMAC-signed for key versions 2 and 3, plain for v1."""
    if key_version in {"2", "3"}:
        return sign(passphrase.encode(), secret)
    return passphrase


def auth_headers(
    *,
    credentials: VenueCredentials,
    key_version: str,
    timestamp: str,
    method: str,
    target: str,
    body: bytes,
) -> dict[str, str]:
    """Headers for one request. ``target`` is the path with its raw (un-encoded) query."""
    prehash = timestamp.encode() + method.upper().encode() + target.encode() + body
    return {
        "KC-API-KEY": credentials.api_key,
        "KC-API-SIGN": sign(prehash, credentials.api_secret),
        "KC-API-TIMESTAMP": timestamp,
        "KC-API-PASSPHRASE": signed_passphrase(
            credentials.passphrase, credentials.api_secret, key_version
        ),
        "KC-API-KEY-VERSION": key_version,
        "Content-Type": "application/json",
    }


def timestamp_ms() -> str:
    """KC-API-TIMESTAMP: wall-clock milliseconds (the venue allows 5 s of skew)."""
    return str(int(time.time() * 1000))


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _state(data: dict[str, Any]) -> VenueState:
    raw = str(data.get("status", ""))
    reason = f"{data.get('failureReason') or ''} {data.get('failureReasonMsg') or ''}".lower()
    if raw == "FAILURE" and "cancel" in reason:
        return VenueState.CANCELLED
    # An undocumented status is not final: keep tracking rather than guess success or failure.
    return STATUS_MAP.get(raw, VenueState.PENDING)


class KucoinClient:
    kind: ClassVar[str] = "kucoin"
    supports_cancel: ClassVar[bool] = True
    # KuCoin documents no endpoint listing the favourite (whitelisted) addresses.
    supports_saved_addresses: ClassVar[bool] = False
    supports_quote: ClassVar[bool] = True
    idempotent_submit: ClassVar[bool] = False
    supports_fee_cap: ClassVar[bool] = False
    request_id_in_history: ClassVar[bool] = True  # the remark
    quote_creates_request: ClassVar[bool] = False  # the quotas call is a read

    def __init__(
        self,
        *,
        http: httpx.Client,
        credentials: VenueCredentials,
        options: VenueSettings,
        nonces: object,
        purpose: Purpose | None = None,
    ) -> None:
        # ``nonces`` and ``purpose`` are part of the common constructor; KuCoin authenticates
        # with a wall-clock timestamp (5 s tolerance) instead of a nonce, and NOTES gives the
        # weights of its calls but not the pool's size, so there is no budget to rank calls on.
        self._http = http
        self._credentials = credentials
        self._options = options
        self._journal = SubmitJournal(self.kind)

    def __repr__(self) -> str:
        return f"KucoinClient(base_url={str(self._http.base_url)!r})"

    # --- transport ------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
        mutating: bool = False,
    ) -> Any:
        pairs = [(k, v) for k, v in (params or {}).items() if v != ""]
        # KuCoin signs the query un-encoded; we send it encoded (both are identical for the
        # plain values we use, but the distinction is the venue's rule).
        raw_query = "&".join(f"{k}={v}" for k, v in pairs)
        sent_query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
        signed_target = f"{path}?{raw_query}" if raw_query else path
        sent_target = f"{path}?{sent_query}" if sent_query else path
        body = compact_json(payload) if payload is not None else b""
        headers = auth_headers(
            credentials=self._credentials,
            key_version=self._options.key_version or "3",
            timestamp=timestamp_ms(),
            method=method,
            target=signed_target,
            body=body,
        )
        request = self._http.build_request(
            method, sent_target, content=body or None, headers=headers
        )
        response = send(self._http, request, mutating=mutating)
        return self._unwrap(response, mutating=mutating)

    def _unwrap(self, response: httpx.Response, *, mutating: bool) -> Any:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict) or "code" not in document:
            if response.status_code == 429:
                raise VenueUnavailable(
                    "KuCoin rate limit", http_status=429, retry_after=self._retry_after(response)
                )
            if response.status_code >= 500 or response.status_code == 408:
                server_error(response, mutating=mutating)
            if response.is_success and mutating:
                raise VenueOutcomeUnknown(
                    "Unreadable answer from KuCoin; it may have accepted the request",
                    http_status=response.status_code,
                )
            if response.is_success:
                raise VenueUnavailable(
                    "Unreadable answer from KuCoin", http_status=response.status_code
                )
            raise VenueRejected(
                f"KuCoin answered HTTP {response.status_code}", http_status=response.status_code
            )
        code = str(document["code"])
        if code == SUCCESS_CODE:
            return document.get("data")
        self._raise_error(response, code, str(document.get("msg") or ""), mutating=mutating)

    def _raise_error(
        self, response: httpx.Response, code: str, msg: str, *, mutating: bool
    ) -> NoReturn:
        status = response.status_code
        outcome = ERROR_OUTCOMES.get(code)
        message = msg or f"KuCoin error {code}"
        if response.status_code == 429 or outcome is VenueUnavailable:
            raise VenueUnavailable(
                message, code=code, http_status=status, retry_after=self._retry_after(response)
            )
        if outcome is VenueOutcomeUnknown or (outcome is None and status >= 500):
            server_error(response, mutating=mutating, message=message)
        if outcome is None and mutating:
            # An error code we do not know, on a withdrawal: reconcile rather than assume.
            raise VenueOutcomeUnknown(
                f"{message} (undocumented KuCoin code {code}); it may have accepted the request",
                code=code,
                http_status=status,
            )
        raise (outcome or VenueRejected)(message, code=code, http_status=status)

    def _read_object(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """A read whose ``data`` must be an object; anything else is a transient venue fault."""
        data = self._call("GET", path, params=params)
        if not isinstance(data, dict):
            raise VenueUnavailable(f"KuCoin answered {path} without data")
        return data

    @staticmethod
    def _retry_after(response: httpx.Response) -> float:
        # gw-ratelimit-reset is the time left in the quota window, in milliseconds.
        reset = _decimal(response.headers.get("gw-ratelimit-reset"))
        if reset is not None and reset > 0:
            return float(reset / 1000)
        return retry_after(response) or FALLBACK_RETRY_AFTER

    # --- VenueClient ----------------------------------------------------------------------

    def _fee_deduct_type(self, spec: WithdrawalSpec) -> str:
        return (spec.fee_deduct_type or self._options.fee_deduct_type).upper()

    def quote(self, spec: WithdrawalSpec) -> Quote:
        data = self._call(
            "GET", QUOTAS_PATH, params={"currency": spec.asset, "chain": spec.network}
        )
        if not data.get("isWithdrawEnabled", False):
            raise VenueRejected(str(data.get("reason") or "withdraw.disabled"), code="260210")
        fee = _decimal(data.get("withdrawMinFee")) or Decimal(0)
        available = _decimal(data.get("availableAmount"))
        remaining = _decimal(data.get("remainAmount"))
        limits = [x for x in (available, remaining) if x is not None]
        precision = int(data["precision"]) if data.get("precision") is not None else None
        requested = self._fee_deduct_type(spec)
        # Unspecified: KuCoin takes the fee from the main account if it can cover it, else
        # from the amount; we predict the same from the available balance.
        used = requested or (
            "EXTERNAL" if available is not None and available >= spec.amount + fee else "INTERNAL"
        )
        net = spec.amount if used == "EXTERNAL" else spec.amount - fee
        return Quote(
            fee=fee,
            net_amount=net,
            limit=min(limits) if limits else None,
            minimum=_decimal(data.get("withdrawMinSize")),
            precision=precision,
            fee_asset=spec.asset,
            raw={**data, "feeDeductType": used, "feeDeductTypeRequested": requested},
        )

    def submit(self, spec: WithdrawalSpec, *, quote: Quote | None) -> SubmitReceipt:
        precision = quote.precision if quote is not None else None
        amount = amount_str(spec.amount, precision)
        if Decimal(amount) != spec.amount:
            # Never truncate money silently: the approved amount is the one that goes out.
            raise VenueRejected(
                f"Amount {spec.amount} has more than {precision} decimal places", code="precision"
            )
        payload: dict[str, Any] = {
            "currency": spec.asset,
            "toAddress": spec.address,
            "amount": amount,
            "withdrawType": "ADDRESS",
            "chain": spec.network,
        }
        if spec.memo:
            payload["memo"] = spec.memo
        payload["remark"] = str(spec.request_id)
        if fee_deduct_type := self._fee_deduct_type(spec):
            payload["feeDeductType"] = fee_deduct_type
        entry = self._journal.mark_sent(spec.request_id)
        data = self._call("POST", WITHDRAW_PATH, payload=payload, mutating=True)
        reference = str((data or {}).get("withdrawalId") or "")
        if not reference:
            raise VenueOutcomeUnknown("KuCoin accepted the withdrawal without giving its id")
        self._journal.mark_reference(spec.request_id, reference, entry=entry)
        return SubmitReceipt(reference=reference, raw=data)

    def status(self, spec: WithdrawalSpec, *, reference: str) -> VenueStatus:
        if not reference:
            # Found in a history that showed no id: read it there again, by our remark.
            found = self.find(spec)
            if found is None:
                raise VenueUnavailable("KuCoin no longer lists this withdrawal by its remark")
            return found
        data = self._call("GET", f"{HISTORY_PATH}/{quote(reference, safe='')}")
        if not isinstance(data, dict):
            raise VenueRejected(f"KuCoin has no withdrawal {reference}")
        return VenueStatus(
            reference=str(data.get("id") or reference),
            state=_state(data),
            raw_status=str(data.get("status", "")),
            txid=str(data.get("walletTxId") or ""),
            detail=str(data.get("failureReasonMsg") or data.get("failureReason") or ""),
            raw=data,
            fee=venue_fee(data.get("fee")),
        )

    def _remarked(self, spec: WithdrawalSpec) -> Iterator[dict[str, Any]]:
        """History items whose ``remark`` is our request id, over every page."""
        remark = str(spec.request_id)
        page = 1
        while True:
            data = self._read_object(
                HISTORY_PATH,
                {
                    "currency": spec.asset,
                    "currentPage": str(page),
                    "pageSize": str(HISTORY_PAGE_SIZE),
                },
            )
            for item in data.get("items") or []:
                if isinstance(item, dict) and item.get("remark") == remark:
                    yield item
            if page >= int(data.get("totalPage") or 0):
                return
            page += 1

    def find(self, spec: WithdrawalSpec) -> VenueStatus | None:
        """The history item whose ``remark`` is our request id, or None if KuCoin has none.

        An item with an ``id`` is read again by id (only the detail tells a cancelled FAILURE
        from a failed one). Two items with our remark are two withdrawals: ambiguous.
        """
        items = list(self._remarked(spec))
        if len(items) > 1:
            raise VenueAmbiguous(
                f"KuCoin lists {len(items)} withdrawals with this request's remark; "
                "people must decide"
            )
        return self._item_status(spec, items[0]) if items else None

    def statuses(self, spec: WithdrawalSpec, references: Sequence[str]) -> dict[str, VenueStatus]:
        """Many withdrawals' status (status refresh, batched): by id, one call each, since
        history items need not carry the id that would let one history read serve them all.
        References KuCoin does not know are missing from the answer."""
        found = {}
        for reference in references:
            try:
                found[reference] = self.status(spec, reference=reference)
            except VenueRejected as exc:
                if isinstance(exc, VenueAccessRefused):
                    raise  # our key was refused: nothing is known about any of them
        return found

    def traces(self, spec: WithdrawalSpec) -> list[VenueStatus]:
        """Every withdrawal with our remark: by id where the item or the journal gives one,
        and, for remarked items without an id beyond those the journal accounts for, as the
        item shows it (no reference)."""
        items = list(self._remarked(spec))
        ids = [str(item["id"]) for item in items if item.get("id")]
        known = ids + [r for r in self._journal.references(spec.request_id) if r not in ids]
        found = [self.status(spec, reference=reference) for reference in known]
        unexplained = len(items) - len(ids) - (len(known) - len(ids))
        idless = [item for item in items if not item.get("id")]
        return found + [self._as_shown(item) for item in idless[: max(unexplained, 0)]]

    def _item_status(self, spec: WithdrawalSpec, item: dict[str, Any]) -> VenueStatus:
        """An item's status: by its id, else by the one id our journal recorded, else (no id
        known) as the item itself shows it, with no reference."""
        references = self._journal.references(spec.request_id)
        if item.get("id") or len(references) == 1:
            return self.status(spec, reference=str(item.get("id") or references[0]))
        return self._as_shown(item)

    @staticmethod
    def _as_shown(item: dict[str, Any]) -> VenueStatus:
        return VenueStatus(
            reference="",
            state=_state(item),
            raw_status=str(item.get("status", "")),
            txid=str(item.get("walletTxId") or ""),
            raw=item,
            fee=venue_fee(item.get("fee")),
        )

    def cancel(self, spec: WithdrawalSpec, *, reference: str) -> bool:
        """Cancel a PROCESSING withdrawal; any refusal raises with KuCoin's own message."""
        self._call("DELETE", f"{HISTORY_PATH}/{quote(reference, safe='')}", mutating=True)
        return True

    def saved_addresses(self, *, asset: str = "") -> list[SavedAddress]:
        raise NotImplementedError("KuCoin documents no API listing favourite addresses")

    def check_connection(self) -> str:
        data = self._read_object(API_KEY_INFO_PATH)
        permission = data.get("permission") or "none"
        return f"KuCoin API key v{data.get('apiVersion', '?')}, permissions: {permission}"

    def close(self) -> None:
        self._http.close()
