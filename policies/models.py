"""The withdrawal policy and the reference prices, each versioned and changed only by a
proposal a second whitelist admin approves.

A version is never edited: a change writes the next version, so a withdrawal that recorded its
rule keeps pointing at exactly what applied when it was requested.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

AMOUNT = {"max_digits": 38, "decimal_places": 18}
DEFAULT_EXPIRY_HOURS = 72


class PolicyVersion(models.Model):
    number = models.PositiveIntegerField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    proposal = models.OneToOneField(
        "Proposal", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Red-flag settings: versioned with the rules, so they change under the same four eyes.
    median_multiple = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal(3))
    business_hours_start = models.PositiveSmallIntegerField(default=8)
    business_hours_end = models.PositiveSmallIntegerField(default=18)
    weekdays_only = models.BooleanField(default=True)
    rubber_stamp_seconds = models.PositiveIntegerField(default=10)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"policy version {self.number}"


class Rule(models.Model):
    """One row of a policy: what it matches (blank means any) and what it decides.

    The band is ``amount_above < amount <= amount_up_to``; amounts and limits are in the asset's
    own units, so a band or an amount limit needs a named asset.
    """

    policy = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="rules")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=80, blank=True)
    venue = models.ForeignKey(
        "venues.Venue", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    asset = models.CharField(max_length=16, blank=True)
    destination = models.ForeignKey(
        "whitelist.WhitelistedAddress",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    amount_above = models.DecimalField(**AMOUNT, null=True, blank=True)
    amount_up_to = models.DecimalField(**AMOUNT, null=True, blank=True)
    quorum = models.PositiveSmallIntegerField(default=1)
    required_role = models.CharField(max_length=32, blank=True)
    max_per_withdrawal = models.DecimalField(**AMOUNT, null=True, blank=True)
    daily_amount = models.DecimalField(**AMOUNT, null=True, blank=True)
    daily_count = models.PositiveIntegerField(null=True, blank=True)
    destination_daily_amount = models.DecimalField(**AMOUNT, null=True, blank=True)
    destination_daily_count = models.PositiveIntegerField(null=True, blank=True)
    expiry_hours = models.PositiveIntegerField(default=DEFAULT_EXPIRY_HOURS)

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="policy_rule_position"),
            models.CheckConstraint(condition=models.Q(quorum__gte=1), name="policy_rule_quorum"),
        ]

    def __str__(self) -> str:
        return f"rule {self.position} of version {self.policy_id}"


class PriceTable(models.Model):
    """Reference prices in USD, typed in by people and dated: no external feed."""

    number = models.PositiveIntegerField(unique=True)
    as_of = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)
    proposal = models.OneToOneField(
        "Proposal", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"price table {self.number} ({self.as_of})"


class Price(models.Model):
    table = models.ForeignKey(PriceTable, on_delete=models.PROTECT, related_name="prices")
    asset = models.CharField(max_length=16)
    usd = models.DecimalField(**AMOUNT)

    class Meta:
        ordering = ["asset"]
        constraints = [
            models.UniqueConstraint(fields=["table", "asset"], name="price_once_per_table"),
            models.CheckConstraint(condition=models.Q(usd__gt=0), name="price_usd_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} = {self.usd} USD"


class ProposalKind(models.TextChoices):
    POLICY = "policy", "Policy"
    PRICES = "prices", "Reference prices"


class ProposalState(models.TextChoices):
    PROPOSED = "proposed", "Waiting for a second whitelist admin"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"


class Proposal(models.Model):
    """A whole new policy or price table, proposed by one whitelist admin.

    ``payload`` is the complete proposed content (not a patch): approving it writes the next
    version as proposed. ``base_number`` is the version it was written against; a proposal
    whose base is no longer current is refused, so nobody approves a diff that is not the one
    shown.
    """

    kind = models.CharField(max_length=10, choices=ProposalKind.choices)
    state = models.CharField(
        max_length=10, choices=ProposalState.choices, default=ProposalState.PROPOSED
    )
    payload = models.JSONField()
    base_number = models.PositiveIntegerField(null=True, blank=True)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_totp_step = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(state="proposed"),
                name="policy_one_open_proposal_per_kind",
            ),
            # The proposer may withdraw (decline) their own proposal, never approve it.
            models.CheckConstraint(
                condition=~models.Q(state="approved", decided_by=models.F("proposed_by")),
                name="policy_proposal_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} proposal #{self.pk} ({self.state})"


class VelocityLock(models.Model):
    """One row per limit scope (venue and asset, or destination), locked while a withdrawal's
    use of that scope is counted and granted, so two approvals never both fit under a limit."""

    scope = models.CharField(max_length=80, unique=True)

    def __str__(self) -> str:
        return self.scope
