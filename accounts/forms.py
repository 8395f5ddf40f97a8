from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from .models import ChangeKind
from .roles import ROLES, role_label
from .services import SigninThrottled, signin_password_check


class SigninForm(AuthenticationForm):
    """Django's login form, with the password checked through the sign-in throttle."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            try:
                self.user_cache = signin_password_check(
                    request=self.request, username=username, password=password
                )
            except SigninThrottled as exc:
                raise ValidationError(str(exc), code="throttled") from None
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class CodeForm(forms.Form):
    """The sign-in code: six digits from the authenticator, or one recovery code."""

    code = forms.CharField(
        label="Authenticator code",
        max_length=20,
        widget=forms.TextInput(
            # Not inputmode=numeric: a recovery code has letters.
            attrs={"autocomplete": "one-time-code", "autofocus": True}
        ),
    )


_CODE = {
    "max_length": 8,
    "label": "Your authenticator code",
    "widget": forms.TextInput(
        attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "maxlength": "8"}
    ),
}


class EnrolForm(forms.Form):
    """The page behind an enrolment link. ``new_person`` chooses a password; someone whose
    device was reset types their current one."""

    password = forms.CharField(
        max_length=128, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "off"})
    )
    password_again = forms.CharField(
        max_length=128,
        strip=False,
        required=False,
        label="The same password again",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    code = forms.CharField(**{**_CODE, "label": "The code your authenticator shows"})

    def __init__(self, *args: Any, new_person: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password"].label = "Choose a password" if new_person else "Your password"
        self.fields["password"].widget.attrs["autocomplete"] = (
            "new-password" if new_person else "current-password"
        )
        if not new_person:
            del self.fields["password_again"]


class TotpForm(forms.Form):
    code = forms.CharField(**_CODE)


class InviteForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(max_length=254)


class ProposeChangeForm(forms.Form):
    kind = forms.ChoiceField(choices=ChangeKind.choices, label="Change")
    role = forms.ChoiceField(
        choices=[("", "—"), *((r, role_label(r)) for r in ROLES)], required=False
    )
    reason = forms.CharField(max_length=500, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500)


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)
