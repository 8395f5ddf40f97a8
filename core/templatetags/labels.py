"""Template filters that turn stored identifiers into the words people read."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def role_label(role: str) -> str:
    """``whitelist_admin`` reads "Whitelist admin". Generic on purpose: core sits below
    accounts, and any role the accounts app adds reads right without a table here."""
    words = str(role or "").replace("_", " ").strip()
    return words[:1].upper() + words[1:]
