"""The catalogue of audit actions auditors filter on.

A ``StrEnum``: each member is the string stored on the event, so existing rows and filters keep
working. A system retry has its own name and never reuses a human act's (``withdrawal.approved``
is written once per withdrawal, by the approval that reaches the quorum).

Adding an action is one line: ``NAME = "app.verb"`` gets a label made from its name
("app.verb_done" reads "App verb done"); ``NAME = "app.verb", "Label"`` says it better.
"""

from __future__ import annotations

import enum


def _label_from(value: str) -> str:
    return value.replace(".", " ").replace("_", " ").capitalize()


class AuditAction(enum.StrEnum):
    label: str

    def __new__(cls, value: str, label: str = "") -> AuditAction:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label or _label_from(value)
        return member

    @classmethod
    def label_of(cls, value: str) -> str:
        """The human name of a stored action; an action no longer catalogued keeps its own."""
        try:
            return cls(value).label
        except ValueError:
            return value

    # withdrawals: people
    WITHDRAWAL_REQUESTED = "withdrawal.requested", "Withdrawal requested"
    WITHDRAWAL_APPROVAL_ADDED = "withdrawal.approval_added", "Withdrawal approval added"
    WITHDRAWAL_APPROVED = "withdrawal.approved", "Withdrawal approved"
    WITHDRAWAL_REJECTED = "withdrawal.rejected", "Withdrawal rejected"
    WITHDRAWAL_CANCELLED = "withdrawal.cancelled", "Withdrawal cancelled"
    WITHDRAWAL_REQUOTED = "withdrawal.requoted", "Withdrawal re-quoted"
    WITHDRAWAL_RESOLUTION_PROPOSED = "withdrawal.resolution_proposed", "Resolution proposed"
    WITHDRAWAL_RESOLUTION_CONFIRMED = "withdrawal.resolution_confirmed", "Resolution confirmed"
    WITHDRAWAL_RESOLUTION_DECLINED = "withdrawal.resolution_declined", "Resolution declined"
    WITHDRAWAL_DUPLICATE_ACKNOWLEDGED = (
        "withdrawal.duplicate_acknowledged",
        "Duplicate payment acknowledged",
    )
    # withdrawals: the system
    WITHDRAWAL_SUBMITTING = "withdrawal.submitting", "Withdrawal being submitted"
    WITHDRAWAL_SUBMITTED = "withdrawal.submitted", "Withdrawal submitted to the venue"
    WITHDRAWAL_COMPLETED = "withdrawal.completed", "Withdrawal completed"
    WITHDRAWAL_FAILED = "withdrawal.failed", "Withdrawal failed"
    WITHDRAWAL_EXPIRED = "withdrawal.expired", "Withdrawal expired"
    WITHDRAWAL_OUTCOME_UNKNOWN = "withdrawal.outcome_unknown", "Withdrawal outcome unknown"
    WITHDRAWAL_SENT_BACK = "withdrawal.sent_back", "Withdrawal sent back for a new quote"
    WITHDRAWAL_RETRY_SCHEDULED = "withdrawal.retry_scheduled", "Submission retry scheduled"
    WITHDRAWAL_RETURNED_FOR_RESEND = (
        "withdrawal.returned_for_resend",
        "Withdrawal returned for re-send",
    )
    WITHDRAWAL_ATTENTION_RAISED = "withdrawal.attention_raised", "Withdrawal needs attention"
    WITHDRAWAL_LATE_RECEIPT = "withdrawal.late_receipt", "Late venue receipt"
    WITHDRAWAL_DUPLICATE_DETECTED = "withdrawal.duplicate_detected", "Duplicate payment detected"
    # venues: configuration under four eyes
    VENUE_CREATED = "venue.created", "Venue created"
    VENUE_UPDATED = "venue.updated", "Venue updated"
    VENUE_CHANGE_PROPOSED = "venue.change_proposed", "Venue change proposed"
    VENUE_CHANGE_REJECTED = "venue.change_rejected", "Venue change rejected"
    VENUE_ENABLED = "venue.enabled", "Venue enabled"
    VENUE_DISABLED = "venue.disabled", "Venue disabled"
    VENUE_CREDENTIALS_ROTATED = "venue.credentials_rotated", "Venue credentials rotated"
    # whitelist: the address book under four eyes and a cooling-off
    WHITELIST_PROPOSED = "whitelist.proposed", "Address proposed"
    WHITELIST_APPROVED = "whitelist.approved", "Address approved"
    WHITELIST_ACTIVATED = "whitelist.activated", "Address active"
    WHITELIST_REVOKED = "whitelist.revoked", "Address revoked"
    WHITELIST_VETOED = "whitelist.vetoed", "Address vetoed"
    WHITELIST_IMPORTED = "whitelist.imported", "Addresses imported from the venue"
    WHITELIST_SEEDED = "whitelist.seeded", "Demo address seeded"
    WHITELIST_DRIFT_DETECTED = "whitelist.drift_detected", "Address differs at the venue"
    WHITELIST_DRIFT_CLEARED = "whitelist.drift_cleared", "Address matches the venue again"
    # people: access under four eyes
    PEOPLE_INVITED = "people.invited", "Person invited"
    PEOPLE_ENROLMENT_LINK_ISSUED = "people.enrolment_link_issued", "Enrolment link issued"
    PEOPLE_ENROLLED = "people.enrolled", "Person enrolled"
    PEOPLE_RECOVERY_CODES_REPLACED = "people.recovery_codes_replaced", "Recovery codes replaced"
    PEOPLE_CHANGE_PROPOSED = "people.change_proposed", "Access change proposed"
    PEOPLE_CHANGE_REJECTED = "people.change_rejected", "Access change rejected"
    PEOPLE_ROLE_GRANTED = "people.role_granted", "Role granted"
    PEOPLE_ROLE_REMOVED = "people.role_removed", "Role removed"
    PEOPLE_DEVICE_RESET = "people.device_reset", "Authenticator reset"
    PEOPLE_DEACTIVATED = "people.deactivated", "Person deactivated"
    # policy and reference prices under four eyes
    POLICY_CHANGE_PROPOSED = "policy.change_proposed", "Policy change proposed"
    POLICY_CHANGE_APPROVED = "policy.change_approved", "Policy change approved"
    POLICY_CHANGE_DECLINED = "policy.change_declined", "Policy change declined"
    POLICY_SEEDED = "policy.seeded", "Demo policy seeded"
    PRICE_CHANGE_PROPOSED = "price.change_proposed", "Reference prices change proposed"
    PRICE_CHANGE_APPROVED = "price.change_approved", "Reference prices change approved"
    PRICE_CHANGE_DECLINED = "price.change_declined", "Reference prices change declined"
    PRICE_SEEDED = "price.seeded", "Demo reference prices seeded"
    # the trail itself
    AUDIT_CHAIN_BROKEN = "audit.chain_broken", "Audit chain broken"
    # signing in
    LOGIN_SUCCEEDED = "login.succeeded", "Password accepted"
    LOGIN_FAILED = "login.failed", "Sign-in failed"
    AUTH_SIGNED_IN = "auth.signed_in", "Signed in"
    AUTH_SIGNIN_THROTTLED = "auth.signin_throttled", "Sign-in throttled"
    AUTH_RECOVERY_CODE_USED = "auth.recovery_code_used", "Recovery code used"
    TOTP_REFUSED = "totp.refused", "Authenticator code refused"
    # the auditors' own reads
    EXPORT_CREATED = "export.created", "Export downloaded"
