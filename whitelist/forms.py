from __future__ import annotations

from django import forms

from venues.models import Venue
from venues.registry import KINDS, client_class

from .services import KNOWN_ASSETS

_CODE = {
    "max_length": 8,
    "widget": forms.TextInput(
        attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "maxlength": "8"}
    ),
    "label": "Your authenticator code",
}


class ProposeForm(forms.Form):
    venue = forms.ModelChoiceField(
        queryset=Venue.objects.filter(enabled=True),
        empty_label="Choose a venue…",
        error_messages={"invalid_choice": "Choose a venue."},
    )
    asset = forms.ChoiceField(
        choices=[("", "Choose an asset…"), *((a, a) for a in KNOWN_ASSETS)],
        error_messages={"invalid_choice": "Choose an asset Countersign knows."},
    )
    network = forms.CharField(max_length=40, help_text="As the venue spells it, e.g. Ethereum")
    address = forms.CharField(max_length=128, strip=False)
    memo = forms.CharField(max_length=64, required=False, label="Memo / tag")
    label = forms.CharField(max_length=80)
    venue_key = forms.CharField(
        max_length=80, required=False, label="Key saved at the venue (Kraken)"
    )
    acknowledge_lookalike = forms.BooleanField(
        required=False,
        label="I compared this address character by character with the one it resembles",
    )
    code = forms.CharField(**_CODE)


class ApproveForm(forms.Form):
    acknowledge_lookalike = forms.BooleanField(
        required=False,
        label="I compared this address character by character with the one it resembles",
    )
    code = forms.CharField(**_CODE)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    code = forms.CharField(**_CODE)


class ImportForm(forms.Form):
    venue = forms.ModelChoiceField(
        queryset=Venue.objects.filter(
            enabled=True, kind__in=[k for k in KINDS if client_class(k).supports_saved_addresses]
        ),
        empty_label="Choose a venue…",
        error_messages={"invalid_choice": "Choose a venue."},
    )
    code = forms.CharField(**_CODE)
