from __future__ import annotations

from django.db import models


class DailyWithdrawalTotals(models.Model):
    """Withdrawals per day requested, venue, asset and state: what the auditors' charts read,
    so a page view never scans the withdrawals table (see oversight.services)."""

    day = models.DateField()
    venue = models.ForeignKey("venues.Venue", on_delete=models.PROTECT, related_name="+")
    asset = models.CharField(max_length=16)
    state = models.CharField(max_length=20)
    count = models.PositiveIntegerField()
    amount_sum = models.DecimalField(max_digits=38, decimal_places=18)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "venue", "asset", "state"], name="daily_totals_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.asset} {self.state}: {self.count}"
