"""What people are told, through which channel, and how each delivery went.

A ``Notification`` is written in the transaction of the event it reports (the outbox); its
``Delivery`` rows are the work a Celery task or beat's sweeper carries out after commit.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Kind(models.TextChoices):
    APPROVAL_NEEDED = "approval_needed", "A withdrawal waits for your approval"
    WITHDRAWAL_APPROVED = "withdrawal_approved", "Your withdrawal was approved"
    WITHDRAWAL_REJECTED = "withdrawal_rejected", "Your withdrawal was rejected or expired"
    WITHDRAWAL_SUBMITTED = "withdrawal_submitted", "Your withdrawal was sent to the venue"
    WITHDRAWAL_COMPLETED = "withdrawal_completed", "Your withdrawal completed"
    WITHDRAWAL_FAILED = "withdrawal_failed", "Your withdrawal failed"
    ATTENTION = "attention", "A withdrawal's outcome is unknown or its submission is stuck"
    DUPLICATE = "duplicate", "A duplicate payment was detected"
    WHITELIST_PROPOSED = "whitelist_proposed", "A whitelist address was proposed"
    WHITELIST_COOLING_OFF = "whitelist_cooling_off", "A whitelist address is cooling off (veto)"
    VENUE_DRIFT = "venue_drift", "A venue's saved address differs from the whitelist"
    CHAIN_BROKEN = "chain_broken", "The audit chain is broken"
    CONFIGURATION_CHANGED = "configuration_changed", "A policy, venue or whitelist change"
    ACCESS_CHANGED = "access_changed", "A change to who may do what"
    MY_ACCESS_CHANGED = "my_access_changed", "A change to your own roles or authenticator"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Chat webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Gave up"


class Notification(models.Model):
    """One thing to tell people. ``event`` is the audit event it reports; reminders of a
    withdrawal still unsettled, which no new event marks, have none."""

    kind = models.CharField(max_length=32, choices=Kind.choices)
    event = models.ForeignKey(
        "audit.AuditEvent", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(db_index=True)
    recipients = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "kind"],
                condition=models.Q(event__isnull=False),
                name="notification_once_per_event_kind",
            )
        ]
        indexes = [
            # The reminder sweep asks when an object was last announced.
            models.Index(fields=["object_type", "object_id", "-created_at"], name="notif_obj_idx")
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class Delivery(models.Model):
    """One message to send: an email to one person, or a post to one configured webhook
    (naming the people who chose it). Its row records every try."""

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    endpoint = models.CharField(max_length=64, blank=True)
    mentions = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # Due for a try from then on. A worker that takes it pushes this forward first, so a sweep
    # running meanwhile leaves it alone (a lease, not a lock held across the network call).
    next_attempt_at = models.DateTimeField(db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.channel} #{self.pk} {self.status}"


class Preference(models.Model):
    """One person's channels for one kind. No row: email on, webhook off."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    email = models.BooleanField(default=True)
    webhook = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="preference_once_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}"
