"""Template filters that turn stored identifiers into the words people read."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def role_label(role: str) -> str:
    """``whitelist_admin`` reads "whitelist admin", as accounts.roles.role_label words it in
    messages and forms. Generic on purpose: core sits below accounts, and any role the accounts
    app adds reads right without a table here."""
    return " ".join(str(role or "").split("_")).strip()
