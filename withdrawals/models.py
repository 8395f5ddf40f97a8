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
# Money that has been released (or is being), whatever the venue made of it since: what the
# velocity limits count and what a destination's payment history is. A failed, rejected,
# cancelled or expired withdrawal moved nothing.
APPROVED_OR_FURTHER = (
    State.APPROVED,
    State.SUBMITTING,
    State.SUBMITTED,
    State.COMPLETED,
    State.OUTCOME_UNKNOWN,
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
    # Indexed by withdrawal_created_id_idx (created_at, id), which serves any range on it.
    created_at = models.DateTimeField(auto_now_add=True)
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
    # The venue's own code for its refusal, verbatim (venues.refusals explains it).
    venue_error_code = models.CharField(max_length=200, blank=True)
    # What the venue reports it charged, once its status or history shows it; the fee cap is
    # only the most it may charge.
    fee_charged = models.DecimalField(**AMOUNT, null=True, blank=True)
    submit_started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)  # rejection / cancellation reason

    # The submission lease: the number of the current attempt and the moment after which it may
    # send nothing more (its worker refuses to, see venues.deadline). Only once that moment plus
    # a margin has passed may reconciliation treat the attempt as over.
    attempt = models.PositiveIntegerField(default=0)
    submit_deadline_at = models.DateTimeField(null=True, blank=True)
    # Reconciliation of an unknown outcome: since when, when to look again, and since when
    # people have been asked to settle it (the "Needs attention" queue).
    unknown_since = models.DateTimeField(null=True, blank=True)
    reconcile_after = models.DateTimeField(null=True, blank=True)
    reconcile_failures = models.PositiveIntegerField(default=0)
    attention_since = models.DateTimeField(null=True, blank=True, db_index=True)
    attention_reason = models.CharField(max_length=500, blank=True)

    # The policy rule that matched at request time, and what it decided, copied so that neither
    # a later policy version nor a missing rule (older rows) changes what this request needs.
    policy_rule = models.ForeignKey(
        "policies.Rule", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approval_quorum = models.PositiveSmallIntegerField(default=1)
    approval_role = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # When the quorum was reached: velocity limits count approved-or-further withdrawals by it.
    approved_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # History pages filter on one of these and page newest-first on id (keyset).
        indexes = [
            models.Index(fields=["venue", "-id"], name="withdrawal_venue_id_idx"),
            models.Index(fields=["state", "-id"], name="withdrawal_state_id_idx"),
            models.Index(fields=["asset", "-id"], name="withdrawal_asset_id_idx"),
            models.Index(fields=["requested_by", "-id"], name="withdrawal_requester_id_idx"),
            # A date range pages on (created_at, id) instead: range and order in one stretch.
            models.Index(fields=["-created_at", "-id"], name="withdrawal_created_id_idx"),
            # A destination's payments, newest first: every approval reads them for its red
            # flags (first payment, the median), and without this walked the whole table
            # backwards for a destination with few of them.
            models.Index(
                fields=["whitelisted_address", "asset", "-id"],
                name="withdrawal_released_to_idx",
                condition=models.Q(state__in=APPROVED_OR_FURTHER),
            ),
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
            # The venue account the money leaves from: a change of its URL voids approvals.
            "base_url": self.venue.base_url if self.venue_id else "",
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
    # The red flags the approver was shown (codes of policies.flags, space-separated so an
    # auditor's filter is a plain substring match on every database), and how long after
    # loading the confirmed quote they approved: below the policy's threshold is a rubber stamp.
    red_flags = models.CharField(max_length=200, blank=True)
    review_seconds = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    rubber_stamp = models.BooleanField(default=False)

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


class SubmissionAttempt(models.Model):
    """One lease on sending a withdrawal: opened by ``approved -> submitting``.

    Only the current attempt (``WithdrawalRequest.attempt``) may send, and only before its
    deadline. A receipt that comes back for an attempt that was superseded meanwhile is kept
    here and checked for a duplicate payment, never dropped.
    """

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted by the venue"
        REJECTED = "rejected", "Refused by the venue"
        DRIFT = "drift", "Not sent: the venue's saved address changed"
        BLOCKED = "blocked", "Not sent: destination no longer active"
        VOIDED = "voided", "Not sent: the approved payload changed"
        CHECK_UNAVAILABLE = "check_unavailable", "Not sent: address check unavailable"
        REQUOTE = "requote", "Not sent: the quote no longer holds"
        UNAVAILABLE = "unavailable", "Not sent: venue unavailable"
        UNKNOWN = "unknown", "Outcome unknown"
        SUPERSEDED = "superseded", "Superseded before it sent"

    withdrawal = models.ForeignKey(
        WithdrawalRequest, on_delete=models.CASCADE, related_name="attempts"
    )
    number = models.PositiveIntegerField()
    # Opened by reconciliation re-submitting on a venue with an idempotency key (Kraken Embed).
    resubmission = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    deadline_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    reference = models.CharField(max_length=128, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    superseded = models.BooleanField(default=False)

    class Meta:
        ordering = ["withdrawal", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["withdrawal", "number"], name="submission_attempt_number_once"
            )
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of #{self.withdrawal_id}"


class Resolution(models.Model):
    """People settling what reconciliation could not: proposed by one, confirmed by another.

    Each step takes its own fresh TOTP code; the database refuses one person doing both.
    """

    class Finding(models.TextChoices):
        FOUND = "found", "Found at the venue"
        NEVER_SENT = "never_sent", "Confirmed never sent"

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Waiting for a second person"
        CONFIRMED = "confirmed", "Confirmed"
        DECLINED = "declined", "Declined"

    withdrawal = models.ForeignKey(
        WithdrawalRequest, on_delete=models.CASCADE, related_name="resolutions"
    )
    finding = models.CharField(max_length=20, choices=Finding.choices)
    reference = models.CharField(max_length=128, blank=True)
    evidence = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROPOSED)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    proposed_totp_step = models.BigIntegerField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_totp_step = models.BigIntegerField(null=True)
    decision_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(decided_by=models.F("proposed_by")),
                name="resolution_four_eyes",
            ),
            models.UniqueConstraint(
                fields=["withdrawal"],
                condition=models.Q(status="proposed"),
                name="resolution_one_open_per_withdrawal",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_finding_display()} for #{self.withdrawal_id} ({self.status})"


class DuplicatePayment(models.Model):
    """A second venue withdrawal carrying one withdrawal's own request id: money sent twice."""

    withdrawal = models.ForeignKey(
        WithdrawalRequest, on_delete=models.CASCADE, related_name="duplicates"
    )
    reference = models.CharField(max_length=128)
    venue_status = models.CharField(max_length=60, blank=True)
    detected_at = models.DateTimeField(auto_now_add=True)
    # What cancelling it at the venue gave: "cancelled", "not cancellable: ...", "failed: ...".
    cancel_result = models.CharField(max_length=300, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledge_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["withdrawal", "reference"], name="duplicate_payment_once"
            )
        ]

    def __str__(self) -> str:
        return f"duplicate {self.reference} of #{self.withdrawal_id}"


class VenueExchange(models.Model):
    """One HTTP request to a venue and its response, made for a withdrawal, credentials
    redacted. Kept for the evidence pack; withdrawals.evidence writes and compacts them."""

    # The application role may only read and insert these rows (audit.db_roles).
    append_only_for_app_role = True

    withdrawal = models.ForeignKey(
        WithdrawalRequest, on_delete=models.PROTECT, related_name="venue_exchanges"
    )
    purpose = models.CharField(max_length=20)  # submit, status, reconcile
    started_at = models.DateTimeField()
    method = models.CharField(max_length=10)
    url = models.CharField(max_length=500)
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        # The table keeps the name it had under audit/: renaming a table that only grows takes
        # an exclusive lock on it, and backups, grants and operators' queries know it so.
        db_table = "audit_venueexchange"
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"{self.purpose} {self.method} {self.url} → {self.status_code or self.error}"
