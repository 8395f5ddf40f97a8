from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class AddressState(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    COOLING_OFF = "cooling_off", "Cooling off"
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    VETOED = "vetoed", "Vetoed"


class AddressSource(models.TextChoices):
    MANUAL = "manual", "Typed in"
    IMPORT = "import", "Imported from the venue"


class WhitelistedAddress(models.Model):
    """A destination the company may pay. Never edited in place once proposed: an edit is a
    revoke plus a new proposal."""

    venue = models.ForeignKey("venues.Venue", on_delete=models.PROTECT, related_name="addresses")
    asset = models.CharField(max_length=16)
    network = models.CharField(max_length=40)
    address = models.CharField(max_length=128)
    memo = models.CharField(max_length=64, blank=True)
    label = models.CharField(max_length=80)
    venue_key = models.CharField(
        max_length=80, blank=True, help_text="Name of the address saved at the venue (Kraken)"
    )
    state = models.CharField(
        max_length=16, choices=AddressState.choices, default=AddressState.PROPOSED
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # When cooling-off ends (set on approval); the address is usable from then on.
    active_from = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=500, blank=True)
    source = models.CharField(
        max_length=16, choices=AddressSource.choices, default=AddressSource.MANUAL
    )
    # Last comparison with the venue's saved addresses; empty detail means it matched.
    drift_detail = models.CharField(max_length=500, blank=True)
    drift_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["venue__name", "asset", "label"]
        permissions = [
            ("govern_address", "Can propose, approve and revoke whitelisted addresses"),
            ("veto_address", "Can veto an address during cooling-off"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["venue", "asset", "network", "address", "memo"],
                condition=~models.Q(state__in=["revoked", "vetoed"]),
                name="whitelist_unique_live_address",
            ),
            # A label names one live address per venue (case ignored): two "Payroll"s at one
            # venue let a requester pick the wrong one.
            models.UniqueConstraint(
                Lower("label"),
                "venue",
                condition=~models.Q(state__in=["revoked", "vetoed"]),
                name="whitelist_unique_live_label_per_venue",
            ),
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True)
                | ~models.Q(approved_by=models.F("proposed_by")),
                name="whitelist_approver_is_not_proposer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.asset}/{self.network})"

    @property
    def is_live(self) -> bool:
        return self.state not in {AddressState.REVOKED, AddressState.VETOED}

    @property
    def short_address(self) -> str:
        a = self.address
        return a if len(a) <= 20 else f"{a[:10]}…{a[-8:]}"
