from django import forms


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Authenticator code",
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )
