from __future__ import annotations

from django.conf import settings
from django.db import models

from .crypto import decrypt_json, encrypt_json
from .interface import VenueCredentials, VenueSettings


class VenueKind(models.TextChoices):
    KRAKEN = "kraken", "Kraken spot"
    KRAKEN_EMBED = "kraken_embed", "Kraken Embed"
    KUCOIN = "kucoin", "KuCoin"
    ONEKONTO = "onekonto", "1Konto"
    NORDPAY = "nordpay", "Nord-Pay"


class Venue(models.Model):
    """One account at one venue. Credentials are encrypted and never leave this model in clear
    except to build a client."""

    kind = models.CharField(max_length=20, choices=VenueKind.choices)
    name = models.CharField(max_length=80, unique=True)
    base_url = models.CharField(max_length=200)
    account = models.CharField(
        max_length=80, blank=True, help_text="1Konto account id, Kraken Embed IIBAN"
    )
    credentials_encrypted = models.TextField(blank=True, editable=False)
    options_json = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_venue", "Can add and edit venues and their credentials")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def credentials(self) -> VenueCredentials:
        data = decrypt_json(self.credentials_encrypted)
        return VenueCredentials(
            api_key=data.get("api_key", ""),
            api_secret=data.get("api_secret", ""),
            passphrase=data.get("passphrase", ""),
            account=self.account,
        )

    def set_credentials(self, *, api_key: str, api_secret: str, passphrase: str = "") -> None:
        self.credentials_encrypted = encrypt_json(
            {"api_key": api_key, "api_secret": api_secret, "passphrase": passphrase}
        )

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    @property
    def options(self) -> VenueSettings:
        known = {k: str(v) for k, v in self.options_json.items() if k in VenueSettings.__slots__}
        return VenueSettings(**known)

    @property
    def is_sandbox(self) -> bool:
        return self.base_url.startswith("sandbox://")


class VenueChangeState(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    APPLIED = "applied", "Approved and applied"
    REJECTED = "rejected", "Rejected"


class VenueChange(models.Model):
    """A proposed venue configuration: a new venue (``venue`` is null), or a new base URL,
    account, options or credentials for an existing one.

    Nothing here reaches a client until a second whitelist admin approves it with TOTP; until
    then the venue keeps its old configuration. New credentials wait here encrypted, and only
    those given: the others stay as the venue has them.
    """

    venue = models.ForeignKey(
        Venue, null=True, blank=True, on_delete=models.PROTECT, related_name="changes"
    )
    kind = models.CharField(max_length=20, choices=VenueKind.choices)
    name = models.CharField(max_length=80)
    # The configuration the venue will have once approved (every field, changed or not).
    base_url = models.CharField(max_length=200)
    account = models.CharField(max_length=80, blank=True)
    options_json = models.JSONField(default=dict, blank=True)
    credentials_encrypted = models.TextField(blank=True, editable=False)
    # What changes, old and new, for people and the audit trail: never a secret, only the
    # names of the credential fields that are replaced.
    summary = models.JSONField(default=dict)
    state = models.CharField(
        max_length=12, choices=VenueChangeState.choices, default=VenueChangeState.PROPOSED
    )
    # Null: an operator at the command line (manage.py venue update).
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="venue_changes_proposed",
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="venue_changes_approved",
    )
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="venue_changes_rejected",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True)
                | models.Q(proposed_by__isnull=True)
                | ~models.Q(approved_by=models.F("proposed_by")),
                name="venue_change_approver_is_not_proposer",
            ),
            # One open change per venue, so an approval never applies a stale picture.
            models.UniqueConstraint(
                fields=["venue"],
                condition=models.Q(state="proposed", venue__isnull=False),
                name="venue_change_one_open_per_venue",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(state="proposed", venue__isnull=True),
                name="venue_change_one_open_creation_per_name",
            ),
        ]

    def __str__(self) -> str:
        what = "new venue" if self.venue_id is None else "change"
        return f"{what} {self.name} ({self.get_state_display()})"

    @property
    def is_creation(self) -> bool:
        return self.venue_id is None

    @property
    def new_credentials(self) -> dict[str, str]:
        """Only the credential fields this change replaces."""
        return decrypt_json(self.credentials_encrypted)


class ApiNonce(models.Model):
    """The last nonce handed out for one API key (see venues.nonces)."""

    scope = models.CharField(max_length=80, unique=True)
    value = models.BigIntegerField()

    def __str__(self) -> str:
        return self.scope


class SubmitAttempt(models.Model):
    """Our own record of sending a withdrawal to a venue that takes no client id.

    Written before the request leaves (``sent_at``) and after the answer (``reference``), so
    reconciliation can tell "never sent" from "sent, answer lost", and never claims a venue
    record that already belongs to another of our withdrawals.
    """

    kind = models.CharField(max_length=20)
    request_id = models.UUIDField()
    sent_at = models.DateTimeField()
    reference = models.CharField(max_length=128, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["kind", "reference"], name="submit_attempt_ref_idx"),
            models.Index(fields=["kind", "request_id"], name="submit_attempt_request_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.request_id} → {self.reference or '?'}"
