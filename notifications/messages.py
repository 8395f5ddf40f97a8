"""What a notification says. Built from the audit event's kind, object and message only:
never from its data, which may carry TOTP steps, reasons of others' access or credentials'
fingerprints. Every message links to the page where the thing can be seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse

from audit.models import AuditEvent
from whitelist.models import WhitelistedAddress

from .models import Kind

# How a withdrawal's event reads after "Withdrawal #N".
_WITHDRAWAL_VERBS = {
    "withdrawal.requested": "waits for your approval",
    "withdrawal.requoted": "was re-quoted and waits for your approval again",
    "withdrawal.sent_back": "came back for approval: earlier approvals no longer hold",
    "withdrawal.approval_added": "received an approval",
    "withdrawal.approved": "was approved",
    "withdrawal.rejected": "was rejected",
    "withdrawal.expired": "expired without approval",
    "withdrawal.submitted": "was sent to the venue",
    "withdrawal.completed": "completed",
    "withdrawal.failed": "failed",
    "withdrawal.outcome_unknown": "has an unknown outcome: it needs settling",
    "withdrawal.attention_raised": "needs attention: it needs settling",
    "withdrawal.duplicate_detected": "was paid twice: a duplicate payment was detected",
}

# The page each kind of object is seen on.
_PAGES = {
    "withdrawalrequest": ("withdrawals:detail", True),
    "whitelistedaddress": ("whitelist:detail", True),
    "venuechange": ("venues:change", True),
    "venue": ("venues:list", False),
    "user": ("people:access_review", False),
    "chaincheck": ("audit:dashboard", False),
}


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    link: str


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def page_link(object_type: str, object_id: str) -> str:
    name, with_id = _PAGES.get(object_type, ("withdrawals:dashboard", False))
    if with_id and object_id.isdigit():
        return absolute(reverse(name, args=[int(object_id)]))
    return absolute(reverse(name if not with_id else "withdrawals:dashboard"))


def _title(event: AuditEvent, kind: str) -> str:
    if event.object_type == "withdrawalrequest" and event.action in _WITHDRAWAL_VERBS:
        return f"Withdrawal #{event.object_id} {_WITHDRAWAL_VERBS[event.action]}"
    if kind == Kind.MY_ACCESS_CHANGED:
        return "Your access changed: " + event.action.split(".", 1)[-1].replace("_", " ")
    return f"{Kind(kind).label}: {event.action}"


def _veto_line(event: AuditEvent) -> str:
    address = WhitelistedAddress.objects.filter(pk=event.object_id or None).first()
    if address is None or address.active_from is None:
        return ""
    return (
        f"Cooling-off: an auditor may veto it until {address.active_from:%Y-%m-%d %H:%M} UTC; "
        "after that it can be used for withdrawals."
    )


def event_message(*, event: AuditEvent, kind: str) -> Message:
    title = _title(event, kind)[:200]
    # The access review is for user admins and auditors; the person concerned gets home.
    own = kind == Kind.MY_ACCESS_CHANGED
    link = (
        absolute(reverse("withdrawals:dashboard"))
        if own
        else page_link(event.object_type, event.object_id)
    )
    lines = [title, ""]
    if event.message:
        lines.append(event.message)
    if kind == Kind.WHITELIST_COOLING_OFF and (veto := _veto_line(event)):
        lines.append(veto)
    lines += [
        f"By {event.actor_name or 'system'} at {event.created_at:%Y-%m-%d %H:%M:%S} UTC.",
        "",
        f"Open: {link}",
    ]
    return Message(title=title, body="\n".join(lines), link=link)


def reminder_message(*, withdrawal: Any, duplicate: bool) -> Message:
    what = "has a duplicate payment nobody has taken in hand" if duplicate else "is still unsettled"
    title = f"Reminder: withdrawal #{withdrawal.pk} {what}"
    link = absolute(reverse("withdrawals:attention"))
    body = "\n".join(
        [
            title,
            "",
            f"State: {withdrawal.get_state_display()}.",
            "It stays on the Needs attention page until someone settles it.",
            "",
            f"Open: {link}",
        ]
    )
    return Message(title=title, body=body, link=link)
