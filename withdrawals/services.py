"""Withdrawal business rules: request, quote, approve, reject, cancel, submit, track.

Every state change locks its row, checks the current state, and writes its audit event in the
same transaction. Venue calls happen outside transactions; tasks are enqueued on commit.
Every send goes through one guarded path (``_attempt_run``): a numbered attempt with a lease
and a deadline, opened by the ``approved -> submitting`` transition under the row lock, and a
fence right before the send that re-checks the attempt, the payload and the quote.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.roles import APPROVER, REQUESTER, require_role
from accounts.services import totp_code_verify
from audit.actions import AuditAction
from audit.exchanges import ExchangeRecorder
from audit.services import audit_event_record, json_safe
from config.observability import bind_attempt
from core.errors import ApplicationError
from venues.budget import Purpose, status_poll_delay
from venues.interface import (
    Quote as VenueQuote,
)
from venues.interface import (
    VenueAccessRefused,
    VenueAmbiguous,
    VenueClient,
    VenueError,
    VenueOutcomeUnknown,
    VenueQuoteRefused,
    VenueRejected,
    VenueState,
    VenueStatus,
    VenueUnavailable,
    WithdrawalSpec,
)
from venues.journal import SubmitJournal
from venues.models import Venue
from venues.refusals import Refusal, refusal_code, refusal_explain
from venues.registry import client_class, client_for
from whitelist.models import AddressState, WhitelistedAddress
from whitelist.services import VenueCheckUnavailable, address_verify_before_submit

from . import policy, rules, tasks
from .evidence import venue_exchanges_record
from .models import (
    AMOUNT,
    FINAL_STATES,
    Approval,
    DuplicatePayment,
    Quote,
    Resolution,
    State,
    SubmissionAttempt,
    SubmissionIntent,
    WithdrawalRequest,
)

logger = logging.getLogger(__name__)

# A quote without a venue expiry is still only good for this long: the approver must confirm
# a fee they saw recently.
QUOTE_TTL = timedelta(seconds=120)
PREVIEW_MARGIN = 5  # seconds: a kept preview is dropped this long before its quote expires
DEFAULT_PRECISION = 8


class WithdrawalError(ApplicationError):
    """A refusal of a withdrawal act: request, quote, approval, rejection, cancellation."""


@dataclass(frozen=True)
class Preview:
    """What the requester sees while typing: the venue's own quote, or why there is none."""

    quote: VenueQuote
    expires_at: Any
    precision: int
    asset: str = ""


# --- helpers ------------------------------------------------------------------------------


def withdrawal_spec(withdrawal: WithdrawalRequest) -> WithdrawalSpec:
    return WithdrawalSpec(
        request_id=withdrawal.request_id,
        asset=withdrawal.asset,
        network=withdrawal.network,
        address=withdrawal.address,
        memo=withdrawal.memo,
        amount=withdrawal.amount,
        venue_key=withdrawal.venue_key,
        fee_deduct_type=withdrawal.fee_deduct_type,
    )


def _spec_for_address(
    address: WhitelistedAddress, amount: Decimal, fee_deduct_type: str = ""
) -> WithdrawalSpec:
    return WithdrawalSpec(
        request_id=uuid.uuid4(),
        asset=address.asset,
        network=address.network,
        address=address.address,
        memo=address.memo,
        amount=amount,
        venue_key=address.venue_key,
        fee_deduct_type=fee_deduct_type,
    )


def _venue_quote(row: Quote) -> VenueQuote:
    return VenueQuote(
        fee=row.fee,
        net_amount=row.net_amount,
        limit=row.limit,
        minimum=row.minimum,
        token=row.token,
        expires_at=row.expires_at,
        raw=row.raw,
    )


def _lock(withdrawal_id: int, *, withdrawal_only: bool = False) -> WithdrawalRequest:
    """The withdrawal locked, with its venue and destination read in the same statement and,
    unless ``withdrawal_only``, locked too."""
    return (
        WithdrawalRequest.objects.select_for_update(of=("self",) if withdrawal_only else ())
        .select_related("venue", "whitelisted_address")
        .get(pk=withdrawal_id)
    )


def _lock_for_send(withdrawal_id: int, *, opening: bool = False) -> WithdrawalRequest:
    """``_lock`` for the submission path: the same rows locked (the withdrawal, its venue and
    its address), and the confirmed quote read in the same statement, since every step of a
    send checks it. The quote is outer-joined, which PostgreSQL cannot lock; nothing changes a
    quote once stored.

    ``opening``: the address's venue too, for the saved-address check that follows the opening
    of an attempt. The fence and the outcome never read it, and each table joined costs about
    0.6 ms of CPU to compile and load, three times per withdrawal."""
    related = ("venue", "whitelisted_address__venue" if opening else "whitelisted_address")
    return (
        WithdrawalRequest.objects.select_for_update(of=("self", "venue", "whitelisted_address"))
        .select_related(*related, "confirmed_quote")
        .get(pk=withdrawal_id)
    )


def _on_commit_enqueue(task: Any, withdrawal_id: int, countdown: float | None = None) -> None:
    """Enqueue after commit. A broker outage is logged, not raised: the outbox sweeper and the
    periodic refresh pick the work up again."""

    def enqueue() -> None:
        try:
            if countdown:
                task.apply_async(args=[withdrawal_id], countdown=countdown)
            else:
                task.delay(withdrawal_id)
        except Exception:  # the broker is down; the row in the database still holds the intent
            logger.warning("could not enqueue %s for withdrawal %s", task.name, withdrawal_id)

    transaction.on_commit(enqueue)


def _validate_amount(
    *, amount: Decimal, quote: VenueQuote, precision: int, fee_deduct_type: str = ""
) -> None:
    if not amount.is_finite() or amount <= 0:
        raise WithdrawalError("Enter an amount greater than zero.", field="amount")
    if -amount.as_tuple().exponent > precision and amount != amount.quantize(
        Decimal(1).scaleb(-precision)
    ):
        raise WithdrawalError(
            f"This venue accepts at most {precision} decimal places for this asset.",
            field="amount",
        )
    if quote.minimum is not None and amount < quote.minimum:
        raise WithdrawalError(
            f"Below the venue minimum of {quote.minimum.normalize():f}.", field="amount"
        )
    if quote.limit is not None and amount > quote.limit:
        raise WithdrawalError(
            f"Above what the venue allows right now ({quote.limit.normalize():f}).",
            field="amount",
        )
    if quote.fee is not None and quote.fee >= amount and fee_deduct_type != "EXTERNAL":
        raise WithdrawalError("The fee would take the whole amount.", field="amount")


def _active_address(*, venue: Venue, address_id: Any) -> WhitelistedAddress:
    try:
        address = WhitelistedAddress.objects.select_related("venue").get(pk=int(address_id))
    except (TypeError, ValueError, WhitelistedAddress.DoesNotExist):
        raise WithdrawalError("Choose a whitelisted address.", field="address") from None
    if address.venue_id != venue.pk:
        raise WithdrawalError("That address belongs to another venue.", field="address")
    if address.state != AddressState.ACTIVE:
        raise WithdrawalError("That address is not active on the whitelist.", field="address")
    return address


def _enabled_venue(venue_id: Any) -> Venue:
    try:
        venue = Venue.objects.get(pk=int(venue_id), enabled=True)
    except (TypeError, ValueError, Venue.DoesNotExist):
        raise WithdrawalError("Choose a venue.", field="venue") from None
    return venue


def _fetch_quote(
    venue: Venue, spec: WithdrawalSpec, *, purpose: Purpose | None = None
) -> VenueQuote:
    client = client_for(venue, purpose=purpose)
    try:
        return client.quote(spec)
    except VenueRejected as exc:
        refusal = _refusal(venue, exc)
        raise WithdrawalError(
            f"{venue.name} refused: {refusal.message} (venue code: {refusal.code})",
            field="amount",
        ) from exc
    except VenueError as exc:
        raise WithdrawalError(
            f"{venue.name} did not answer the fee quote ({exc.message}). Try again shortly."
        ) from exc
    finally:
        client.close()


def _refusal(venue: Venue, exc: VenueError) -> Refusal:
    return refusal_explain(kind=venue.kind, code=refusal_code(code=exc.code, message=exc.message))


def _quote_expiry(quote: VenueQuote) -> Any:
    return quote.expires_at or timezone.now() + QUOTE_TTL


def _store_quote(*, withdrawal: WithdrawalRequest | None, quote: VenueQuote, user: Any) -> Quote:
    return Quote.objects.create(
        withdrawal=withdrawal,
        fee=quote.fee,
        net_amount=quote.net_amount,
        limit=quote.limit,
        minimum=quote.minimum,
        token=quote.token,
        expires_at=_quote_expiry(quote),
        shown_to=user if getattr(user, "is_authenticated", False) else None,
        raw=json_safe(quote.raw),
    )


# --- requesting ---------------------------------------------------------------------------


def withdrawal_preview(
    *,
    user: Any,
    venue_id: Any,
    address_id: Any,
    amount: Decimal,
    fee_deduct_type: str = "",
    typing: bool = False,
) -> Preview | None:
    """The venue's quote for what the requester is typing. Saves nothing here.

    A quote is kept per (venue, address, amount) until it expires, so typing the same amount
    again, or several requesters, cost the venue's call budget nothing. Where every quote
    creates a request at the venue (Nord-Pay), ``typing`` never asks for one: it only shows a
    kept quote, and None means "ask explicitly" (the page's "Get quote").
    """
    require_role(user, REQUESTER)
    venue = _enabled_venue(venue_id)
    address = _active_address(venue=venue, address_id=address_id)
    if not amount.is_finite() or amount <= 0:
        raise WithdrawalError("Enter an amount greater than zero.", field="amount")
    if amount.adjusted() >= AMOUNT["max_digits"] - AMOUNT["decimal_places"]:
        raise WithdrawalError("That amount is larger than any venue account holds.", field="amount")
    # Everything the quote depends on, the venue's settings and credentials included: a
    # change of either (or of the address) is a new quote.
    parts = (
        venue.pk, venue.kind, venue.base_url, venue.account, venue.credentials_encrypted,
        venue.options_json, address.pk, address.asset, address.network, address.address,
        address.memo, f"{amount.normalize():f}", fee_deduct_type,
    )  # fmt: skip
    key = "withdrawals:preview:" + hashlib.sha256(repr(parts).encode()).hexdigest()
    quote = cache.get(key)
    if quote is None:
        if typing and client_class(venue.kind).quote_creates_request:
            return None
        spec = _spec_for_address(address, amount, fee_deduct_type)
        # Typing waits behind everything else; a request being created, or an explicit "Get
        # quote", ranks with an approver's quote.
        purpose = Purpose.PREVIEW if typing else Purpose.APPROVER_QUOTE
        quote = _fetch_quote(venue, spec, purpose=purpose)
        # Kept until shortly before it expires, so what is shown is never a stale quote.
        seconds = (_quote_expiry(quote) - timezone.now()).total_seconds() - PREVIEW_MARGIN
        if seconds >= 1:
            cache.set(key, quote, timeout=int(seconds))
    precision = quote.precision if quote.precision is not None else DEFAULT_PRECISION
    _validate_amount(
        amount=amount, quote=quote, precision=precision, fee_deduct_type=fee_deduct_type
    )
    return Preview(
        quote=quote, expires_at=_quote_expiry(quote), precision=precision, asset=address.asset
    )


def withdrawal_create(
    *,
    requester: Any,
    venue_id: Any,
    address_id: Any,
    amount: Decimal,
    fee_deduct_type: str = "",
    note: str = "",
    ip: str | None = None,
) -> WithdrawalRequest:
    """Create a withdrawal in ``pending_approval`` after a fresh venue quote validates it.

    The quoted fee becomes the fee cap the approvals bind. Nothing is saved if any check fails.
    """
    require_role(requester, REQUESTER)
    if fee_deduct_type not in {"", "INTERNAL", "EXTERNAL"}:
        raise WithdrawalError("Choose how the fee is paid.", field="fee_deduct_type")
    preview = withdrawal_preview(
        user=requester,
        venue_id=venue_id,
        address_id=address_id,
        amount=amount,
        fee_deduct_type=fee_deduct_type,
    )
    venue = _enabled_venue(venue_id)
    with transaction.atomic():
        address = _active_address(venue=venue, address_id=address_id)
        now = timezone.now()
        rule = policy.rule_for(venue=venue, address=address, amount=amount)
        if refusal := policy.request_refusal(
            rule, venue=venue, address=address, amount=amount, now=now
        ):
            raise WithdrawalError(refusal, field="amount")
        withdrawal = WithdrawalRequest(
            venue=venue,
            whitelisted_address=address,
            asset=address.asset,
            network=address.network,
            address=address.address,
            memo=address.memo,
            venue_key=address.venue_key,
            fee_deduct_type=fee_deduct_type,
            amount=amount,
            fee_cap=preview.quote.fee,
            note=note[:200],
            requested_by=requester,
        )
        policy.rule_apply(withdrawal, rule, now=now)
        withdrawal.payload_hash = withdrawal.compute_payload_hash()
        withdrawal.save()
        _store_quote(withdrawal=withdrawal, quote=preview.quote, user=requester)
        audit_event_record(
            action=AuditAction.WITHDRAWAL_REQUESTED,
            actor=requester,
            ip=ip,
            target=withdrawal,
            message=f"Requested {amount:f} {address.asset} to {address.label}",
            data={
                "amount": amount,
                "asset": address.asset,
                "address": address.address,
                "fee_cap": preview.quote.fee,
                "request_id": withdrawal.request_id,
                "payload_hash": withdrawal.payload_hash,
                "policy_version": rule.policy.number,
                "rule": rule.position,
                "quorum": rule.quorum,
                "required_role": rule.required_role,
                "expires_at": withdrawal.expires_at,
            },
        )
    return withdrawal


# --- approving ----------------------------------------------------------------------------


def withdrawal_quote_fresh(*, withdrawal_id: int, user: Any) -> Quote:
    """A fresh venue quote for the approver to confirm. Stored: every quote shown is evidence."""
    require_role(user, APPROVER)
    withdrawal = WithdrawalRequest.objects.select_related("venue", "whitelisted_address").get(
        pk=withdrawal_id
    )
    # A quote is only ever for approving: none for someone who may not approve.
    refusal = rules.approve_refusal(user, withdrawal)
    if refusal:
        raise WithdrawalError(refusal)
    quote = _fetch_quote(
        withdrawal.venue, withdrawal_spec(withdrawal), purpose=Purpose.APPROVER_QUOTE
    )
    return _store_quote(withdrawal=withdrawal, quote=quote, user=user)


def _check_approvable(withdrawal: WithdrawalRequest, approver: Any) -> None:
    refusal = rules.approve_refusal(approver, withdrawal)
    if refusal:
        raise WithdrawalError(refusal)


def withdrawal_approve(
    *,
    withdrawal_id: int,
    approver: Any,
    code: str,
    quote_id: Any,
    ip: str | None = None,
) -> WithdrawalRequest:
    """Approve with a fresh TOTP code, confirming the quote the approver was shown.

    The quorum and any required role are the rule recorded at request time. The approval that
    reaches the quorum checks the velocity limits under their scope locks, moves the withdrawal
    to ``approved``, writes the submission intent (outbox) in the same transaction and enqueues
    the submission on commit. The red flags the approver was shown, and how long they looked
    at the quote, are recorded with the approval.
    """
    require_role(approver, APPROVER)
    withdrawal = WithdrawalRequest.objects.select_related("whitelisted_address").get(
        pk=withdrawal_id
    )
    _check_approvable(withdrawal, approver)
    # Before the code is checked: a refused quote must leave the code usable for the next try.
    quote = _shown_quote(withdrawal, quote_id, approver)
    _check_quote(withdrawal, quote)
    # Own transaction, committed before ours: a rollback below cannot undo throttle or replay.
    step = totp_code_verify(user=approver, code=code, ip=ip, purpose="withdrawal approval")
    with transaction.atomic():
        # The withdrawal's row only: with the venue and destination rows, approvals of other
        # withdrawals to the same destination queued one behind the other for their whole
        # transaction. A revocation or venue change committed after this read cannot move
        # money: the send checks both again under its own lock on them.
        withdrawal = _lock(withdrawal_id, withdrawal_only=True)
        _check_approvable(withdrawal, approver)
        if withdrawal.whitelisted_address.state != AddressState.ACTIVE:
            raise WithdrawalError("The destination is no longer active on the whitelist.")
        if withdrawal.payload_hash != withdrawal.compute_payload_hash():
            raise WithdrawalError("The withdrawal changed after it was requested.")
        # The quote row is never changed once stored; the locked withdrawal may have been.
        _check_quote(withdrawal, quote)
        now = timezone.now()
        judged = policy.policy_of(withdrawal)
        flags = policy.red_flags(withdrawal, now=now, judged_by=judged)
        seconds, rubber_stamp = policy.review_time(
            withdrawal, quote.fetched_at, now=now, judged_by=judged
        )
        approval = Approval.objects.create(
            withdrawal=withdrawal,
            approver=approver,
            requester_id=withdrawal.requested_by_id,
            payload_hash=withdrawal.payload_hash,
            quote=quote,
            totp_step=step,
            ip=ip,
            red_flags=policy.flags_recorded(flags),
            review_seconds=seconds,
            rubber_stamp=rubber_stamp,
        )
        quorum_reached = policy.quorum_met(withdrawal, policy.live_approvals(withdrawal))
        if quorum_reached:
            policy.velocity_lock(withdrawal)
            if refusal := policy.velocity_refusal(withdrawal, now=now):
                raise WithdrawalError(refusal)
            withdrawal.state = State.APPROVED
            withdrawal.confirmed_quote = quote
            withdrawal.approved_at = now
            withdrawal.save(update_fields=["state", "confirmed_quote", "approved_at", "updated_at"])
            _intent_open(withdrawal)
            _on_commit_enqueue(tasks.submit_withdrawal, withdrawal.pk)
        # Last write of the transaction: every audited write in the system waits for the chain
        # head this takes, so it is held only from here to the commit.
        audit_event_record(
            action=AuditAction.WITHDRAWAL_APPROVED
            if quorum_reached
            else AuditAction.WITHDRAWAL_APPROVAL_ADDED,
            actor=approver,
            ip=ip,
            target=withdrawal,
            message="Approved with TOTP" + (" (quorum reached)" if quorum_reached else ""),
            data={
                "approval_id": approval.pk,
                "payload_hash": approval.payload_hash,
                "totp_step": step,
                "quote_id": quote.pk,
                "fee": quote.fee,
                "quote_expires_at": quote.expires_at,
                "red_flags": approval.red_flags,
                "review_seconds": seconds,
                "rubber_stamp": rubber_stamp,
            },
        )
    return withdrawal


def _intent_open(withdrawal: WithdrawalRequest) -> None:
    """The submission outbox row, created or re-opened (a withdrawal sent back for a new quote
    already has one) in one statement."""
    SubmissionIntent.objects.bulk_create(
        [
            SubmissionIntent(
                withdrawal=withdrawal, done_at=None, not_before=None, enqueued_at=timezone.now()
            )
        ],
        update_conflicts=True,
        unique_fields=["withdrawal"],
        update_fields=["done_at", "not_before", "enqueued_at"],
    )


def _shown_quote(withdrawal: WithdrawalRequest, quote_id: Any, approver: User) -> Quote:
    try:
        # Only a quote this approver was shown: confirming a fee means having seen it.
        return withdrawal.quotes.get(pk=int(quote_id), shown_to=approver)
    except (TypeError, ValueError, Quote.DoesNotExist):
        raise WithdrawalError("Get a fresh quote before approving.", field="quote") from None


def _check_quote(withdrawal: WithdrawalRequest, quote: Quote) -> None:
    if quote.expires_at is not None and quote.expires_at <= timezone.now():
        raise WithdrawalError(
            f"The quote you saw expired at {quote.expires_at:%H:%M:%S} UTC. Get a fresh quote: "
            "your code was not used.",
            field="quote",
        )
    if quote.fee is not None and withdrawal.fee_cap is not None and quote.fee > withdrawal.fee_cap:
        raise WithdrawalError(
            f"The venue fee ({quote.fee.normalize():f}) is above the cap the requester agreed "
            f"({withdrawal.fee_cap.normalize():f}). The requester must re-quote."
        )


def withdrawal_reject(
    *, withdrawal_id: int, approver: Any, reason: str, ip: str | None = None
) -> WithdrawalRequest:
    require_role(approver, APPROVER)
    reason = (reason or "").strip()
    if not reason:
        raise WithdrawalError("Give a reason for the rejection.", field="reason")
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        refusal = rules.reject_refusal(approver, withdrawal)
        if refusal:
            raise WithdrawalError(refusal)
        _transition(withdrawal, State.REJECTED, actor=approver, ip=ip, reason=reason[:500])
    return withdrawal


def withdrawal_cancel(*, withdrawal_id: int, requester: Any, ip: str | None = None):
    """The requester withdraws their own request before it is submitted."""
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        refusal = rules.cancel_refusal(requester, withdrawal)
        if withdrawal.requested_by_id != requester.pk:
            raise PermissionDenied(refusal)
        if refusal:
            raise WithdrawalError(refusal)
        _transition(withdrawal, State.CANCELLED, actor=requester, ip=ip, reason="by requester")
        SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=timezone.now())
    return withdrawal


def withdrawal_requote(*, withdrawal_id: int, requester: Any, ip: str | None = None):
    """Take a fresh quote as the new fee cap. The payload changes, so approvals are voided."""
    withdrawal = WithdrawalRequest.objects.select_related("venue").get(pk=withdrawal_id)
    if withdrawal.requested_by_id != requester.pk:
        raise PermissionDenied(rules.requote_refusal(requester, withdrawal))
    refusal = rules.requote_refusal(requester, withdrawal)
    if refusal:
        # Before the venue is asked: a quote nobody can use would still spend its budget.
        raise WithdrawalError(refusal)
    quote = _fetch_quote(
        withdrawal.venue, withdrawal_spec(withdrawal), purpose=Purpose.APPROVER_QUOTE
    )
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        refusal = rules.requote_refusal(requester, withdrawal)
        if refusal:
            raise WithdrawalError(refusal)
        old_cap = withdrawal.fee_cap
        withdrawal.fee_cap = quote.fee
        withdrawal.payload_hash = withdrawal.compute_payload_hash()
        withdrawal.save(update_fields=["fee_cap", "payload_hash", "updated_at"])
        voided = withdrawal.approvals.filter(voided=False).update(voided=True)
        _store_quote(withdrawal=withdrawal, quote=quote, user=requester)
        audit_event_record(
            action=AuditAction.WITHDRAWAL_REQUOTED,
            actor=requester,
            ip=ip,
            target=withdrawal,
            message=f"Fee cap {old_cap} → {quote.fee}; {voided} approval(s) voided",
            data={"old_fee_cap": old_cap, "fee_cap": quote.fee, "voided": voided},
        )
    return withdrawal


def _transition(
    withdrawal: WithdrawalRequest,
    state: str,
    *,
    action: AuditAction | None = None,
    actor: Any = None,
    ip: str | None = None,
    reason: str = "",
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    """Move a locked withdrawal to ``state`` and record it. Caller holds the transaction.

    A move back to ``approved`` is always the system's (a retry, a resend that reconciliation
    or two people allowed), so it must name its own action: the trail's
    ``withdrawal.approved`` is the human approval that reached the quorum, once.
    """
    previous = withdrawal.state
    if action is None:
        action = _STATE_ACTIONS[state]
    withdrawal.state = state
    if reason:
        withdrawal.reason = reason
    if detail:
        withdrawal.status_detail = detail[:500]
    if state in FINAL_STATES and withdrawal.finished_at is None:
        withdrawal.finished_at = timezone.now()
    elif state not in FINAL_STATES:
        withdrawal.finished_at = None
    if state == State.OUTCOME_UNKNOWN and previous != State.OUTCOME_UNKNOWN:
        withdrawal.unknown_since = timezone.now()
        withdrawal.reconcile_after = None
        withdrawal.reconcile_failures = 0
    if state not in {State.OUTCOME_UNKNOWN, State.SUBMITTING}:
        # Settled (or handed back): nothing waits for people any more.
        withdrawal.attention_since = None
        withdrawal.attention_reason = ""
    withdrawal.save()
    audit_event_record(
        action=action,
        actor=actor,
        ip=ip,
        target=withdrawal,
        message=reason or detail or f"{previous} → {state}",
        data={"from": previous, "to": state, **(data or {})},
    )


_STATE_ACTIONS: dict[str, AuditAction] = {
    State.PENDING_APPROVAL: AuditAction.WITHDRAWAL_SENT_BACK,
    State.SUBMITTING: AuditAction.WITHDRAWAL_SUBMITTING,
    State.SUBMITTED: AuditAction.WITHDRAWAL_SUBMITTED,
    State.COMPLETED: AuditAction.WITHDRAWAL_COMPLETED,
    State.FAILED: AuditAction.WITHDRAWAL_FAILED,
    State.REJECTED: AuditAction.WITHDRAWAL_REJECTED,
    State.CANCELLED: AuditAction.WITHDRAWAL_CANCELLED,
    State.EXPIRED: AuditAction.WITHDRAWAL_EXPIRED,
    State.OUTCOME_UNKNOWN: AuditAction.WITHDRAWAL_OUTCOME_UNKNOWN,
}


def _send_back_for_new_quote(withdrawal: WithdrawalRequest, why: str) -> None:
    """An expired or exceeded quote, or a changed payload: back to the requester, approvals
    void, never through."""
    withdrawal.approvals.filter(voided=False).update(voided=True)
    withdrawal.confirmed_quote = None
    SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=timezone.now())
    _transition(withdrawal, State.PENDING_APPROVAL, detail=why, data={"requote_needed": True})


def _raise_attention(withdrawal: WithdrawalRequest, why: str) -> None:
    """Ask people to settle it (the "Needs attention" queue), once; the reason stays current."""
    first = withdrawal.attention_since is None
    withdrawal.attention_since = withdrawal.attention_since or timezone.now()
    withdrawal.attention_reason = why[:500]
    withdrawal.save(update_fields=["attention_since", "attention_reason", "updated_at"])
    if first:
        audit_event_record(
            action=AuditAction.WITHDRAWAL_ATTENTION_RAISED,
            target=withdrawal,
            message=why,
            data={"state": withdrawal.state},
        )


@contextmanager
def venue_call(
    venue: Venue,
    *,
    withdrawal_id: int,
    purpose: str,
    priority: Purpose,
    deadline: datetime | None = None,
) -> Iterator[VenueClient]:
    """A client for one exchange with the venue about one withdrawal: closed afterwards, and
    everything said to and by the venue kept as its evidence (credentials redacted).
    ``priority`` ranks the call in the venue key's call budget."""
    exchanges = ExchangeRecorder()
    client = client_for(venue, exchange_log=exchanges, deadline=deadline, purpose=priority)
    try:
        yield client
    finally:
        client.close()
        venue_exchanges_record(
            withdrawal_id=withdrawal_id, purpose=purpose, exchanges=exchanges.exchanges
        )


# --- submitting ---------------------------------------------------------------------------
#
# An approved withdrawal is sent by a numbered *attempt* that holds a lease: it alone may send,
# and only before its deadline. The worker enforces the deadline itself (the venue client's
# transport starts no request after it; Celery's hard time limit ends the task), so once the
# deadline and a margin have passed, reconciliation may treat the attempt as over and, if the
# venue has no trace of it, open the next one. Immediately before sending, the attempt checks
# under the row lock that it is still the current one and that everything approved still holds.

Outcome = SubmissionAttempt.Outcome
_CHECK_RETRY_SECONDS = 30.0


class _IntentUpdate(enum.Enum):
    DONE = "done"  # the outbox row is finished
    RETRY = "retry"  # due again after a delay
    KEEP = "keep"  # reconciliation decides


@dataclass(frozen=True)
class _Next:
    state: str
    action: AuditAction
    intent: _IntentUpdate
    task: Callable[[], Any] | None = None  # the task to enqueue on commit
    void_approvals: bool = False


# One table: what each outcome of the current attempt does next. Tasks are reached through a
# function because withdrawals.tasks imports this module.
_OUTCOMES: dict[str, _Next] = {
    Outcome.ACCEPTED: _Next(
        State.SUBMITTED,
        AuditAction.WITHDRAWAL_SUBMITTED,
        _IntentUpdate.DONE,
        lambda: tasks.refresh_withdrawal_status,
    ),
    Outcome.REJECTED: _Next(State.FAILED, AuditAction.WITHDRAWAL_FAILED, _IntentUpdate.DONE),
    Outcome.DRIFT: _Next(State.FAILED, AuditAction.WITHDRAWAL_FAILED, _IntentUpdate.DONE),
    Outcome.BLOCKED: _Next(State.FAILED, AuditAction.WITHDRAWAL_FAILED, _IntentUpdate.DONE),
    Outcome.VOIDED: _Next(
        State.PENDING_APPROVAL,
        AuditAction.WITHDRAWAL_SENT_BACK,
        _IntentUpdate.DONE,
        void_approvals=True,
    ),
    Outcome.REQUOTE: _Next(
        State.PENDING_APPROVAL,
        AuditAction.WITHDRAWAL_SENT_BACK,
        _IntentUpdate.DONE,
        void_approvals=True,
    ),
    Outcome.CHECK_UNAVAILABLE: _Next(
        State.APPROVED,
        AuditAction.WITHDRAWAL_RETRY_SCHEDULED,
        _IntentUpdate.RETRY,
        lambda: tasks.submit_withdrawal,
    ),
    Outcome.UNAVAILABLE: _Next(
        State.APPROVED,
        AuditAction.WITHDRAWAL_RETRY_SCHEDULED,
        _IntentUpdate.RETRY,
        lambda: tasks.submit_withdrawal,
    ),
    Outcome.UNKNOWN: _Next(
        State.OUTCOME_UNKNOWN,
        AuditAction.WITHDRAWAL_OUTCOME_UNKNOWN,
        _IntentUpdate.KEEP,
        lambda: tasks.reconcile_withdrawal,
    ),
}


@dataclass(frozen=True)
class _Result:
    outcome: str
    message: str = ""
    reference: str = ""
    raw: dict[str, Any] | None = None
    retry_after: float | None = None
    venue_code: str = ""  # the venue's own code for a refusal (venues.refusals)


def _attempt_open(
    withdrawal: WithdrawalRequest, *, resubmission: bool = False
) -> SubmissionAttempt:
    """Open the next attempt on a locked withdrawal and move it to ``submitting``."""
    now = timezone.now()
    deadline = now + timedelta(seconds=settings.SUBMIT_DEADLINE_SECONDS)
    if withdrawal.attempt:  # attempts are numbered from 1: before the first there is none
        withdrawal.attempts.filter(finished_at__isnull=True).update(superseded=True)
    withdrawal.attempt += 1
    bind_attempt(withdrawal.attempt)  # the task's later log lines name this attempt
    attempt = SubmissionAttempt.objects.create(
        withdrawal=withdrawal,
        number=withdrawal.attempt,
        resubmission=resubmission,
        started_at=now,
        deadline_at=deadline,
    )
    withdrawal.submit_started_at = now
    withdrawal.submit_deadline_at = deadline
    _transition(
        withdrawal,
        State.SUBMITTING,
        detail="Re-sending under the same idempotency key" if resubmission else "Sending",
        data={"attempt": withdrawal.attempt, "deadline": deadline},
    )
    return attempt


def _payload_intact(withdrawal: WithdrawalRequest) -> bool:
    """The payload as it is now (venue account and URL included) is the one the approvals
    bound, and enough live approvals bind it."""
    if withdrawal.compute_payload_hash() != withdrawal.payload_hash:
        return False
    return policy.quorum_met(withdrawal, policy.live_approvals(withdrawal))


def _send_blocker(withdrawal: WithdrawalRequest) -> _Result | None:
    """Why nothing may be sent now, checked without the venue; None when all still holds."""
    address_state = withdrawal.whitelisted_address.state
    if address_state != AddressState.ACTIVE:
        was = "revoked from" if address_state == AddressState.REVOKED else "no longer active on"
        return _Result(Outcome.BLOCKED, f"Not sent: the destination was {was} the whitelist.")
    if not _payload_intact(withdrawal):
        return _Result(
            Outcome.VOIDED,
            "Not sent: what was approved changed (venue account or destination); the "
            "approvals are void.",
        )
    quote = withdrawal.confirmed_quote
    if quote is not None and quote.token and quote.expires_at <= timezone.now():
        return _Result(Outcome.REQUOTE, "The venue's quote expired before submission.")
    return None


def withdrawal_submit(*, withdrawal_id: int) -> WithdrawalRequest:
    """Send an approved withdrawal to its venue, at most once.

    Safe to call any number of times, concurrently: only the caller that moves the row from
    ``approved`` to ``submitting`` opens an attempt; every other caller returns at once.
    """
    with transaction.atomic():
        withdrawal = _lock_for_send(withdrawal_id, opening=True)
        if withdrawal.state != State.APPROVED:
            return withdrawal
        attempt = _attempt_open(withdrawal)
    return _attempt_run(withdrawal_id, attempt.number, opened=(withdrawal, attempt))


def _attempt_run(
    withdrawal_id: int,
    number: int,
    *,
    opened: tuple[WithdrawalRequest, SubmissionAttempt] | None = None,
) -> WithdrawalRequest:
    """Everything one attempt does with the venue, then its outcome recorded.

    ``opened``: the withdrawal and attempt as the transaction that opened the attempt committed
    them, so they need not be read again; whatever changed since is caught by the fence, which
    reads the withdrawal again under its lock.
    """
    if opened is None:
        withdrawal = WithdrawalRequest.objects.select_related(
            "venue", "whitelisted_address__venue", "confirmed_quote"
        ).get(pk=withdrawal_id)
        attempt = withdrawal.attempts.get(number=number)
    else:
        withdrawal, attempt = opened
    result = _send_blocker(withdrawal)
    if result is None:
        # The venue's saved key must still point to the approved address.
        try:
            drift = address_verify_before_submit(address=withdrawal.whitelisted_address)
        except VenueCheckUnavailable as exc:
            result = _Result(
                Outcome.CHECK_UNAVAILABLE, exc.message, retry_after=_CHECK_RETRY_SECONDS
            )
        else:
            result = _Result(Outcome.DRIFT, f"Not sent: {drift}") if drift else None
    if result is None:
        with venue_call(
            withdrawal.venue,
            withdrawal_id=withdrawal_id,
            purpose="submit",
            priority=Purpose.SUBMIT,
            deadline=attempt.deadline_at,
        ) as client:
            result = _send(withdrawal, attempt, client)
    return _attempt_finish(withdrawal_id, number, result)


def _quote_for_send(withdrawal: WithdrawalRequest, client: VenueClient) -> VenueQuote | None:
    """The quote the send carries. A confirmed quote past its expiry is never used; without a
    fee bound the venue enforces, the fee is quoted again right before the send."""
    confirmed = withdrawal.confirmed_quote
    if confirmed is not None and confirmed.token:
        return _venue_quote(confirmed)  # the venue binds it; its expiry was checked
    if (
        client.supports_fee_cap
        and confirmed is not None
        and confirmed.expires_at is not None
        and confirmed.expires_at > timezone.now()
    ):
        return _venue_quote(confirmed)
    fresh = client.quote(withdrawal_spec(withdrawal))
    _store_quote(withdrawal=withdrawal, quote=fresh, user=None)
    if fresh.fee is not None and withdrawal.fee_cap is not None and fresh.fee > withdrawal.fee_cap:
        raise _FeeAboveCap(
            f"The venue fee rose to {fresh.fee.normalize():f}, above the approved cap of "
            f"{withdrawal.fee_cap.normalize():f}."
        )
    return fresh


class _FeeAboveCap(Exception):
    pass


def _send(
    withdrawal: WithdrawalRequest, attempt: SubmissionAttempt, client: VenueClient
) -> _Result:
    try:
        quote = _quote_for_send(withdrawal, client)
    except _FeeAboveCap as exc:
        return _Result(Outcome.REQUOTE, str(exc))
    except VenueError as exc:  # a quote is a read: nothing was sent
        return _Result(
            Outcome.UNAVAILABLE,
            f"Could not re-check the fee: {exc.message}",
            retry_after=getattr(exc, "retry_after", None) or _CHECK_RETRY_SECONDS,
        )
    fence = _send_fence(withdrawal.pk, attempt)
    if fence is not None:
        return fence
    try:
        receipt = client.submit(withdrawal_spec(withdrawal), quote=quote)
    except VenueQuoteRefused as exc:
        return _Result(Outcome.REQUOTE, f"Venue refused the quote: {exc.message}")
    except VenueAccessRefused as exc:
        if attempt.resubmission:
            # The first send may have gone through; a refused login says nothing about it.
            return _Result(Outcome.UNKNOWN, f"Venue refused our credentials: {exc.message}")
        return _refused(withdrawal, exc)
    except VenueRejected as exc:
        return _refused(withdrawal, exc)
    except VenueUnavailable as exc:
        return _Result(Outcome.UNAVAILABLE, exc.message, retry_after=exc.retry_after)
    except VenueOutcomeUnknown as exc:
        return _Result(Outcome.UNKNOWN, exc.message)
    except Exception as exc:  # a bug after the request may have left: never assume it did not
        logger.exception("unexpected error submitting withdrawal %s", withdrawal.pk)
        return _Result(Outcome.UNKNOWN, type(exc).__name__)
    return _Result(Outcome.ACCEPTED, reference=receipt.reference, raw=receipt.raw)


def _refused(withdrawal: WithdrawalRequest, exc: VenueRejected) -> _Result:
    refusal = _refusal(withdrawal.venue, exc)
    return _Result(Outcome.REJECTED, f"Venue refused: {refusal.message}", venue_code=refusal.code)


def _send_fence(withdrawal_id: int, attempt: SubmissionAttempt) -> _Result | None:
    """The last check before the send, under the row lock: this attempt is still the current
    one, within its deadline, and everything approved still holds.

    The attempt's row is written without being read again: attempts change only under their
    withdrawal's lock, held here, and an attempt's deadline never moves once opened."""
    with transaction.atomic():
        withdrawal = _lock_for_send(withdrawal_id)
        if withdrawal.state != State.SUBMITTING or withdrawal.attempt != attempt.number:
            return _Result(Outcome.SUPERSEDED, "Superseded before it sent; nothing was sent.")
        if timezone.now() >= attempt.deadline_at:
            return _Result(
                Outcome.UNAVAILABLE, "The attempt's deadline passed before sending; nothing sent."
            )
        blocker = _send_blocker(withdrawal)
        if blocker is not None:
            return blocker
        attempt.sent_at = timezone.now()
        SubmissionAttempt.objects.filter(pk=attempt.pk).update(sent_at=attempt.sent_at)
    return None


def _attempt_finish(withdrawal_id: int, number: int, result: _Result) -> WithdrawalRequest:
    with transaction.atomic():
        withdrawal = _lock_for_send(withdrawal_id)
        # Written without a read: attempts change only under the withdrawal's lock, held here.
        venue_code = f" (venue code: {result.venue_code})" if result.venue_code else ""
        withdrawal.attempts.filter(number=number).update(
            outcome=result.outcome,
            detail=f"{result.message}{venue_code}"[:500],
            reference=result.reference,
            finished_at=timezone.now(),
        )
        if withdrawal.state != State.SUBMITTING or withdrawal.attempt != number:
            # A superseded attempt: its answer still counts. If it was sent, it is a payment.
            if result.outcome == Outcome.ACCEPTED:
                _late_receipt(withdrawal, number=number, reference=result.reference)
            return withdrawal
        # The current attempt is the highest number: the first has no others to hear from.
        late = _late_references(withdrawal, exclude=number) if number > 1 else []
        if late and result.outcome != Outcome.ACCEPTED:
            # An earlier attempt's send went through after all: that is the payment.
            _adopt_reference(withdrawal, late[0], why="sent by an earlier attempt")
            return withdrawal
        _apply_outcome(withdrawal, result)
        for reference in late:
            if reference != withdrawal.venue_reference:
                _duplicate_record(withdrawal, reference, venue_status="")
    return withdrawal


def _apply_outcome(withdrawal: WithdrawalRequest, result: _Result) -> None:
    plan = _OUTCOMES[result.outcome]
    intent = SubmissionIntent.objects.filter(withdrawal=withdrawal)
    now = timezone.now()
    countdown: float | None = None
    if plan.intent is _IntentUpdate.DONE:
        intent.update(done_at=now)
    elif plan.intent is _IntentUpdate.RETRY:
        countdown = max(result.retry_after or 5.0, 1.0)
        intent.update(not_before=now + timedelta(seconds=countdown))
    data: dict[str, Any] = {"attempt": withdrawal.attempt, "outcome": str(result.outcome)}
    detail = result.message
    if result.outcome == Outcome.ACCEPTED:
        withdrawal.venue_reference = result.reference
        withdrawal.submitted_at = now
        detail = f"Venue reference {result.reference}"
        data |= {"reference": result.reference, "response": json_safe(result.raw or {})}
        countdown = 1
    elif result.outcome == Outcome.UNKNOWN:
        detail = f"{result.message}. Reconciling with the venue's history."
        countdown = settings.RECONCILE_GRACE_SECONDS
    elif result.outcome == Outcome.UNAVAILABLE:
        detail = f"Venue unavailable, retrying: {result.message}"
        data["retry_after"] = countdown
    elif result.outcome == Outcome.CHECK_UNAVAILABLE:
        detail = f"Waiting to check the destination at the venue: {result.message}"
    elif result.outcome == Outcome.REJECTED and result.venue_code:
        withdrawal.venue_error_code = result.venue_code[:200]
        data["venue_code"] = result.venue_code
    if plan.void_approvals:
        withdrawal.approvals.filter(voided=False).update(voided=True)
        withdrawal.confirmed_quote = None
        data["requote_needed"] = True
    _transition(withdrawal, plan.state, action=plan.action, detail=detail, data=data)
    if plan.task is not None:
        _on_commit_enqueue(plan.task(), withdrawal.pk, countdown=countdown)


def _late_references(withdrawal: WithdrawalRequest, *, exclude: int) -> list[str]:
    """References venue answers gave to this withdrawal's other attempts."""
    return list(
        withdrawal.attempts.filter(outcome=Outcome.ACCEPTED)
        .exclude(number=exclude)
        .exclude(reference="")
        .order_by("number")
        .values_list("reference", flat=True)
    )


def _late_receipt(withdrawal: WithdrawalRequest, *, number: int, reference: str) -> None:
    """A superseded attempt was accepted by the venue: record it, and make the books say so."""
    audit_event_record(
        action=AuditAction.WITHDRAWAL_LATE_RECEIPT,
        target=withdrawal,
        message=f"A superseded attempt ({number}) was accepted as {reference}",
        data={"attempt": number, "reference": reference},
    )
    if withdrawal.state == State.SUBMITTING:
        return  # the current attempt's own outcome decides (see _attempt_finish)
    if not withdrawal.venue_reference:
        _adopt_reference(withdrawal, reference, why="sent by a superseded attempt")
    elif reference != withdrawal.venue_reference:
        _duplicate_record(withdrawal, reference, venue_status="")


def _adopt_reference(withdrawal: WithdrawalRequest, reference: str, *, why: str) -> None:
    """The venue holds this withdrawal as ``reference``: whatever we had concluded, it is sent."""
    withdrawal.venue_reference = reference
    withdrawal.submitted_at = withdrawal.submitted_at or timezone.now()
    SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=timezone.now())
    _transition(
        withdrawal,
        State.SUBMITTED,
        detail=f"Venue reference {reference} ({why})",
        data={"reference": reference, "late": True},
    )
    _on_commit_enqueue(tasks.refresh_withdrawal_status, withdrawal.pk, countdown=1)


def _duplicate_record(withdrawal: WithdrawalRequest, reference: str, *, venue_status: str) -> bool:
    """Record a second venue withdrawal for this one (once) and raise it. True if new."""
    _, created = DuplicatePayment.objects.get_or_create(
        withdrawal=withdrawal, reference=reference, defaults={"venue_status": venue_status[:60]}
    )
    if not created:
        return False
    audit_event_record(
        action=AuditAction.WITHDRAWAL_DUPLICATE_DETECTED,
        target=withdrawal,
        message=f"Paid twice: venue withdrawal {reference} also carries this request",
        data={"reference": reference, "kept": withdrawal.venue_reference},
    )
    _on_commit_enqueue(tasks.cancel_duplicates, withdrawal.pk)
    return True


# --- tracking -----------------------------------------------------------------------------

_FINAL_FROM_VENUE = {
    VenueState.COMPLETED: State.COMPLETED,
    VenueState.FAILED: State.FAILED,
    VenueState.CANCELLED: State.CANCELLED,
}


def _apply_venue_status(withdrawal: WithdrawalRequest, status: VenueStatus) -> None:
    """Record a venue status on a locked, submitted withdrawal."""
    withdrawal.venue_status = status.raw_status[:40]
    withdrawal.venue_txid = status.txid or withdrawal.venue_txid
    if status.fee is not None:
        withdrawal.fee_charged = status.fee
    withdrawal.last_checked_at = timezone.now()
    target = _FINAL_FROM_VENUE.get(status.state)
    if target is None:
        withdrawal.save(
            update_fields=["venue_status", "venue_txid", "fee_charged", "last_checked_at"]
        )
        return
    _transition(
        withdrawal,
        target,
        detail=status.detail or f"Venue reports {status.raw_status}",
        data={"venue_status": status.raw_status, "txid": status.txid, "fee": status.fee},
    )


def withdrawal_status_refresh(*, withdrawal_id: int) -> int:
    """Poll the venue for one submitted withdrawal now (right after it was sent). Returns how
    many withdrawals were polled (0 when it is no longer submitted)."""
    return _statuses_poll(WithdrawalRequest.objects.filter(pk=withdrawal_id), every=True)


def _status_due(withdrawal: WithdrawalRequest, now: datetime) -> bool:
    """Long-pending withdrawals are polled less often (venues.budget.status_poll_delay)."""
    if withdrawal.last_checked_at is None:
        return True
    pending = (now - (withdrawal.submitted_at or withdrawal.updated_at)).total_seconds()
    return withdrawal.last_checked_at + timedelta(seconds=status_poll_delay(pending)) <= now


def _references_of(due: list[WithdrawalRequest]) -> dict[int, set[str]]:
    """Every venue reference we know for each of ``due`` (withdrawals at one venue): the one it
    is booked under, those its attempts were answered with, and those the submit journal
    recorded. Two reads for the whole batch, however many are due."""
    known = {w.pk: {w.venue_reference} if w.venue_reference else set() for w in due}
    answered = (
        SubmissionAttempt.objects.filter(withdrawal__in=due)
        .exclude(reference="")
        .values_list("withdrawal_id", "reference")
    )
    for pk, reference in answered:
        known[pk].add(reference)
    by_request = {w.request_id: w.pk for w in due}
    journal = SubmitJournal(due[0].venue.kind)
    for request_id, reference in journal.references_by_request(list(by_request)):
        known[by_request[request_id]].add(reference)
    return known


def withdrawal_statuses_refresh(*, venue_id: int, asset: str) -> int:
    """Poll one venue for every submitted withdrawal of one asset that is due, in one read of
    its history where the venue allows (``statuses``), and look in the same answer for a second
    venue withdrawal carrying one of our requests (a duplicate payment). Where our request id
    itself travels in the venue's history (KuCoin's remark, 1Konto's instruction), each
    withdrawal's ``traces`` are read too, since a late duplicate may have no reference of ours.

    Returns how many withdrawals were polled. Evidence is kept for those whose status changed.
    """
    return _statuses_poll(
        WithdrawalRequest.objects.filter(venue_id=venue_id, asset=asset), every=False
    )


def _statuses_poll(rows: QuerySet[WithdrawalRequest], *, every: bool) -> int:
    """``withdrawal_statuses_refresh`` on ``rows`` (one venue and asset): those submitted and
    due, or with ``every``, all those submitted."""
    now = timezone.now()
    rows = rows.select_related("venue").filter(state=State.SUBMITTED)
    due = [w for w in rows.order_by("pk") if every or _status_due(w, now)]
    if not due:
        return 0
    references = _references_of(due)
    recorder = ExchangeRecorder()
    client = client_for(due[0].venue, exchange_log=recorder, purpose=Purpose.STATUS)
    traces: dict[int, list[VenueStatus]] = {}
    try:
        answers = client.statuses(
            withdrawal_spec(due[0]), sorted(set().union(*references.values()))
        )
        if client.request_id_in_history:
            traces = {w.pk: client.traces(withdrawal_spec(w)) for w in due}
    except VenueError as exc:
        logger.info("status of %s %s not available: %s", due[0].venue, due[0].asset, exc.message)
        WithdrawalRequest.objects.filter(pk__in=[w.pk for w in due]).update(last_checked_at=now)
        return 0
    finally:
        client.close()
    changed: list[int] = []
    for polled in due:
        with transaction.atomic():
            withdrawal = _lock(polled.pk)
            if withdrawal.state != State.SUBMITTED:
                continue
            seen = {r: answers[r] for r in references[polled.pk] if r in answers} | {
                t.reference: t for t in traces.get(polled.pk, [])
            }
            for reference, trace in seen.items():
                if reference != withdrawal.venue_reference:
                    _duplicate_record(withdrawal, reference, venue_status=trace.raw_status)
            own = seen.get(withdrawal.venue_reference)
            if own is None:  # not listed yet: the venue's history lags behind its answer
                withdrawal.last_checked_at = now
                withdrawal.save(update_fields=["last_checked_at"])
                continue
            before = (withdrawal.state, withdrawal.venue_status)
            _apply_venue_status(withdrawal, own)
            if (withdrawal.state, withdrawal.venue_status) != before:
                changed.append(withdrawal.pk)
    for pk in changed:
        venue_exchanges_record(withdrawal_id=pk, purpose="status", exchanges=recorder.exchanges)
    return len(due)


def withdrawal_duplicates_cancel(*, withdrawal_id: int) -> list[str]:
    """Cancel, where the venue still can, every recorded duplicate not yet tried. Returns the
    references for which the venue confirmed the cancel."""
    withdrawal = WithdrawalRequest.objects.select_related("venue").get(pk=withdrawal_id)
    pending = list(withdrawal.duplicates.filter(cancel_result=""))
    if not pending:
        return []
    spec = withdrawal_spec(withdrawal)
    results: dict[int, str] = {}
    with venue_call(
        withdrawal.venue, withdrawal_id=withdrawal_id, purpose="cancel", priority=Purpose.SUBMIT
    ) as client:
        for duplicate in pending:
            if not duplicate.reference:
                results[duplicate.pk] = "not cancellable: the venue's history gives it no id"
                continue
            if not client.supports_cancel:
                results[duplicate.pk] = "not cancellable: the venue documents no cancel"
                continue
            try:
                cancelled = client.cancel(spec, reference=duplicate.reference)
            except VenueError as exc:
                results[duplicate.pk] = f"cancel refused: {exc.message}"[:300]
            else:
                results[duplicate.pk] = "cancel accepted" if cancelled else "cancel not confirmed"
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        for duplicate in withdrawal.duplicates.select_for_update().filter(pk__in=results):
            duplicate.cancel_result = results[duplicate.pk]
            duplicate.save(update_fields=["cancel_result"])
            audit_event_record(
                action=AuditAction.WITHDRAWAL_DUPLICATE_DETECTED,
                target=withdrawal,
                message=f"Duplicate {duplicate.reference}: {duplicate.cancel_result}",
                data={"reference": duplicate.reference, "cancel": duplicate.cancel_result},
            )
    return [d.reference for d in pending if results.get(d.pk) == "cancel accepted"]


# --- reconciling --------------------------------------------------------------------------


def _backoff_seconds(failures: int) -> float:
    return min(settings.RECONCILE_BACKOFF_MAX_SECONDS, 5.0 * 2 ** min(failures, 16))


def withdrawal_reconcile(*, withdrawal_id: int) -> WithdrawalRequest:
    """Settle ``outcome_unknown`` (or a ``submitting`` whose lease is over) from what the venue
    says about this withdrawal, and nothing else.

    Found: submitted (and its status applied). No trace, on a venue where absence is proof:
    back to ``approved`` for a new attempt. A refused, failed or ambiguous read proves nothing:
    it stays unknown, is looked at again with backoff, and goes to people after a while.
    """
    withdrawal = WithdrawalRequest.objects.select_related("venue").get(pk=withdrawal_id)
    now = timezone.now()
    if withdrawal.state == State.SUBMITTING:
        deadline = withdrawal.submit_deadline_at
        if deadline is not None and rules.lease_expiry(deadline) > now:
            return withdrawal  # the attempt may still be working: its lease is not over
        with transaction.atomic():
            withdrawal = _lock(withdrawal_id)
            if withdrawal.state != State.SUBMITTING:
                return withdrawal
            _transition(
                withdrawal,
                State.OUTCOME_UNKNOWN,
                detail="The submission's lease ran out; reconciling with the venue's history.",
                data={"attempt": withdrawal.attempt},
            )
    if withdrawal.state != State.OUTCOME_UNKNOWN:
        return withdrawal
    # A request we lost track of may still be on its way to, or queued at, the venue: its
    # history only proves "never sent" once the grace period has passed.
    now = timezone.now()
    since = withdrawal.unknown_since or withdrawal.updated_at
    if since > now - timedelta(seconds=settings.RECONCILE_GRACE_SECONDS):
        return withdrawal
    if withdrawal.reconcile_after is not None and withdrawal.reconcile_after > now:
        return withdrawal
    spec = withdrawal_spec(withdrawal)
    found: VenueStatus | None = None
    failure = ambiguity = ""
    with venue_call(
        withdrawal.venue, withdrawal_id=withdrawal_id, purpose="reconcile", priority=Purpose.SUBMIT
    ) as client:
        idempotent = client.idempotent_submit
        try:
            found = client.find(spec)
        except VenueAmbiguous as exc:
            ambiguity = exc.message
        except VenueError as exc:
            failure = exc.message
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.state != State.OUTCOME_UNKNOWN:
            return withdrawal
        if ambiguity:
            _raise_attention(withdrawal, f"Cannot tell from the venue's history: {ambiguity}")
            return withdrawal
        if failure:
            return _reconcile_postpone(withdrawal, failure)
        if found is not None:
            _reconciled_found(withdrawal, found)
            return withdrawal
        if not idempotent:
            _return_for_resend(
                withdrawal,
                detail="The venue has no trace of it: nothing was sent, safe to send again.",
                data={"reconciled": "not_found"},
            )
            return withdrawal
        first = withdrawal.attempts.order_by("number").first()
        window_open = first is not None and first.started_at > now - timedelta(
            seconds=settings.RESUBMIT_WINDOW_SECONDS
        )
        if not window_open:
            _raise_attention(
                withdrawal,
                "The venue shows no trace of it and the window for re-sending under the same "
                "idempotency key has passed: confirm at the venue.",
            )
            return withdrawal
        # The same idempotency key: the venue returns the original result if it has one, and
        # creates nothing new. It goes through the same guarded path as a first submission.
        attempt = _attempt_open(withdrawal, resubmission=True)
    return _attempt_run(withdrawal_id, attempt.number, opened=(withdrawal, attempt))


def _reconcile_postpone(withdrawal: WithdrawalRequest, failure: str) -> WithdrawalRequest:
    withdrawal.reconcile_failures += 1
    delay = _backoff_seconds(withdrawal.reconcile_failures)
    withdrawal.reconcile_after = timezone.now() + timedelta(seconds=delay)
    withdrawal.status_detail = f"Venue history not readable ({failure}); looking again."[:500]
    withdrawal.save(
        update_fields=[
            "reconcile_failures",
            "reconcile_after",
            "status_detail",
            "updated_at",
        ]
    )
    logger.info("reconciliation of %s postponed %.0fs: %s", withdrawal.pk, delay, failure)
    since = withdrawal.unknown_since or withdrawal.updated_at
    if since <= timezone.now() - timedelta(seconds=settings.RECONCILE_ATTENTION_SECONDS):
        _raise_attention(withdrawal, f"The venue's history has been unreadable: {failure}")
    _on_commit_enqueue(tasks.reconcile_withdrawal, withdrawal.pk, countdown=delay)
    return withdrawal


def _reconciled_found(withdrawal: WithdrawalRequest, found: VenueStatus) -> None:
    withdrawal.venue_reference = found.reference
    withdrawal.submitted_at = withdrawal.submitted_at or timezone.now()
    _transition(
        withdrawal,
        State.SUBMITTED,
        detail=f"Found at the venue as {found.reference}",
        data={"reconciled": "found", "reference": found.reference},
    )
    SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=timezone.now())
    _apply_venue_status(withdrawal, found)


def _return_for_resend(
    withdrawal: WithdrawalRequest,
    *,
    detail: str,
    data: dict[str, Any],
    actor: Any = None,
    ip: str | None = None,
) -> None:
    SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=None, not_before=None)
    _transition(
        withdrawal,
        State.APPROVED,
        action=AuditAction.WITHDRAWAL_RETURNED_FOR_RESEND,
        actor=actor,
        ip=ip,
        detail=detail,
        data=data,
    )
    _on_commit_enqueue(tasks.submit_withdrawal, withdrawal.pk)


# --- people settle what reconciliation cannot ----------------------------------------------


def withdrawal_resolution_propose(
    *,
    withdrawal_id: int,
    actor: User,
    finding: str,
    reference: str = "",
    evidence: str,
    code: str,
    ip: str | None = None,
) -> Resolution:
    """The first of two people records what the venue shows ("found as X", "never sent")."""
    reference = (reference or "").strip()
    evidence = (evidence or "").strip()
    if finding not in Resolution.Finding.values:
        raise WithdrawalError("Choose what you found at the venue.", field="finding")
    if finding == Resolution.Finding.FOUND and not reference:
        raise WithdrawalError("Give the venue's reference for the withdrawal.", field="reference")
    if len(reference) > 128:
        raise WithdrawalError("A venue reference is at most 128 characters.", field="reference")
    if not evidence:
        raise WithdrawalError("Describe the evidence you checked at the venue.", field="evidence")
    withdrawal = WithdrawalRequest.objects.get(pk=withdrawal_id)
    refusal = rules.resolution_propose_refusal(actor, withdrawal, now=timezone.now())
    if refusal:
        raise WithdrawalError(refusal)
    step = totp_code_verify(user=actor, code=code, ip=ip, purpose="settling a withdrawal")
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        refusal = rules.resolution_propose_refusal(actor, withdrawal, now=timezone.now())
        if refusal:
            raise WithdrawalError(refusal)
        resolution = Resolution.objects.create(
            withdrawal=withdrawal,
            finding=finding,
            reference=reference if finding == Resolution.Finding.FOUND else "",
            evidence=evidence[:5000],
            proposed_by=actor,
            proposed_totp_step=step,
        )
        audit_event_record(
            action=AuditAction.WITHDRAWAL_RESOLUTION_PROPOSED,
            actor=actor,
            ip=ip,
            target=withdrawal,
            message=f"{resolution.get_finding_display()}"
            + (f" as {resolution.reference}" if resolution.reference else ""),
            data={
                "resolution_id": resolution.pk,
                "finding": finding,
                "reference": resolution.reference,
                "evidence": resolution.evidence,
                "totp_step": step,
            },
        )
    return resolution


def withdrawal_resolution_confirm(
    *, resolution_id: int, actor: User, code: str, ip: str | None = None
) -> WithdrawalRequest:
    """A second person confirms the finding with their own code; only then does it apply.

    "Found": submitted as that reference, tracked from there. "Never sent": back to approved,
    and the next attempt sends it.
    """
    resolution = Resolution.objects.select_related("withdrawal").get(pk=resolution_id)
    refusal = rules.resolution_confirm_refusal(actor, resolution, now=timezone.now())
    if refusal:
        raise WithdrawalError(refusal)
    step = totp_code_verify(user=actor, code=code, ip=ip, purpose="settling a withdrawal")
    with transaction.atomic():
        withdrawal = _lock(resolution.withdrawal_id)
        resolution = Resolution.objects.select_for_update().get(pk=resolution_id)
        refusal = rules.resolution_confirm_refusal(actor, resolution, now=timezone.now())
        if refusal:
            raise WithdrawalError(refusal)
        resolution.status = Resolution.Status.CONFIRMED
        resolution.decided_by = actor
        resolution.decided_at = timezone.now()
        resolution.decided_totp_step = step
        resolution.save()
        audit_event_record(
            action=AuditAction.WITHDRAWAL_RESOLUTION_CONFIRMED,
            actor=actor,
            ip=ip,
            target=withdrawal,
            message=f"Confirmed: {resolution.get_finding_display()}"
            + (f" as {resolution.reference}" if resolution.reference else ""),
            data={
                "resolution_id": resolution.pk,
                "finding": resolution.finding,
                "reference": resolution.reference,
                "evidence": resolution.evidence,
                "proposed_by": resolution.proposed_by_id,
                "totp_step": step,
            },
        )
        if withdrawal.state == State.SUBMITTING:
            withdrawal.attempts.filter(finished_at__isnull=True).update(superseded=True)
        if resolution.finding == Resolution.Finding.FOUND:
            SubmitJournal(withdrawal.venue.kind).mark_found(
                withdrawal.request_id, resolution.reference
            )
            withdrawal.venue_reference = resolution.reference
            withdrawal.submitted_at = withdrawal.submitted_at or timezone.now()
            SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=timezone.now())
            _transition(
                withdrawal,
                State.SUBMITTED,
                actor=actor,
                ip=ip,
                detail=f"Found at the venue as {resolution.reference} (settled by two people)",
                data={"resolution_id": resolution.pk, "reference": resolution.reference},
            )
            _on_commit_enqueue(tasks.refresh_withdrawal_status, withdrawal.pk, countdown=1)
        else:
            _return_for_resend(
                withdrawal,
                actor=actor,
                ip=ip,
                detail="Confirmed never sent by two people; sending again.",
                data={"resolution_id": resolution.pk},
            )
    return withdrawal


def withdrawal_resolution_decline(
    *, resolution_id: int, actor: User, note: str, ip: str | None = None
) -> Resolution:
    """The second person disagrees: the proposal is closed and the withdrawal stays unsettled."""
    note = (note or "").strip()
    if not note:
        raise WithdrawalError("Say why you decline.", field="note")
    with transaction.atomic():
        resolution = Resolution.objects.select_for_update().get(pk=resolution_id)
        refusal = rules.resolution_decline_refusal(actor, resolution)
        if refusal:
            raise WithdrawalError(refusal)
        resolution.status = Resolution.Status.DECLINED
        resolution.decided_by = actor
        resolution.decided_at = timezone.now()
        resolution.decision_note = note[:500]
        resolution.save()
        audit_event_record(
            action=AuditAction.WITHDRAWAL_RESOLUTION_DECLINED,
            actor=actor,
            ip=ip,
            target=resolution.withdrawal,
            message=note[:200],
            data={"resolution_id": resolution.pk, "finding": resolution.finding},
        )
    return resolution


def withdrawal_duplicate_acknowledge(
    *, duplicate_id: int, actor: User, code: str, note: str, ip: str | None = None
) -> DuplicatePayment:
    """Someone has taken the duplicate payment in hand (recovery is outside Countersign)."""
    note = (note or "").strip()
    if not note:
        raise WithdrawalError("Say what is being done about it.", field="note")
    duplicate = DuplicatePayment.objects.select_related("withdrawal").get(pk=duplicate_id)
    refusal = rules.duplicate_acknowledge_refusal(actor, duplicate)
    if refusal:
        raise WithdrawalError(refusal)
    step = totp_code_verify(user=actor, code=code, ip=ip, purpose="a duplicate payment")
    with transaction.atomic():
        duplicate = DuplicatePayment.objects.select_for_update().get(pk=duplicate_id)
        refusal = rules.duplicate_acknowledge_refusal(actor, duplicate)
        if refusal:
            raise WithdrawalError(refusal)
        duplicate.acknowledged_by = actor
        duplicate.acknowledged_at = timezone.now()
        duplicate.acknowledge_note = note[:500]
        duplicate.save()
        audit_event_record(
            action=AuditAction.WITHDRAWAL_DUPLICATE_ACKNOWLEDGED,
            actor=actor,
            ip=ip,
            target=duplicate.withdrawal,
            message=note[:200],
            data={"reference": duplicate.reference, "totp_step": step},
        )
    return duplicate


# --- periodic -----------------------------------------------------------------------------


def withdrawals_expire_stale() -> int:
    """Expire requests nobody approved in time (the wait their rule allowed). Returns how many
    expired."""
    now = timezone.now()
    cutoff = now - timedelta(hours=settings.WITHDRAWAL_EXPIRY_HOURS)
    due = Q(expires_at__lte=now) | Q(expires_at__isnull=True, created_at__lt=cutoff)
    expired = 0
    for pk in WithdrawalRequest.objects.filter(due, state=State.PENDING_APPROVAL).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            withdrawal = _lock(pk)
            if withdrawal.state == State.PENDING_APPROVAL:
                _transition(withdrawal, State.EXPIRED, detail="Not approved in time.")
                expired += 1
    return expired


def submission_intents_sweep() -> list[int]:
    """Outbox sweeper: the ids of approved withdrawals whose submission is due again.

    Covers a task message lost with the broker (or never sent because it was down). The
    submission guard makes a duplicate enqueue harmless.
    """
    now = timezone.now()
    due = (
        SubmissionIntent.objects.filter(done_at__isnull=True, withdrawal__state=State.APPROVED)
        .exclude(not_before__gt=now)
        .exclude(enqueued_at__gt=now - timedelta(seconds=settings.INTENT_RESEND_SECONDS))
    )
    ids = list(due.values_list("withdrawal_id", flat=True))
    SubmissionIntent.objects.filter(withdrawal_id__in=ids).update(enqueued_at=now)
    return ids


def withdrawals_needing_attention() -> dict[str, list[Any]]:
    """What the periodic refresh should look at: the (venue, asset) pairs with submitted
    withdrawals to poll (one batched read each), and the ids of unknown outcomes to reconcile
    and of submissions whose lease has run out."""
    now = timezone.now()
    qs = WithdrawalRequest.objects
    unknown = qs.filter(state=State.OUTCOME_UNKNOWN).exclude(reconcile_after__gt=now)
    lapsed = [
        pk
        for pk, deadline in qs.filter(state=State.SUBMITTING).values_list(
            "pk", "submit_deadline_at"
        )
        if deadline is None or rules.lease_expiry(deadline) <= now
    ]
    return {
        "refresh": list(
            qs.filter(state=State.SUBMITTED)
            .values_list("venue_id", "asset")
            .distinct()
            .order_by("venue_id", "asset")
        ),
        "reconcile": list(unknown.values_list("pk", flat=True)) + lapsed,
    }
