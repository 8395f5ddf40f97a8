"""The one small interface every venue client implements.

A client turns a :class:`WithdrawalSpec` into venue calls and venue answers into the types below.
Errors are reduced to three outcomes, because those are the only distinctions the withdrawal
lifecycle acts on:

* :class:`VenueRejected` - the venue refused; permanent; its own message is shown to the user.
* :class:`VenueUnavailable` - nothing reached the venue (or the venue said so explicitly);
  safe to retry.
* :class:`VenueOutcomeUnknown` - the request may have reached the venue; never retried blindly,
  resolved by reconciliation against the venue's history.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol
from uuid import UUID


class VenueError(Exception):
    """Base of the three outcomes. ``message`` is safe to show: it never holds credentials."""

    def __init__(self, message: str, *, code: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class VenueRejected(VenueError):
    """Permanent refusal. ``message`` is the venue's own text, verbatim."""


class VenueAccessRefused(VenueRejected):
    """The venue refused our credentials, permissions or source address (a rotated key, a
    changed password, an IP whitelist). It says nothing about any withdrawal: a read refused
    this way proves neither that a withdrawal exists nor that it does not."""


class VenueQuoteRefused(VenueRejected):
    """The venue refused because the quote no longer holds: the fee rose above the cap, or the
    fee token / request identifier expired. The withdrawal goes back for a new quote and a new
    approval, never through."""


class VenueUnavailable(VenueError):
    """Transient, and nothing was accepted by the venue: safe to retry after ``retry_after``."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class VenueOutcomeUnknown(VenueError):
    """The request may have been accepted. Reconcile before doing anything else."""


class VenueAmbiguous(VenueOutcomeUnknown):
    """Several venue withdrawals could be this one and nothing documented tells them apart.
    Only people can settle it (the "Needs attention" queue)."""


class VenueState(enum.StrEnum):
    """A venue withdrawal's state, reduced to what our lifecycle distinguishes."""

    PENDING = "pending"  # accepted, still moving (initial, pending, held, review, ...)
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class WithdrawalSpec:
    """Everything a venue needs to quote or execute one withdrawal.

    ``request_id`` is ours; it travels as the idempotency token, remark or instruction wherever
    the venue has such a field, so reconciliation can find the withdrawal again.
    """

    request_id: UUID
    asset: str
    network: str
    address: str
    amount: Decimal
    memo: str = ""
    venue_key: str = ""  # the name of the address saved at the venue (Kraken spot and Embed)
    fee_deduct_type: str = ""  # KuCoin: INTERNAL or EXTERNAL


@dataclass(frozen=True, slots=True)
class Quote:
    """A venue's fee quote. ``fee`` is None when the venue documents no quote (1Konto)."""

    fee: Decimal | None
    net_amount: Decimal | None
    limit: Decimal | None = None  # maximum the venue allows right now
    minimum: Decimal | None = None
    precision: int | None = None  # decimal places the venue accepts for this asset
    token: str = ""  # Kraken Embed fee_token, Nord-Pay identifier
    expires_at: datetime | None = None
    fee_asset: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubmitReceipt:
    reference: str  # the venue's id for the withdrawal (refid, withdrawalId, ...)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VenueStatus:
    reference: str
    state: VenueState
    raw_status: str  # the venue's own status value, kept for the timeline
    txid: str = ""
    detail: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    fee: Decimal | None = None  # what the venue charged, where its answer shows it


def venue_fee(value: Any) -> Decimal | None:
    """A fee as a venue wrote it (string or number), to 18 places; None when absent or not a
    non-negative number. Read through str(): a JSON float never becomes a binary fraction."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        fee = Decimal(str(value))
        if not fee.is_finite() or fee < 0:
            return None
        return fee.quantize(FEE_QUANTUM)
    except ArithmeticError:  # not a number, or more digits than a stored amount holds
        return None


FEE_QUANTUM = Decimal(1).scaleb(-18)  # the places withdrawals store amounts to


@dataclass(frozen=True, slots=True)
class SavedAddress:
    """An address saved at the venue under a key name."""

    key: str
    asset: str
    address: str
    memo: str = ""
    network: str = ""
    verified: bool = True


@dataclass(frozen=True, slots=True)
class VenueCredentials:
    api_key: str = ""
    api_secret: str = ""
    passphrase: str = ""
    account: str = ""  # KuCoin: unused; 1Konto: account id; Kraken Embed: IIBAN

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return (
            f"VenueCredentials(api_key={'***' if self.api_key else ''!r}, account={self.account!r})"
        )


@dataclass(frozen=True, slots=True)
class VenueSettings:
    """Per-venue-account options that are not credentials."""

    fee_deduct_type: str = ""  # KuCoin default for this account
    path_prefix: str = ""  # Nord-Pay: "/v1" or ""
    key_version: str = "3"  # KuCoin API key version


class VenueClient(Protocol):
    """What the withdrawal services need from a venue.

    ``cancel`` and ``saved_addresses`` raise :class:`NotImplementedError` where the venue has no
    such call; ``supports_cancel`` and ``supports_saved_addresses`` say so up front.
    """

    kind: ClassVar[str]
    supports_cancel: ClassVar[bool]
    supports_saved_addresses: ClassVar[bool]
    supports_quote: ClassVar[bool]
    idempotent_submit: ClassVar[bool]
    # The submit carries a fee bound the venue enforces (Kraken max_fee, Kraken Embed fee_token,
    # Nord-Pay identifier). Without one (KuCoin, 1Konto) the fee is quoted again right before
    # the send and checked against the approved cap.
    supports_fee_cap: ClassVar[bool]
    # A quote creates something at the venue (Nord-Pay's withdraw request): never while typing.
    quote_creates_request: ClassVar[bool]
    # Our request id travels in a field the venue's history shows (KuCoin's remark, 1Konto's
    # instruction): a duplicate can be found there even without a reference of ours.
    request_id_in_history: ClassVar[bool]

    def quote(self, spec: WithdrawalSpec) -> Quote: ...

    def submit(self, spec: WithdrawalSpec, *, quote: Quote | None) -> SubmitReceipt:
        """Send the withdrawal. The fee cap travels as the venue supports it (``quote``)."""
        ...

    def status(self, spec: WithdrawalSpec, *, reference: str) -> VenueStatus: ...

    def statuses(self, spec: WithdrawalSpec, references: Sequence[str]) -> dict[str, VenueStatus]:
        """Many withdrawals of ``spec``'s asset at once (one history read where the venue
        allows). References the venue does not list (yet) are missing from the answer."""
        ...

    def find(self, spec: WithdrawalSpec) -> VenueStatus | None:
        """Look the withdrawal up in the venue's history by our request id (reconciliation).

        Returns None when the venue has no trace of it: then nothing was sent and a retry is
        safe.
        """
        ...

    def traces(self, spec: WithdrawalSpec) -> list[VenueStatus]:
        """Every venue withdrawal that carries this request's own id: the remark, the
        instruction, the idempotency token, or a reference our submit journal recorded for it.

        Never a fuzzy match. More than one entry is a duplicate payment (duplicate detection).
        """
        ...

    def cancel(self, spec: WithdrawalSpec, *, reference: str) -> bool: ...

    def saved_addresses(self, *, asset: str = "") -> list[SavedAddress]: ...

    def check_connection(self) -> str:
        """Make one authenticated read-only call; return a short description of what it saw."""
        ...

    def close(self) -> None: ...
