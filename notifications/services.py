"""Telling people: notifications written with the event, delivered after commit.

The outbox: ``notification_create`` runs inside the transaction of the change it reports, so a
rolled-back change leaves no notification and a committed one always has its deliveries. The
tasks it enqueues on commit are a shortcut; beat's sweep delivers whatever they missed (a broker
outage), with backoff per delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.roles import APPROVER, AUDITOR, USER_ADMIN, WHITELIST_ADMIN
from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.services import audit_event_id_reserve
from withdrawals.models import WithdrawalRequest

from . import selectors, tasks
from .messages import Message, event_message, reminder_message
from .models import Channel, Delivery, DeliveryStatus, Kind, Notification, Preference

logger = logging.getLogger(__name__)

# The first try is the task enqueued on commit; the sweep takes over only after this long, so
# the two do not race for a delivery whose task is merely queued.
BACKOFF_BASE_SECONDS = 30.0

Audience = Callable[[AuditEvent], Iterable[Any]]


# --- who is told of what ------------------------------------------------------------------------


def _withdrawal(event: AuditEvent) -> WithdrawalRequest | None:
    if event.object_type != "withdrawalrequest" or not event.object_id.isdigit():
        return None
    return WithdrawalRequest.objects.filter(pk=int(event.object_id)).first()


def _requester(event: AuditEvent) -> Iterable[Any]:
    if event.object_type != "withdrawalrequest" or not event.object_id.isdigit():
        return []
    # Through the withdrawal in the same statement: this runs inside every approval.
    return get_user_model().objects.filter(
        withdrawal_requests__pk=int(event.object_id), is_active=True
    )


def _roles(*roles: str) -> Audience:
    def audience(event: AuditEvent) -> Iterable[Any]:
        people = selectors.users_with_roles(*roles)
        withdrawal = _withdrawal(event)
        # Whoever asked for the money never acts on it, so is never asked to.
        return people.exclude(pk=withdrawal.requested_by_id) if withdrawal else people

    return audience


def _subject(event: AuditEvent) -> Iterable[Any]:
    if event.object_type != "user" or not event.object_id.isdigit():
        return []
    return get_user_model().objects.filter(pk=int(event.object_id), is_active=True)


@dataclass(frozen=True)
class Route:
    kind: Kind
    audience: Audience


_OVERSEERS = _roles(WHITELIST_ADMIN, USER_ADMIN, AUDITOR)
_WHITELIST_WATCH = _roles(WHITELIST_ADMIN, AUDITOR)
_SETTLERS = _roles(APPROVER, WHITELIST_ADMIN)

_ASK_APPROVERS = (Route(Kind.APPROVAL_NEEDED, _roles(APPROVER)),)
_ACCESS = (Route(Kind.ACCESS_CHANGED, _OVERSEERS), Route(Kind.MY_ACCESS_CHANGED, _subject))
_CONFIGURATION = (Route(Kind.CONFIGURATION_CHANGED, _OVERSEERS),)

# Who is told of each catalogued action. Named actions first; then whole families of the
# catalogue, so an action added later to a known family is covered the day it is written.
_NAMED: dict[AuditAction, tuple[Route, ...]] = {
    AuditAction.WITHDRAWAL_REQUESTED: _ASK_APPROVERS,
    # Approvals voided (a new fee cap, a payload that no longer holds): approve again.
    AuditAction.WITHDRAWAL_REQUOTED: _ASK_APPROVERS,
    AuditAction.WITHDRAWAL_SENT_BACK: _ASK_APPROVERS,
    AuditAction.WITHDRAWAL_APPROVAL_ADDED: (Route(Kind.WITHDRAWAL_APPROVED, _requester),),
    AuditAction.WITHDRAWAL_APPROVED: (Route(Kind.WITHDRAWAL_APPROVED, _requester),),
    AuditAction.WITHDRAWAL_REJECTED: (Route(Kind.WITHDRAWAL_REJECTED, _requester),),
    AuditAction.WITHDRAWAL_EXPIRED: (Route(Kind.WITHDRAWAL_REJECTED, _requester),),
    AuditAction.WITHDRAWAL_SUBMITTED: (Route(Kind.WITHDRAWAL_SUBMITTED, _requester),),
    AuditAction.WITHDRAWAL_COMPLETED: (Route(Kind.WITHDRAWAL_COMPLETED, _requester),),
    AuditAction.WITHDRAWAL_FAILED: (Route(Kind.WITHDRAWAL_FAILED, _requester),),
    AuditAction.WITHDRAWAL_OUTCOME_UNKNOWN: (Route(Kind.ATTENTION, _SETTLERS),),
    AuditAction.WITHDRAWAL_ATTENTION_RAISED: (Route(Kind.ATTENTION, _SETTLERS),),
    AuditAction.WITHDRAWAL_DUPLICATE_DETECTED: (
        Route(Kind.DUPLICATE, _roles(APPROVER, WHITELIST_ADMIN, AUDITOR)),
    ),
    AuditAction.WHITELIST_PROPOSED: (Route(Kind.WHITELIST_PROPOSED, _WHITELIST_WATCH),),
    AuditAction.WHITELIST_IMPORTED: (Route(Kind.WHITELIST_PROPOSED, _WHITELIST_WATCH),),
    AuditAction.WHITELIST_APPROVED: (Route(Kind.WHITELIST_COOLING_OFF, _WHITELIST_WATCH),),
    AuditAction.WHITELIST_DRIFT_DETECTED: (Route(Kind.VENUE_DRIFT, _WHITELIST_WATCH),),
    AuditAction.AUDIT_CHAIN_BROKEN: (Route(Kind.CHAIN_BROKEN, _OVERSEERS),),
    AuditAction.PEOPLE_ROLE_GRANTED: _ACCESS,
    AuditAction.PEOPLE_ROLE_REMOVED: _ACCESS,
    AuditAction.PEOPLE_DEVICE_RESET: _ACCESS,
}
_FAMILIES: tuple[tuple[str, tuple[Route, ...]], ...] = (
    ("people.", (Route(Kind.ACCESS_CHANGED, _OVERSEERS),)),
    ("venue.", _CONFIGURATION),
    ("policy.", _CONFIGURATION),
    ("price.", _CONFIGURATION),
    ("whitelist.", _CONFIGURATION),
)
# Deliberately nobody's news: the system's steps between the ones announced, acts whose people
# are on the page when they happen, sign-in and the auditors' own reads. An action neither
# routed nor listed here fails tests/notifications/test_routing.py.
SILENT: frozenset[AuditAction] = frozenset(
    {
        AuditAction.WITHDRAWAL_CANCELLED,
        AuditAction.WITHDRAWAL_RESOLUTION_PROPOSED,
        AuditAction.WITHDRAWAL_RESOLUTION_CONFIRMED,
        AuditAction.WITHDRAWAL_RESOLUTION_DECLINED,
        AuditAction.WITHDRAWAL_DUPLICATE_ACKNOWLEDGED,
        AuditAction.WITHDRAWAL_SUBMITTING,
        AuditAction.WITHDRAWAL_RETRY_SCHEDULED,
        AuditAction.WITHDRAWAL_RETURNED_FOR_RESEND,
        AuditAction.WITHDRAWAL_LATE_RECEIPT,
        AuditAction.WHITELIST_DRIFT_CLEARED,
        AuditAction.LOGIN_SUCCEEDED,
        AuditAction.LOGIN_FAILED,
        AuditAction.AUTH_SIGNED_IN,
        AuditAction.AUTH_SIGNIN_THROTTLED,
        AuditAction.AUTH_RECOVERY_CODE_USED,
        AuditAction.TOTP_REFUSED,
        AuditAction.EXPORT_CREATED,
    }
)
ROUTES: dict[AuditAction, tuple[Route, ...]] = {
    action: _NAMED.get(action)
    or next((routes for family, routes in _FAMILIES if action.value.startswith(family)), ())
    for action in AuditAction
    if action not in SILENT
}


def routes_for(action: str) -> tuple[Route, ...]:
    """An action outside the catalogue is nobody's news: it cannot be filtered on either."""
    return ROUTES.get(action, ())


def event_notify(*, event: AuditEvent) -> list[Notification]:
    """Write the notifications an audit event calls for, in the event's own transaction.
    The person who acted is never told of their own act."""
    notifications = []
    for route in routes_for(event.action):
        people = [u for u in route.audience(event) if u.pk != event.actor_id]
        if not people:
            continue
        message = event_message(event=event, kind=route.kind)
        # The event is written after this, under the chain head's lock (see audit_event_record).
        audit_event_id_reserve(event=event)
        notifications.append(
            notification_create(
                kind=route.kind,
                recipients=people,
                message=message,
                event=event,
                object_type=event.object_type,
                object_id=event.object_id,
            )
        )
    return notifications


# --- the outbox ---------------------------------------------------------------------------------


def notification_create(
    *,
    kind: str,
    recipients: list[Any],
    message: Message,
    event: AuditEvent | None = None,
    object_type: str = "",
    object_id: str = "",
) -> Notification:
    """One notification and its deliveries, per each recipient's channels; the deliveries are
    enqueued once the surrounding transaction commits."""
    now = timezone.now()
    due = now + timedelta(seconds=BACKOFF_BASE_SECONDS)
    # No savepoint: the notification shares the fate of the change it reports, all or nothing.
    with transaction.atomic(savepoint=False):
        notification = Notification.objects.create(
            kind=kind,
            event=event,
            object_type=object_type,
            object_id=object_id,
            title=message.title,
            body=message.body,
            link=message.link,
            created_at=now,
        )
        # A new notification has no recipients yet: one insert, without set()'s read first.
        Notification.recipients.through.objects.bulk_create(
            [
                Notification.recipients.through(notification=notification, user=user)
                for user in recipients
            ]
        )
        channels = selectors.channels_for(users=recipients, kind=kind)
        deliveries = [
            Delivery(notification=notification, channel=Channel.EMAIL, user=u, next_attempt_at=due)
            for u in recipients
            if Channel.EMAIL in channels[u.pk] and u.email
        ]
        mentions = sorted(u.get_username() for u in recipients if Channel.WEBHOOK in channels[u.pk])
        if mentions:
            deliveries += [
                Delivery(
                    notification=notification,
                    channel=Channel.WEBHOOK,
                    endpoint=hook["name"],
                    mentions=mentions,
                    next_attempt_at=due,
                )
                for hook in settings.NOTIFY_WEBHOOKS
            ]
        created = Delivery.objects.bulk_create(deliveries)
        ids = [d.pk for d in created]
        transaction.on_commit(lambda: _enqueue(ids))
    return notification


def _enqueue(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        try:
            tasks.deliver_notification.delay(delivery_id)
        except Exception as exc:  # the broker is down: the rows wait for the sweep
            logger.warning(
                "could not enqueue %d notification deliveries: %s",
                len(delivery_ids),
                type(exc).__name__,
            )
            return


def _backoff(attempts: int) -> timedelta:
    seconds = BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.NOTIFY_BACKOFF_MAX_SECONDS))


def deliveries_due(*, now: datetime | None = None) -> QuerySet[Delivery]:
    now = now or timezone.now()
    return Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)


def deliveries_sweep() -> list[int]:
    """Enqueue every delivery whose time has come: those whose task was lost, and retries."""
    ids = list(deliveries_due().order_by("next_attempt_at", "id").values_list("pk", flat=True))
    _enqueue(ids)
    return ids


@dataclass(frozen=True)
class Outcome:
    ok: bool
    response_code: int | None = None
    error: str = ""


def delivery_attempt(*, delivery_id: int) -> Delivery | None:
    """Try one delivery once, and record how it went.

    Taking it pushes its next try past this one (a lease) in a short transaction of its own,
    so no lock is held across the network and a second task for it, or the sweep, stays away.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("notification", "user")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return delivery
        if delivery.attempts and delivery.next_attempt_at > now:
            return delivery  # another worker holds it, or its retry is not due yet
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + _backoff(delivery.attempts)
        delivery.save(update_fields=["attempts", "last_attempt_at", "next_attempt_at"])
    outcome = _send(delivery)
    if outcome.ok:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = timezone.now()
    elif delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
    delivery.response_code = outcome.response_code
    delivery.last_error = outcome.error[:300]
    delivery.save(update_fields=["status", "sent_at", "response_code", "last_error"])
    if not outcome.ok:
        logger.warning(
            "notification delivery %s failed (attempt %s): %s",
            delivery.pk,
            delivery.attempts,
            delivery.last_error,
        )
    return delivery


def _send(delivery: Delivery) -> Outcome:
    if delivery.channel == Channel.EMAIL:
        return _send_email(delivery)
    return _send_webhook(delivery)


def _send_email(delivery: Delivery) -> Outcome:
    notification = delivery.notification
    try:
        EmailMessage(
            subject=f"[Countersign] {notification.title}",
            body=notification.body,
            to=[delivery.user.email],
        ).send()
    except Exception as exc:  # SMTP refused, timed out, unreachable: try again later
        return Outcome(ok=False, error=f"{type(exc).__name__}")
    return Outcome(ok=True)


def webhook_payload(delivery: Delivery) -> bytes:
    """Slack-compatible: ``text`` is what a chat shows; the rest is for other receivers."""
    notification = delivery.notification
    mentions = ", ".join(delivery.mentions)
    payload = {
        "text": f"{notification.title}\n<{notification.link}|Open in Countersign>"
        + (f"\nFor: {mentions}" if mentions else ""),
        "kind": notification.kind,
        "title": notification.title,
        "link": notification.link,
        "mentions": delivery.mentions,
        "created_at": notification.created_at.isoformat(),
        "delivery": delivery.pk,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``timestamp.body``: a receiver refuses old timestamps (replays) and
    any body that was changed on the way."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def _send_webhook(delivery: Delivery) -> Outcome:
    hook = next((h for h in settings.NOTIFY_WEBHOOKS if h["name"] == delivery.endpoint), None)
    if hook is None:
        return Outcome(ok=False, error="endpoint no longer configured")
    body = webhook_payload(delivery)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Countersign-Timestamp": timestamp,
        "X-Countersign-Signature": webhook_signature(
            secret=hook["secret"], timestamp=timestamp, body=body
        ),
        "X-Countersign-Delivery": str(delivery.pk),
    }
    try:
        response = httpx.post(
            hook["url"],
            content=body,
            headers=headers,
            timeout=settings.NOTIFY_WEBHOOK_TIMEOUT,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        # The exception's text may quote the URL, which for chat webhooks is itself a secret.
        return Outcome(ok=False, error=type(exc).__name__)
    if 200 <= response.status_code < 300:
        return Outcome(ok=True, response_code=response.status_code)
    return Outcome(
        ok=False, response_code=response.status_code, error=f"HTTP {response.status_code}"
    )


# --- reminders ----------------------------------------------------------------------------------


def unsettled_remind(*, now: datetime | None = None) -> list[Notification]:
    """Announce again every withdrawal still unsettled (unknown outcome, submission past its
    lease, duplicate not taken in hand) whose last announcement is older than the interval."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.NOTIFY_REMIND_SECONDS)
    reminders = []
    for withdrawal in selectors.unsettled_withdrawals().order_by("pk"):
        last = (
            Notification.objects.filter(
                object_type="withdrawalrequest",
                object_id=str(withdrawal.pk),
                kind__in=[Kind.ATTENTION, Kind.DUPLICATE],
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if last is not None and last > cutoff:
            continue
        duplicate = withdrawal.duplicates.filter(acknowledged_at__isnull=True).exists()
        roles = (APPROVER, WHITELIST_ADMIN, AUDITOR) if duplicate else (APPROVER, WHITELIST_ADMIN)
        people = list(selectors.users_with_roles(*roles).exclude(pk=withdrawal.requested_by_id))
        if not people:
            continue
        reminders.append(
            notification_create(
                kind=Kind.DUPLICATE if duplicate else Kind.ATTENTION,
                recipients=people,
                message=reminder_message(withdrawal=withdrawal, duplicate=duplicate),
                object_type="withdrawalrequest",
                object_id=str(withdrawal.pk),
            )
        )
    return reminders


# --- preferences --------------------------------------------------------------------------------


def preferences_save(*, user: Any, choices: Mapping[str, Iterable[str]]) -> list[selectors.Choice]:
    """Store this person's channels per kind (kind -> chosen channels; a kind left out has
    none). Security kinds keep email whatever is asked."""
    with transaction.atomic():
        for kind in Kind:
            chosen = set(choices.get(kind.value, ()))
            Preference.objects.update_or_create(
                user=user,
                kind=kind.value,
                defaults={
                    "email": kind in selectors.SECURITY_KINDS or Channel.EMAIL in chosen,
                    "webhook": Channel.WEBHOOK in chosen,
                },
            )
    return selectors.preferences_for(user=user)
