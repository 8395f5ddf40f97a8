"""Withdrawal business rules: request, quote, approve, reject, cancel, submit, track.

Every state change locks its row, checks the current state, and writes its audit event in the
same transaction. Venue calls happen outside transactions; tasks are enqueued on commit.
The submission guard is the ``approved -> submitting`` transition under the row lock: only one
caller can win it, so only one venue call per withdrawal can ever be made.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.roles import APPROVER, REQUESTER, require_role
from accounts.services import totp_code_verify
from audit.exchanges import ExchangeRecorder
from audit.services import audit_event_record, json_safe
from venues.interface import (
    Quote as VenueQuote,
)
from venues.interface import (
    VenueError,
    VenueOutcomeUnknown,
    VenueQuoteRefused,
    VenueRejected,
    VenueState,
    VenueUnavailable,
    WithdrawalSpec,
)
from venues.models import Venue
from venues.registry import client_for
from whitelist.models import AddressState, WhitelistedAddress
from whitelist.services import VenueCheckUnavailable, address_verify_before_submit

from .models import (
    FINAL_STATES,
    Approval,
    Quote,
    State,
    SubmissionIntent,
    WithdrawalRequest,
)

logger = logging.getLogger(__name__)

# A quote without a venue expiry is still only good for this long: the approver must confirm
# a fee they saw recently.
QUOTE_TTL = timedelta(seconds=120)
DEFAULT_PRECISION = 8


class WithdrawalError(Exception):
    """A refusal the user can act on. ``field`` names the form field it belongs next to."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Preview:
    """What the requester sees while typing: the venue's own quote, or why there is none."""

    quote: VenueQuote
    expires_at: Any
    precision: int


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


def _lock(withdrawal_id: int) -> WithdrawalRequest:
    return (
        WithdrawalRequest.objects.select_for_update()
        .select_related("venue", "whitelisted_address")
        .get(pk=withdrawal_id)
    )


def _on_commit_enqueue(task_name: str, withdrawal_id: int, countdown: float | None = None) -> None:
    """Enqueue after commit. A broker outage is logged, not raised: the outbox sweeper and the
    periodic refresh pick the work up again."""

    def enqueue() -> None:
        from . import tasks

        task = getattr(tasks, task_name)
        try:
            if countdown:
                task.apply_async(args=[withdrawal_id], countdown=countdown)
            else:
                task.delay(withdrawal_id)
        except Exception:  # the broker is down; the row in the database still holds the intent
            logger.warning("could not enqueue %s for withdrawal %s", task_name, withdrawal_id)

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


def _fetch_quote(venue: Venue, spec: WithdrawalSpec) -> VenueQuote:
    client = client_for(venue)
    try:
        return client.quote(spec)
    except VenueRejected as exc:
        raise WithdrawalError(f"{venue.name} refused: {exc.message}", field="amount") from exc
    except VenueError as exc:
        raise WithdrawalError(
            f"{venue.name} did not answer the fee quote ({exc.message}). Try again shortly."
        ) from exc
    finally:
        client.close()


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
    *, user: Any, venue_id: Any, address_id: Any, amount: Decimal, fee_deduct_type: str = ""
) -> Preview:
    """The venue's quote for what the requester is typing. Saves nothing."""
    require_role(user, REQUESTER)
    venue = _enabled_venue(venue_id)
    address = _active_address(venue=venue, address_id=address_id)
    if not amount.is_finite() or amount <= 0:
        raise WithdrawalError("Enter an amount greater than zero.", field="amount")
    quote = _fetch_quote(venue, _spec_for_address(address, amount, fee_deduct_type))
    precision = quote.precision if quote.precision is not None else DEFAULT_PRECISION
    _validate_amount(
        amount=amount, quote=quote, precision=precision, fee_deduct_type=fee_deduct_type
    )
    return Preview(quote=quote, expires_at=_quote_expiry(quote), precision=precision)


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
        withdrawal.payload_hash = withdrawal.compute_payload_hash()
        withdrawal.save()
        _store_quote(withdrawal=withdrawal, quote=preview.quote, user=requester)
        audit_event_record(
            action="withdrawal.requested",
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
            },
        )
    return withdrawal


# --- approving ----------------------------------------------------------------------------


def withdrawal_quote_fresh(*, withdrawal_id: int, user: Any) -> Quote:
    """A fresh venue quote for the approver to confirm. Stored: every quote shown is evidence."""
    require_role(user, APPROVER)
    withdrawal = WithdrawalRequest.objects.select_related("venue").get(pk=withdrawal_id)
    if withdrawal.state != State.PENDING_APPROVAL:
        raise WithdrawalError("This withdrawal is no longer waiting for approval.")
    quote = _fetch_quote(withdrawal.venue, withdrawal_spec(withdrawal))
    return _store_quote(withdrawal=withdrawal, quote=quote, user=user)


def _check_approvable(withdrawal: WithdrawalRequest, approver: Any) -> None:
    if withdrawal.requested_by_id == approver.pk:
        raise WithdrawalError("You cannot approve a withdrawal you requested.")
    if withdrawal.state != State.PENDING_APPROVAL:
        raise WithdrawalError(
            f"This withdrawal is {withdrawal.get_state_display().lower()}, not pending approval."
        )
    address = withdrawal.whitelisted_address
    if approver.pk in {address.proposed_by_id, address.approved_by_id} and not (
        WithdrawalRequest.objects.filter(whitelisted_address=address, submitted_at__isnull=False)
        .exclude(pk=withdrawal.pk)
        .exists()
    ):
        # Whoever whitelisted an address must not also release the first payment to it.
        raise WithdrawalError(
            "You proposed or approved this destination on the whitelist, so you cannot approve "
            "the first withdrawal to it. Another approver must."
        )


def withdrawal_approve(
    *,
    withdrawal_id: int,
    approver: Any,
    code: str,
    quote_id: Any,
    ip: str | None = None,
) -> WithdrawalRequest:
    """Approve with a fresh TOTP code, confirming the quote the approver was shown.

    The last approval of the quorum moves the withdrawal to ``approved``, writes the submission
    intent (outbox) in the same transaction and enqueues the submission on commit.
    """
    require_role(approver, APPROVER)
    _check_approvable(WithdrawalRequest.objects.get(pk=withdrawal_id), approver)
    # Own transaction, committed before ours: a rollback below cannot undo throttle or replay.
    step = totp_code_verify(user=approver, code=code, ip=ip, purpose="withdrawal approval")
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        _check_approvable(withdrawal, approver)
        if withdrawal.whitelisted_address.state != AddressState.ACTIVE:
            raise WithdrawalError("The destination is no longer active on the whitelist.")
        if withdrawal.payload_hash != withdrawal.compute_payload_hash():
            raise WithdrawalError("The withdrawal changed after it was requested.")
        quote = _confirmable_quote(withdrawal, quote_id)
        approval = Approval.objects.create(
            withdrawal=withdrawal,
            approver=approver,
            requester=withdrawal.requested_by,
            payload_hash=withdrawal.payload_hash,
            quote=quote,
            totp_step=step,
            ip=ip,
        )
        live = withdrawal.approvals.filter(voided=False, payload_hash=withdrawal.payload_hash)
        quorum_reached = live.count() >= settings.WITHDRAWAL_APPROVAL_QUORUM
        audit_event_record(
            action="withdrawal.approved" if quorum_reached else "withdrawal.approval_added",
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
            },
        )
        if quorum_reached:
            withdrawal.state = State.APPROVED
            withdrawal.confirmed_quote = quote
            withdrawal.save(update_fields=["state", "confirmed_quote", "updated_at"])
            SubmissionIntent.objects.update_or_create(
                withdrawal=withdrawal,
                defaults={"done_at": None, "not_before": None, "enqueued_at": timezone.now()},
            )
            _on_commit_enqueue("submit_withdrawal", withdrawal.pk)
    return withdrawal


def _confirmable_quote(withdrawal: WithdrawalRequest, quote_id: Any) -> Quote:
    try:
        quote = withdrawal.quotes.get(pk=int(quote_id))
    except (TypeError, ValueError, Quote.DoesNotExist):
        raise WithdrawalError("Load a fresh quote before approving.") from None
    if quote.expires_at is not None and quote.expires_at <= timezone.now():
        raise WithdrawalError("The quote you saw has expired. Load a fresh one.")
    if quote.fee is not None and withdrawal.fee_cap is not None and quote.fee > withdrawal.fee_cap:
        raise WithdrawalError(
            f"The venue fee ({quote.fee.normalize():f}) is above the cap the requester agreed "
            f"({withdrawal.fee_cap.normalize():f}). The requester must re-quote."
        )
    return quote


def withdrawal_reject(
    *, withdrawal_id: int, approver: Any, reason: str, ip: str | None = None
) -> WithdrawalRequest:
    require_role(approver, APPROVER)
    reason = (reason or "").strip()
    if not reason:
        raise WithdrawalError("Give a reason for the rejection.", field="reason")
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.requested_by_id == approver.pk:
            raise WithdrawalError("Cancel your own withdrawal instead of rejecting it.")
        if withdrawal.state != State.PENDING_APPROVAL:
            raise WithdrawalError("Only a withdrawal pending approval can be rejected.")
        _transition(withdrawal, State.REJECTED, actor=approver, ip=ip, reason=reason[:500])
    return withdrawal


def withdrawal_cancel(*, withdrawal_id: int, requester: Any, ip: str | None = None):
    """The requester withdraws their own request before it is submitted."""
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.requested_by_id != requester.pk:
            raise PermissionDenied("Only the requester can cancel a withdrawal.")
        if withdrawal.state not in {State.PENDING_APPROVAL, State.APPROVED}:
            raise WithdrawalError("It is too late to cancel: the withdrawal was already sent.")
        _transition(withdrawal, State.CANCELLED, actor=requester, ip=ip, reason="by requester")
        SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=timezone.now())
    return withdrawal


def withdrawal_requote(*, withdrawal_id: int, requester: Any, ip: str | None = None):
    """Take a fresh quote as the new fee cap. The payload changes, so approvals are voided."""
    withdrawal = WithdrawalRequest.objects.select_related("venue").get(pk=withdrawal_id)
    if withdrawal.requested_by_id != requester.pk:
        raise PermissionDenied("Only the requester can re-quote a withdrawal.")
    quote = _fetch_quote(withdrawal.venue, withdrawal_spec(withdrawal))
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.state != State.PENDING_APPROVAL:
            raise WithdrawalError("Only a withdrawal pending approval can be re-quoted.")
        old_cap = withdrawal.fee_cap
        withdrawal.fee_cap = quote.fee
        withdrawal.payload_hash = withdrawal.compute_payload_hash()
        withdrawal.save(update_fields=["fee_cap", "payload_hash", "updated_at"])
        voided = withdrawal.approvals.filter(voided=False).update(voided=True)
        _store_quote(withdrawal=withdrawal, quote=quote, user=requester)
        audit_event_record(
            action="withdrawal.requoted",
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
    actor: Any = None,
    ip: str | None = None,
    reason: str = "",
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    """Move a locked withdrawal to ``state`` and record it. Caller holds the transaction."""
    previous = withdrawal.state
    withdrawal.state = state
    if reason:
        withdrawal.reason = reason
    if detail:
        withdrawal.status_detail = detail[:500]
    if state in FINAL_STATES and withdrawal.finished_at is None:
        withdrawal.finished_at = timezone.now()
    withdrawal.save()
    audit_event_record(
        action=f"withdrawal.{state}",
        actor=actor,
        ip=ip,
        target=withdrawal,
        message=reason or detail or f"{previous} → {state}",
        data={"from": previous, "to": state, **(data or {})},
    )


def _send_back_for_new_quote(withdrawal: WithdrawalRequest, why: str) -> None:
    """An expired or exceeded quote: back to the requester, approvals void, never through."""
    withdrawal.approvals.filter(voided=False).update(voided=True)
    withdrawal.confirmed_quote = None
    SubmissionIntent.objects.filter(withdrawal=withdrawal).update(done_at=timezone.now())
    _transition(withdrawal, State.PENDING_APPROVAL, detail=why, data={"requote_needed": True})


# --- submitting ---------------------------------------------------------------------------


def withdrawal_submit(*, withdrawal_id: int) -> WithdrawalRequest:
    """Send an approved withdrawal to its venue, at most once.

    Safe to call any number of times, concurrently: only the caller that moves the row from
    ``approved`` to ``submitting`` makes the venue call; every other caller returns at once.
    """
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.state != State.APPROVED:
            return withdrawal
        quote = withdrawal.confirmed_quote
        if withdrawal.whitelisted_address.state != AddressState.ACTIVE:
            _transition(withdrawal, State.FAILED, detail="Destination revoked from the whitelist.")
            return withdrawal
        if quote is not None and quote.token and quote.expires_at <= timezone.now():
            _send_back_for_new_quote(withdrawal, "The venue's quote expired before submission.")
            return withdrawal
        withdrawal.submit_started_at = timezone.now()
        _transition(withdrawal, State.SUBMITTING, detail="Sending to the venue")
    # Only the caller that won the transition gets here, so only it talks to the venue: losers
    # make no call at all (concurrent calls on one key would also race each other's nonces).
    # The venue's saved key must still point to the approved address; a mismatch or a failed
    # look fails or defers the withdrawal before anything is sent.
    try:
        drift = address_verify_before_submit(address=withdrawal.whitelisted_address)
    except VenueCheckUnavailable as exc:
        return _record_submit_outcome(withdrawal.pk, "check_unavailable", message=exc.message)
    if drift:
        return _record_submit_outcome(withdrawal.pk, "drift", message=drift)
    return _submit_to_venue(withdrawal, quote)


def _submit_to_venue(withdrawal: WithdrawalRequest, quote: Quote | None) -> WithdrawalRequest:
    exchanges = ExchangeRecorder()
    client = client_for(withdrawal.venue, exchange_log=exchanges)
    try:
        receipt = client.submit(
            withdrawal_spec(withdrawal), quote=_venue_quote(quote) if quote else None
        )
    except VenueQuoteRefused as exc:
        return _record_submit_outcome(withdrawal.pk, "requote", message=exc.message)
    except VenueRejected as exc:
        return _record_submit_outcome(withdrawal.pk, "rejected", message=exc.message)
    except VenueUnavailable as exc:
        return _record_submit_outcome(
            withdrawal.pk, "unavailable", message=exc.message, retry_after=exc.retry_after
        )
    except VenueOutcomeUnknown as exc:
        return _record_submit_outcome(withdrawal.pk, "unknown", message=exc.message)
    except Exception as exc:  # a bug after the request may have left: never assume it did not
        logger.exception("unexpected error submitting withdrawal %s", withdrawal.pk)
        return _record_submit_outcome(withdrawal.pk, "unknown", message=type(exc).__name__)
    finally:
        client.close()
        exchanges.save(withdrawal_id=withdrawal.pk, purpose="submit")
    return _record_submit_outcome(
        withdrawal.pk, "accepted", reference=receipt.reference, raw=receipt.raw
    )


def _record_submit_outcome(
    withdrawal_id: int,
    outcome: str,
    *,
    message: str = "",
    reference: str = "",
    retry_after: float | None = None,
    raw: dict[str, Any] | None = None,
) -> WithdrawalRequest:
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.state != State.SUBMITTING:  # reconciliation got there first
            return withdrawal
        intent = SubmissionIntent.objects.filter(withdrawal=withdrawal)
        if outcome == "accepted":
            withdrawal.venue_reference = reference
            withdrawal.submitted_at = timezone.now()
            _transition(
                withdrawal,
                State.SUBMITTED,
                detail=f"Venue reference {reference}",
                data={"reference": reference, "response": json_safe(raw or {})},
            )
            intent.update(done_at=timezone.now())
            _on_commit_enqueue("refresh_withdrawal_status", withdrawal.pk, countdown=1)
        elif outcome == "rejected":
            intent.update(done_at=timezone.now())
            _transition(withdrawal, State.FAILED, detail=f"Venue refused: {message}")
        elif outcome == "drift":
            intent.update(done_at=timezone.now())
            _transition(withdrawal, State.FAILED, detail=f"Not sent: {message}")
        elif outcome == "check_unavailable":
            # Nothing was sent: stay approved and look again later.
            intent.update(not_before=timezone.now() + timedelta(seconds=30))
            _transition(
                withdrawal,
                State.APPROVED,
                detail=f"Waiting to check the destination at the venue: {message}",
            )
            _on_commit_enqueue("submit_withdrawal", withdrawal.pk, countdown=30)
        elif outcome == "requote":
            _send_back_for_new_quote(withdrawal, f"Venue refused the quote: {message}")
        elif outcome == "unavailable":
            # Nothing reached the venue: back to approved, retried after the venue's hint.
            delay = max(retry_after or 5.0, 1.0)
            intent.update(not_before=timezone.now() + timedelta(seconds=delay))
            _transition(
                withdrawal,
                State.APPROVED,
                detail=f"Venue unavailable, retrying: {message}",
                data={"retry_after": delay},
            )
            _on_commit_enqueue("submit_withdrawal", withdrawal.pk, countdown=delay)
        else:
            _transition(
                withdrawal,
                State.OUTCOME_UNKNOWN,
                detail=f"{message}. Reconciling with the venue's history.",
            )
            _on_commit_enqueue(
                "reconcile_withdrawal", withdrawal.pk, countdown=settings.RECONCILE_GRACE_SECONDS
            )
    return withdrawal


# --- tracking -----------------------------------------------------------------------------

_FINAL_FROM_VENUE = {
    VenueState.COMPLETED: State.COMPLETED,
    VenueState.FAILED: State.FAILED,
    VenueState.CANCELLED: State.CANCELLED,
}


def _apply_venue_status(withdrawal: WithdrawalRequest, status: Any) -> None:
    """Record a venue status on a locked, submitted withdrawal."""
    withdrawal.venue_status = status.raw_status[:40]
    withdrawal.venue_txid = status.txid or withdrawal.venue_txid
    withdrawal.last_checked_at = timezone.now()
    target = _FINAL_FROM_VENUE.get(status.state)
    if target is None:
        withdrawal.save(update_fields=["venue_status", "venue_txid", "last_checked_at"])
        return
    _transition(
        withdrawal,
        target,
        detail=status.detail or f"Venue reports {status.raw_status}",
        data={"venue_status": status.raw_status, "txid": status.txid},
    )


def withdrawal_status_refresh(*, withdrawal_id: int) -> WithdrawalRequest:
    withdrawal = WithdrawalRequest.objects.select_related("venue").get(pk=withdrawal_id)
    if withdrawal.state != State.SUBMITTED:
        return withdrawal
    exchanges = ExchangeRecorder()
    client = client_for(withdrawal.venue, exchange_log=exchanges)
    try:
        status = client.status(withdrawal_spec(withdrawal), reference=withdrawal.venue_reference)
    except VenueError as exc:
        logger.info("status of withdrawal %s not available: %s", withdrawal_id, exc.message)
        return withdrawal
    finally:
        client.close()
        exchanges.save(withdrawal_id=withdrawal_id, purpose="status")
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.state == State.SUBMITTED:
            _apply_venue_status(withdrawal, status)
    return withdrawal


def withdrawal_reconcile(*, withdrawal_id: int) -> WithdrawalRequest:
    """Resolve ``outcome_unknown`` (or a ``submitting`` left by a crashed worker) from the
    venue's own records: submitted / completed / failed, or back to approved when the venue
    has no trace of it and so a retry is safe."""
    withdrawal = WithdrawalRequest.objects.select_related("venue").get(pk=withdrawal_id)
    stale_before = timezone.now() - timedelta(seconds=settings.SUBMITTING_STALE_SECONDS)
    if withdrawal.state == State.SUBMITTING:
        if withdrawal.submit_started_at and withdrawal.submit_started_at > stale_before:
            return withdrawal  # still in flight in a live worker
        with transaction.atomic():
            withdrawal = _lock(withdrawal_id)
            if withdrawal.state != State.SUBMITTING:
                return withdrawal
            _transition(
                withdrawal,
                State.OUTCOME_UNKNOWN,
                detail="Submission interrupted; reconciling with the venue's history.",
            )
    if withdrawal.state != State.OUTCOME_UNKNOWN:
        return withdrawal
    # A request we lost track of may still be on its way to, or queued at, the venue: its
    # history only proves "never sent" once the grace period has passed since then. The
    # periodic refresh calls this every few seconds, so the wait is enforced here.
    if withdrawal.updated_at > timezone.now() - timedelta(seconds=settings.RECONCILE_GRACE_SECONDS):
        return withdrawal
    exchanges = ExchangeRecorder()
    client = client_for(withdrawal.venue, exchange_log=exchanges)
    spec = withdrawal_spec(withdrawal)
    try:
        if client.idempotent_submit:
            # The one venue with a server-side idempotency key: re-sending the same token
            # returns the original result and never creates a second withdrawal.
            quote = withdrawal.confirmed_quote
            receipt = client.submit(spec, quote=_venue_quote(quote) if quote else None)
            found = client.status(spec, reference=receipt.reference)
        else:
            found = client.find(spec)
    except VenueRejected as exc:
        found, rejected = None, exc.message
    except VenueError as exc:
        logger.info("reconciliation of %s postponed: %s", withdrawal_id, exc.message)
        return withdrawal
    else:
        rejected = ""
    finally:
        client.close()
        exchanges.save(withdrawal_id=withdrawal_id, purpose="reconcile")
    with transaction.atomic():
        withdrawal = _lock(withdrawal_id)
        if withdrawal.state != State.OUTCOME_UNKNOWN:
            return withdrawal
        if rejected:
            _transition(withdrawal, State.FAILED, detail=f"Venue refused: {rejected}")
        elif found is None:
            SubmissionIntent.objects.filter(withdrawal=withdrawal).update(
                done_at=None, not_before=None
            )
            _transition(
                withdrawal,
                State.APPROVED,
                detail="The venue has no trace of it: nothing was sent, safe to retry.",
                data={"reconciled": "not_found"},
            )
            _on_commit_enqueue("submit_withdrawal", withdrawal.pk)
        else:
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
    return withdrawal


def withdrawals_expire_stale() -> int:
    """Expire requests nobody approved in time. Returns how many expired."""
    cutoff = timezone.now() - timedelta(hours=settings.WITHDRAWAL_EXPIRY_HOURS)
    expired = 0
    for pk in WithdrawalRequest.objects.filter(
        state=State.PENDING_APPROVAL, created_at__lt=cutoff
    ).values_list("pk", flat=True):
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


def withdrawals_needing_attention() -> dict[str, list[int]]:
    """Ids the periodic refresh should look at: submitted ones to poll, unknown ones to
    reconcile, and submissions whose worker seems to have died."""
    stale = timezone.now() - timedelta(seconds=settings.SUBMITTING_STALE_SECONDS)
    qs = WithdrawalRequest.objects
    return {
        "refresh": list(qs.filter(state=State.SUBMITTED).values_list("pk", flat=True)),
        "reconcile": list(qs.filter(state=State.OUTCOME_UNKNOWN).values_list("pk", flat=True))
        + list(
            qs.filter(state=State.SUBMITTING, submit_started_at__lt=stale).values_list(
                "pk", flat=True
            )
        ),
    }
