"""``{{ event.action|event_label }}``: the words people read for a stored action name."""

from __future__ import annotations

from django import template

from audit.actions import AuditAction

register = template.Library()


@register.filter
def event_label(action: str) -> str:
    return AuditAction.label_of(action)
