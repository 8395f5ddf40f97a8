from __future__ import annotations

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
