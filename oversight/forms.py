from __future__ import annotations

from typing import Any

from django import forms

from core.forms import HandWrittenControlsForm
from venues.models import Venue

DATE_FORMAT = "YYYY-MM-DD"


class AuditFilterForm(HandWrittenControlsForm):
    """Filters of the audit-event history. Invalid input is reported, never a 500.

    The page writes its controls itself (templates/oversight/events.html): Django's widget
    templates cost more than the rows. Dates are typed text, not a date picker: the picker shows
    each browser's own format, so the label could not say which one to type."""

    action = forms.CharField(
        required=False,
        max_length=64,
        label="Action starts with",
    )
    user = forms.CharField(required=False, max_length=150, label="User")
    object_type = forms.CharField(required=False, max_length=32, label="Object type")
    object_id = forms.CharField(required=False, max_length=64, label="Object id")
    since = forms.DateField(
        required=False, label=f"From ({DATE_FORMAT})", input_formats=["%Y-%m-%d"]
    )
    until = forms.DateField(required=False, label=f"To ({DATE_FORMAT})", input_formats=["%Y-%m-%d"])
    before = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data


class WhitelistHistoryForm(AuditFilterForm):
    """Address-book changes: venue and asset filter through the addresses themselves."""

    venue = forms.ModelChoiceField(
        queryset=Venue.objects.order_by("name"),
        required=False,
        empty_label="All venues",
        label="Venue",
    )
    asset = forms.CharField(required=False, max_length=16, label="Asset")
    field_order = ["venue", "asset", "action", "user", "since", "until"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["object_type"]
        del self.fields["object_id"]

    def venue_options(self) -> list[tuple[str, str]]:
        """(value, name) of each venue, as strings the page compares with the query."""
        venues = self.fields["venue"].queryset.values_list("pk", "name")  # type: ignore[attr-defined]
        return [(str(pk), name) for pk, name in venues]


PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30


class ChartPeriodForm(forms.Form):
    days = forms.TypedChoiceField(
        required=False,
        coerce=int,
        choices=[(days, f"{days} days") for days in PERIODS],
        empty_value=DEFAULT_PERIOD,
        label="Period",
    )

    def period(self) -> int:
        """The days charted: the chosen period, or the default when none or a bad one came."""
        return (self.cleaned_data["days"] if self.is_valid() else None) or DEFAULT_PERIOD
