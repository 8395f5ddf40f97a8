"""The catalogue of audit actions auditors filter on.

A ``StrEnum``: each member is the string stored on the event, so existing rows and filters keep
working. A system retry has its own name and never reuses a human act's (``withdrawal.approved``
is written once per withdrawal, by the approval that reaches the quorum).
"""

from __future__ import annotations

import enum


class AuditAction(enum.StrEnum):
    # withdrawals: people
    WITHDRAWAL_REQUESTED = "withdrawal.requested"
    WITHDRAWAL_APPROVAL_ADDED = "withdrawal.approval_added"
    WITHDRAWAL_APPROVED = "withdrawal.approved"
    WITHDRAWAL_REJECTED = "withdrawal.rejected"
    WITHDRAWAL_CANCELLED = "withdrawal.cancelled"
    WITHDRAWAL_REQUOTED = "withdrawal.requoted"
    WITHDRAWAL_RESOLUTION_PROPOSED = "withdrawal.resolution_proposed"
    WITHDRAWAL_RESOLUTION_CONFIRMED = "withdrawal.resolution_confirmed"
    WITHDRAWAL_RESOLUTION_DECLINED = "withdrawal.resolution_declined"
    WITHDRAWAL_DUPLICATE_ACKNOWLEDGED = "withdrawal.duplicate_acknowledged"
    # withdrawals: the system
    WITHDRAWAL_SUBMITTING = "withdrawal.submitting"
    WITHDRAWAL_SUBMITTED = "withdrawal.submitted"
    WITHDRAWAL_COMPLETED = "withdrawal.completed"
    WITHDRAWAL_FAILED = "withdrawal.failed"
    WITHDRAWAL_EXPIRED = "withdrawal.expired"
    WITHDRAWAL_OUTCOME_UNKNOWN = "withdrawal.outcome_unknown"
    WITHDRAWAL_SENT_BACK = "withdrawal.sent_back"
    WITHDRAWAL_RETRY_SCHEDULED = "withdrawal.retry_scheduled"
    WITHDRAWAL_RETURNED_FOR_RESEND = "withdrawal.returned_for_resend"
    WITHDRAWAL_ATTENTION_RAISED = "withdrawal.attention_raised"
    WITHDRAWAL_LATE_RECEIPT = "withdrawal.late_receipt"
    WITHDRAWAL_DUPLICATE_DETECTED = "withdrawal.duplicate_detected"
    # venues: configuration under four eyes
    VENUE_CREATED = "venue.created"
    VENUE_UPDATED = "venue.updated"
    VENUE_CHANGE_PROPOSED = "venue.change_proposed"
    VENUE_CHANGE_REJECTED = "venue.change_rejected"
    VENUE_ENABLED = "venue.enabled"
    VENUE_DISABLED = "venue.disabled"
    VENUE_CREDENTIALS_ROTATED = "venue.credentials_rotated"
