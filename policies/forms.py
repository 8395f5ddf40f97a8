"""Forms of the policy and price pages. They only collect: the rulebook validates."""

from __future__ import annotations

from typing import Any

from django import forms

from accounts.roles import ROLES, role_label
from venues.models import Venue
from whitelist.models import WhitelistedAddress

from . import rulebook

AMOUNT_ATTRS = {"inputmode": "decimal", "autocomplete": "off", "size": 10}


def _amount(label: str) -> forms.CharField:
    # Text, never a float: the rulebook parses the digits as a Decimal.
    return forms.CharField(
        required=False, max_length=40, label=label, widget=forms.TextInput(attrs=AMOUNT_ATTRS)
    )


def _count(label: str, *, low: int = 1, high: int = 10**6) -> forms.IntegerField:
    return forms.IntegerField(
        required=False,
        min_value=low,
        max_value=high,
        label=label,
        widget=forms.NumberInput(attrs={"size": 5}),
    )


class RuleForm(forms.Form):
    label = forms.CharField(required=False, max_length=80, label="Label")
    venue = forms.ModelChoiceField(
        queryset=Venue.objects.order_by("name"),
        required=False,
        empty_label="any venue",
        label="Venue",
    )
    asset = forms.CharField(
        required=False, max_length=16, label="Asset", widget=forms.TextInput(attrs={"size": 6})
    )
    destination = forms.ModelChoiceField(
        queryset=WhitelistedAddress.objects.order_by("label"),
        required=False,
        empty_label="any destination",
        label="Destination",
    )
    amount_above = _amount("Above")
    amount_up_to = _amount("Up to")
    quorum = _count("Approvers", high=rulebook.MAX_QUORUM)
    required_role = forms.ChoiceField(
        required=False,
        label="One must be",
        choices=[("", "anyone"), *((r, role_label(r)) for r in ROLES)],
    )
    max_per_withdrawal = _amount("Max per withdrawal")
    daily_amount = _amount("24 h amount")
    daily_count = _count("24 h count")
    destination_daily_amount = _amount("24 h amount to one destination")
    destination_daily_count = _count("24 h count to one destination")
    expiry_hours = _count("Expires after (h)", high=rulebook.MAX_EXPIRY_HOURS)

    def raw(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["venue"] = data["venue"].pk if data.get("venue") else None
        data["destination"] = data["destination"].pk if data.get("destination") else None
        return {field: data.get(field) for field in rulebook.RULE_FIELDS}


class _RowLabels:
    """A formset row is a table row whose column headers are the only visible labels: each
    control also names its column and row, so a screen reader says which cell it is in."""

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)  # type: ignore[misc]
        row = f"row {index + 1}" if index is not None else "new row"
        names = {"ORDER": "Order", "DELETE": "Delete"}
        for name, field in form.fields.items():
            label = names.get(name) or field.label or name.replace("_", " ").capitalize()
            field.widget.attrs.setdefault("aria-label", f"{label}, {row}")


class BaseRuleFormSet(_RowLabels, forms.BaseFormSet):
    def rules(self) -> list[dict[str, Any]]:
        """The rules in the order typed (a blank order keeps the row's place), the default rule
        last wherever it was typed, without deleted or untouched rows."""
        kept = [
            (i, f.raw(), f.cleaned_data.get("ORDER"))
            for i, f in enumerate(self.forms, start=1)
            if f.has_changed() and f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        kept.sort(key=lambda row: (rulebook.is_catch_all(row[1]), row[2] or row[0], row[0]))
        return [raw for _, raw, _ in kept]


RuleFormSet = forms.formset_factory(
    RuleForm, formset=BaseRuleFormSet, extra=1, can_order=True, can_delete=True, max_num=30
)


class PolicySettingsForm(forms.Form):
    median_multiple = forms.CharField(
        max_length=10, label="Flag amounts above this many times the destination's median"
    )
    business_hours_start = forms.IntegerField(min_value=0, max_value=23, label="Business from")
    business_hours_end = forms.IntegerField(min_value=1, max_value=24, label="Business until")
    weekdays_only = forms.BooleanField(required=False, label="Monday to Friday only")
    rubber_stamp_seconds = forms.IntegerField(
        min_value=0, max_value=3600, label="Rubber stamp: approved within (seconds)"
    )


class PriceForm(forms.Form):
    asset = forms.CharField(
        required=False, max_length=16, label="Asset", widget=forms.TextInput(attrs={"size": 8})
    )
    usd = _amount("USD")


class BasePriceFormSet(_RowLabels, forms.BaseFormSet):
    pass


PriceFormSet = forms.formset_factory(
    PriceForm, formset=BasePriceFormSet, extra=2, can_delete=True, max_num=100
)


class PricesDateForm(forms.Form):
    as_of = forms.DateField(label="Prices as of", widget=forms.DateInput(attrs={"type": "date"}))


class ApproveProposalForm(forms.Form):
    code = forms.CharField(max_length=8, label="Your authenticator code")


class DeclineProposalForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False, label="Reason (optional)")
