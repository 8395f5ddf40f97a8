from django import forms

from .models import VenueKind

# Credentials are write-only: the inputs never carry a value back to the browser.
_SECRET = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class VenueForm(forms.Form):
    """A proposal: a new venue, or a new configuration for an existing one."""

    kind = forms.ChoiceField(choices=VenueKind.choices)
    name = forms.CharField(max_length=80)
    base_url = forms.CharField(max_length=200, label="Base URL")
    account = forms.CharField(max_length=80, required=False, label="Account id / IIBAN")
    api_key = forms.CharField(max_length=500, required=False, widget=_SECRET, label="API key")
    api_secret = forms.CharField(max_length=500, required=False, widget=_SECRET, label="API secret")
    passphrase = forms.CharField(max_length=500, required=False, widget=_SECRET)
    fee_deduct_type = forms.ChoiceField(
        required=False,
        choices=[("", "—"), ("INTERNAL", "INTERNAL"), ("EXTERNAL", "EXTERNAL")],
        label="KuCoin fee deduct type",
    )
    path_prefix = forms.ChoiceField(
        required=False, choices=[("", "none"), ("/v1", "/v1")], label="Nord-Pay path prefix"
    )

    def __init__(self, *args, editing: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            # Kind and name identify the venue; changing them is a new venue.
            self.fields["kind"].disabled = True
            self.fields["name"].disabled = True
            for name in ("api_key", "api_secret", "passphrase"):
                self.fields[name].help_text = "Leave blank to keep the stored value."


class ApproveChangeForm(forms.Form):
    code = forms.CharField(max_length=8, label="Your authenticator code")


class RejectChangeForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False)


class EnabledForm(forms.Form):
    enabled = forms.BooleanField(required=False)
