"""The one error type for a refusal the user can act on."""

from __future__ import annotations


class ApplicationError(Exception):
    """A refusal shown to the person who asked, in words they can act on. ``field`` names the
    form field it belongs next to; ``None`` puts it above the form. Each app's services raise a
    subclass of their own, so a view catches only the refusals of what it called."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
