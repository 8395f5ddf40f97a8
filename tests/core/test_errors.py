"""One error type for a refusal the user can act on, and one way a page shows it."""

import pytest
from django import forms

from accounts.services import PeopleError
from core.errors import ApplicationError
from core.forms import apply_service_error
from policies.rulebook import PolicyError
from venues.services import VenueConfigError
from whitelist.services import WhitelistError
from withdrawals.services import WithdrawalError


class _Form(forms.Form):
    amount = forms.CharField(required=False)


@pytest.mark.parametrize(
    "refusal", [PeopleError, PolicyError, VenueConfigError, WhitelistError, WithdrawalError]
)
def test_every_apps_refusal_is_an_application_error(refusal):
    exc = refusal("Not now.", field="amount")
    assert isinstance(exc, ApplicationError)
    assert (exc.message, exc.field, str(exc)) == ("Not now.", "amount", "Not now.")


def test_a_refusal_goes_next_to_its_field():
    form = _Form({})
    assert form.is_valid()
    apply_service_error(form, ApplicationError("Too much.", field="amount"))
    assert form.errors == {"amount": ["Too much."]}


def test_a_refusal_for_a_field_the_form_lacks_goes_above_the_form():
    form = _Form({})
    assert form.is_valid()
    apply_service_error(form, ApplicationError("Venue paused.", field="venue"))
    assert form.non_field_errors() == ["Venue paused."]
    assert "amount" not in form.errors
