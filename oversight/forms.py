from __future__ import annotations

from typing import Any

from django import forms

from venues.models import Venue

_DATE = forms.DateInput(attrs={"type": "date"})


class AuditFilterForm(forms.Form):
    """Filters of the audit-event history. Invalid input is reported, never a 500."""

    action = forms.CharField(required=False, max_length=64, label="Action starts with")
    user = forms.CharField(required=False, max_length=150, label="User")
    object_type = forms.CharField(required=False, max_length=32, label="Object type")
    object_id = forms.CharField(required=False, max_length=64, label="Object id")
    since = forms.DateField(required=False, label="From", widget=_DATE)
    until = forms.DateField(required=False, label="To", widget=_DATE)
    before = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name not in {"since", "until", "before"}:
                field.widget.attrs.setdefault("placeholder", field.label)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data


class WhitelistHistoryForm(AuditFilterForm):
    """Address-book changes: venue and asset filter through the addresses themselves."""

    venue = forms.ModelChoiceField(
        queryset=Venue.objects.order_by("name"), required=False, empty_label="All venues"
    )
    asset = forms.CharField(required=False, max_length=16, label="Asset")
    field_order = ["venue", "asset", "action", "user", "since", "until"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["object_type"]
        del self.fields["object_id"]


class ChartPeriodForm(forms.Form):
    days = forms.TypedChoiceField(
        required=False,
        coerce=int,
        choices=[(7, "7 days"), (30, "30 days"), (90, "90 days")],
        empty_value=30,
    )
