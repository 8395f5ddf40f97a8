from __future__ import annotations

import hashlib
import json
import uuid

from django.conf import settings
from django.db import models

# Amounts are Decimal end to end: 38 digits, 18 places covers every venue's precision.
AMOUNT = {"max_digits": 38, "decimal_places": 18}


class State(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    SUBMITTING = "submitting", "Submitting"
    SUBMITTED = "submitted", "Submitted"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    OUTCOME_UNKNOWN = "outcome_unknown", "Outcome unknown"


FINAL_STATES = frozenset(
    {State.COMPLETED, State.FAILED, State.REJECTED, State.CANCELLED, State.EXPIRED}
)
# States in which the venue holds (or may hold) the withdrawal and we poll it.
TRACKED_STATES = frozenset({State.SUBMITTED, State.OUTCOME_UNKNOWN, State.SUBMITTING})


class WithdrawalRequest(models.Model):
    """One request to move ``amount`` of ``asset`` to a whitelisted address.

    The destination fields are copied from the whitelisted address at creation: the approval
    binds them (``payload_hash``), so a later change to the address book cannot redirect money.
    """

    request_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    venue = models.ForeignKey("venues.Venue", on_delete=models.PROTECT, related_name="+")
    whitelisted_address = models.ForeignKey(
        "whitelist.WhitelistedAddress", on_delete=models.PROTECT, related_name="withdrawals"
    )
    asset = models.CharField(max_length=16)
    network = models.CharField(max_length=40)
    address = models.CharField(max_length=128)
    memo = models.CharField(max_length=64, blank=True)
    venue_key = models.CharField(max_length=80, blank=True)
    fee_deduct_type = models.CharField(max_length=16, blank=True)
    amount = models.DecimalField(**AMOUNT)
    # The most the requester agreed to pay in fees; part of the approved payload.
    fee_cap = models.DecimalField(**AMOUNT, null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    state = models.CharField(
        max_length=20, choices=State.choices, default=State.PENDING_APPROVAL, db_index=True
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawal_requests"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    payload_hash = models.CharField(max_length=64)

    # The quote the final approver confirmed; the submission carries its cap.
    confirmed_quote = models.ForeignKey(
        "Quote", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    venue_reference = models.CharField(max_length=128, blank=True, db_index=True)
    venue_status = models.CharField(max_length=40, blank=True)
    venue_txid = models.CharField(max_length=200, blank=True)
    status_detail = models.CharField(max_length=500, blank=True)
    submit_started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)  # rejection / cancellation reason

    class Meta:
        ordering = ["-created_at", "-id"]
        # History pages filter on one of these and page newest-first on id (keyset).
        indexes = [
            models.Index(fields=["venue", "-id"], name="withdrawal_venue_id_idx"),
            models.Index(fields=["state", "-id"], name="withdrawal_state_id_idx"),
            models.Index(fields=["asset", "-id"], name="withdrawal_asset_id_idx"),
            models.Index(fields=["requested_by", "-id"], name="withdrawal_requester_id_idx"),
        ]
        permissions = [
            ("request_withdrawal", "Can request withdrawals"),
            ("approve_withdrawal", "Can approve or reject other people's withdrawals"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="withdrawal_amount_gt_0"),
            models.CheckConstraint(
                condition=models.Q(fee_cap__isnull=True) | models.Q(fee_cap__gte=0),
                name="withdrawal_fee_cap_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount.normalize():f} {self.asset} → {self.address[:12]}… ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def compute_payload_hash(self) -> str:
        """SHA-256 over exactly what an approval binds. Any change voids earlier approvals."""
        payload = {
            "venue": self.venue_id,
            "account": self.venue.account if self.venue_id else "",
            "asset": self.asset,
            "network": self.network,
            "address": self.address,
            "memo": self.memo,
            "venue_key": self.venue_key,
            "amount": format(self.amount.normalize(), "f"),
            "fee_cap": format(self.fee_cap.normalize(), "f") if self.fee_cap is not None else "",
            "fee_deduct_type": self.fee_deduct_type,
            "request_id": str(self.request_id),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class Quote(models.Model):
    """A fee quote the venue gave, and who was shown it. Kept for the evidence pack."""

    withdrawal = models.ForeignKey(
        WithdrawalRequest, null=True, on_delete=models.CASCADE, related_name="quotes"
    )
    fee = models.DecimalField(**AMOUNT, null=True)
    net_amount = models.DecimalField(**AMOUNT, null=True)
    limit = models.DecimalField(**AMOUNT, null=True)
    minimum = models.DecimalField(**AMOUNT, null=True)
    token = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True)
    fetched_at = models.DateTimeField(auto_now_add=True)
    shown_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    raw = models.JSONField(default=dict)

    class Meta:
        ordering = ["-fetched_at", "-id"]

    def __str__(self) -> str:
        return (
            f"quote {self.fee} (until {self.expires_at:%H:%M:%S})" if self.expires_at else "quote"
        )

    @property
    def is_quoted(self) -> bool:
        return self.fee is not None


class Approval(models.Model):
    """One approver's consent to one exact payload, proven with a TOTP code."""

    withdrawal = models.ForeignKey(
        WithdrawalRequest, on_delete=models.CASCADE, related_name="approvals"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Copied from the withdrawal under its row lock so the database itself can refuse
    # self-approval (withdrawal_no_self_approval).
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    payload_hash = models.CharField(max_length=64)
    quote = models.ForeignKey(Quote, null=True, on_delete=models.PROTECT, related_name="+")
    totp_step = models.BigIntegerField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    voided = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(approver=models.F("requester")),
                name="withdrawal_no_self_approval",
            ),
            models.UniqueConstraint(
                fields=["withdrawal", "approver"],
                condition=models.Q(voided=False),
                name="withdrawal_one_live_approval_per_approver",
            ),
            # A TOTP step proves presence once: it can back one approval, never two.
            models.UniqueConstraint(
                fields=["approver", "totp_step"], name="approval_totp_step_used_once"
            ),
        ]

    def __str__(self) -> str:
        return f"approval of #{self.withdrawal_id} by {self.approver_id}"


class SubmissionIntent(models.Model):
    """Outbox row: written with the final approval, so a lost task message loses nothing.

    A periodic sweeper re-enqueues intents whose withdrawal is still ``approved``.
    """

    withdrawal = models.OneToOneField(
        WithdrawalRequest, on_delete=models.CASCADE, related_name="intent"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True)
    attempts = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True, db_index=True)
    not_before = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"submission intent for #{self.withdrawal_id}"
