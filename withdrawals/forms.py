from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import forms

from core.forms import HandWrittenControlsForm
from venues.models import Venue

from .models import AMOUNT, State
from .policy import FLAG_LABELS

_AMOUNT = re.compile(r"^[0-9]{1,60}(\.[0-9]{1,60})?\Z")  # ASCII digits only
# What an amount column holds: anything longer is refused with a message, never a 500.
AMOUNT_WHOLE_DIGITS = AMOUNT["max_digits"] - AMOUNT["decimal_places"]


def parse_amount(raw: str) -> Decimal:
    """A strict decimal: digits with an optional fraction. No exponent, sign, NaN or commas."""
    text = (raw or "").strip()
    if not text:
        raise forms.ValidationError("Enter an amount.")
    if text.startswith("-"):
        raise forms.ValidationError("The amount must be greater than zero.")
    if not _AMOUNT.match(text):
        raise forms.ValidationError("Enter a plain number, like 0.25.")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise forms.ValidationError("Enter a plain number, like 0.25.") from None
    if value <= 0:
        raise forms.ValidationError("The amount must be greater than zero.")
    whole, _, fraction = text.partition(".")
    if len(whole.lstrip("0")) > AMOUNT_WHOLE_DIGITS:
        raise forms.ValidationError(f"At most {AMOUNT_WHOLE_DIGITS} digits before the point.")
    if len(fraction.rstrip("0")) > AMOUNT["decimal_places"]:
        raise forms.ValidationError(
            f"At most {AMOUNT['decimal_places']} decimal places (no venue takes more)."
        )
    return value


class AmountField(forms.CharField):
    def __init__(self, *, max_length: int = 60, **kwargs) -> None:
        # No MaxLengthValidator: it would run on the parsed Decimal (no len()). parse_amount's
        # pattern bounds the text; the widget still carries maxlength for the browser.
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("maxlength", str(max_length))

    def to_python(self, value: str) -> Decimal | None:  # type: ignore[override]
        if value in self.empty_values:
            return None
        return parse_amount(value)


class WithdrawalForm(forms.Form):
    venue = forms.ModelChoiceField(
        queryset=Venue.objects.filter(enabled=True), empty_label="Choose a venue…"
    )
    address = forms.IntegerField(
        widget=forms.Select, error_messages={"invalid": "Choose a whitelisted address."}
    )
    amount = AmountField(
        max_length=60,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    fee_deduct_type = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Venue default"),
            ("INTERNAL", "From the amount"),
            ("EXTERNAL", "From the account"),
        ],
        label="Fee paid",
    )
    note = forms.CharField(required=False, max_length=200)


class ApproveForm(forms.Form):
    code = forms.CharField(max_length=8, label="Authenticator code")
    quote = forms.IntegerField(widget=forms.HiddenInput)


class ResolutionForm(forms.Form):
    finding = forms.ChoiceField(
        choices=[
            ("found", "Found at the venue, as the reference below"),
            ("never_sent", "Confirmed never sent (it will be sent again)"),
        ],
        widget=forms.RadioSelect,
        label="What the venue shows",
    )
    reference = forms.CharField(
        max_length=128, required=False, label="Venue reference (when found)"
    )
    evidence = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Evidence you checked",
    )
    code = forms.CharField(max_length=8, label="Authenticator code")


class ConfirmResolutionForm(forms.Form):
    code = forms.CharField(max_length=8, label="Authenticator code")


class DeclineResolutionForm(forms.Form):
    note = forms.CharField(max_length=500, label="Why you decline")


class AcknowledgeDuplicateForm(forms.Form):
    note = forms.CharField(max_length=500, label="What is being done about it")
    code = forms.CharField(max_length=8, label="Authenticator code")


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class FilterForm(HandWrittenControlsForm):
    """The history filters. The page writes its controls itself from ``fields`` and ``data``
    (templates/withdrawals/list.html): Django's widget templates cost more than the rows."""

    venue = forms.ModelChoiceField(
        queryset=Venue.objects.all(), required=False, empty_label="All venues", label="Venue"
    )
    state = forms.ChoiceField(
        required=False, choices=[("", "All states"), *State.choices], label="State"
    )
    asset = forms.CharField(required=False, max_length=16, label="Asset")
    q = forms.CharField(required=False, max_length=100, label="Search")
    user = forms.CharField(required=False, max_length=150, label="Requester")
    # Typed as ISO dates, not the browser's date picker: the picker shows the browser's locale
    # (mm/dd/yyyy) while the page, its links and the exports speak YYYY-MM-DD.
    since = forms.DateField(required=False, label="From (YYYY-MM-DD)", input_formats=["%Y-%m-%d"])
    until = forms.DateField(required=False, label="To (YYYY-MM-DD)", input_formats=["%Y-%m-%d"])
    amount_min = AmountField(required=False, label="Min amount", max_length=40)
    amount_max = AmountField(required=False, label="Max amount", max_length=40)
    # Approvals given despite a red flag (recorded with each approval), for auditors.
    red_flag = forms.ChoiceField(
        required=False,
        label="Red flag",
        choices=[("", "Any or no red flag"), *((f.value, text) for f, text in FLAG_LABELS.items())],
    )
    before = forms.IntegerField(required=False, min_value=1)

    def venue_options(self) -> list[tuple[str, str]]:
        """(value, name) of each venue, as strings the page compares with the query."""
        venues = self.fields["venue"].queryset.values_list("pk", "name")  # type: ignore[attr-defined]
        return [(str(pk), name) for pk, name in venues]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date is after the end date.")
        low, high = data.get("amount_min"), data.get("amount_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("The minimum amount is above the maximum.")
        return data
