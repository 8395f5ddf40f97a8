"""Form helpers shared by the apps' pages."""

from __future__ import annotations

from django import forms

from core.errors import ApplicationError


class HandWrittenControlsForm(forms.Form):
    """A filter form whose page writes its controls itself, where Django's widget templates
    would cost more than the rows the page shows."""

    def values(self) -> dict[str, str]:
        """What was typed into each field, "" where nothing was: every key is present, because
        the template language answers a missing key of the query (a QueryDict) only after
        listing all the query's attributes, about 20 µs per empty control."""
        return {name: self.data.get(name, "") for name in self.fields}


def apply_service_error(form: forms.Form, exc: ApplicationError) -> None:
    """Show a service's refusal next to its field when the form has one, else above the form."""
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)
