"""Who may do what, changed only under four eyes, and how a person gets an authenticator.

Role membership itself is Django's groups (accounts.roles); these models are the proposals that
change it and the single-use links through which a device is enrolled.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Invitation(models.Model):
    """A single-use, expiring enrolment link for one person.

    Only a hash of the link's token is stored: the link itself is shown once, to the user admin
    who issued it. The TOTP secret is not stored here either: it lives in the session of whoever
    opened the link and is saved (as a confirmed device) only when a code proves it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    # Set when a newer link, a device reset or a deactivation replaced this one.
    voided_at = models.DateTimeField(null=True, blank=True)
    # Wrong codes or passwords typed on the link's page; at the limit the link is voided.
    failures = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-issued_at"]

    def __str__(self) -> str:
        return f"enrolment link #{self.pk} for user {self.user_id}"


class ChangeKind(models.TextChoices):
    GRANT = "grant", "Grant role"
    REMOVE = "remove", "Remove role"
    DEVICE_RESET = "device_reset", "Reset authenticator"


class ChangeState(models.TextChoices):
    PROPOSED = "proposed", "Waiting for a second user admin"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class AccessChange(models.Model):
    """A proposed grant or removal of a role, or reset of someone's authenticator. Nothing
    changes until a second user admin, who is neither the proposer nor the person concerned,
    approves it with a fresh TOTP code."""

    kind = models.CharField(max_length=16, choices=ChangeKind.choices)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    role = models.CharField(max_length=32, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    state = models.CharField(
        max_length=16, choices=ChangeState.choices, default=ChangeState.PROPOSED
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    proposed_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        permissions = [
            ("manage_people", "Can invite people and propose and approve changes to their access")
        ]
        constraints = [
            # Four eyes, held by the database too: an approval by the proposer cannot be saved.
            models.CheckConstraint(
                condition=~models.Q(state="approved")
                | (
                    models.Q(decided_by__isnull=False)
                    & ~models.Q(decided_by=models.F("proposed_by"))
                    & ~models.Q(decided_by=models.F("subject"))
                ),
                name="accounts_change_approver_is_another_person",
            ),
            models.CheckConstraint(
                condition=(models.Q(kind="device_reset") & models.Q(role=""))
                | (models.Q(kind__in=["grant", "remove"]) & ~models.Q(role="")),
                name="accounts_change_role_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["subject", "kind", "role"],
                condition=models.Q(state="proposed"),
                name="accounts_change_one_open_proposal",
            ),
        ]

    def __str__(self) -> str:
        what = self.get_kind_display().lower()
        return f"{what} {self.role} for user {self.subject_id}".replace("  ", " ")
