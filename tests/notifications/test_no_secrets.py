"""Messages name what happened and link to its page; they never carry a TOTP code or step,
a recovery code, a credential or anything else from an event's data.

Personas: alice requests, bob approves with TOTP, carol and erin change a venue's keys.
"""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import transaction

from accounts.services import recovery_codes_regenerate
from audit.services import audit_event_record
from notifications.messages import event_message
from notifications.models import Kind, Notification
from notifications.services import ROUTES
from tests.factories import UserFactory, WithdrawalFactory, good_amount
from venues.services import venue_change_approve, venue_change_propose
from withdrawals import services as withdrawal_services

pytestmark = pytest.mark.django_db

SECRETS = {
    "api_key": "KEY-must-not-leak",
    "api_secret": "SECRET-must-not-leak",
    "passphrase": "PASSPHRASE-must-not-leak",
    "totp_step": 987654321,
    "code": "314159",
    "recovery_codes": ["RECOVERY-must-not-leak"],
}


def leaked(text: str) -> list[str]:
    values = [str(v) for v in SECRETS.values() if not isinstance(v, list)]
    values += SECRETS["recovery_codes"]
    return [v for v in values if v in text]


def every_action() -> list[str]:
    return [*ROUTES]


@pytest.mark.parametrize("action", every_action())
def test_every_kind_renders_without_the_events_data(action, alice, address, bob):
    target = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    with transaction.atomic():
        event = audit_event_record(
            action=action, actor=bob, target=target, message="Plain words", data=SECRETS
        )
    for kind in Kind:
        message = event_message(event=event, kind=kind)
        assert leaked(message.title + message.body + message.link) == []
        assert message.link.startswith("http://")


def test_a_totp_approval_leaves_its_code_out_of_every_message(
    alice, bob, address, code_now, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        withdrawal = withdrawal_services.withdrawal_create(
            requester=alice,
            venue_id=address.venue_id,
            address_id=address.pk,
            amount=good_amount(address.venue),
        )
        quote = withdrawal_services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
        code = code_now(bob)
        withdrawal_services.withdrawal_approve(
            withdrawal_id=withdrawal.pk, approver=bob, code=code, quote_id=quote.pk
        )
    assert Notification.objects.filter(kind=Kind.WITHDRAWAL_APPROVED).exists()
    for n in Notification.objects.all():
        assert code not in n.title + n.body
    assert mail.outbox and all(code not in m.body + m.subject for m in mail.outbox)


def test_new_venue_keys_and_recovery_codes_stay_out_of_messages(
    carol, dave, bob, venue, fresh_code, django_capture_on_commit_callbacks
):
    erin = UserFactory(username="erin", roles=["whitelist_admin"])
    with django_capture_on_commit_callbacks(execute=True):
        change = venue_change_propose(
            actor=carol,
            venue_id=venue.pk,
            api_key=SECRETS["api_key"],
            api_secret=SECRETS["api_secret"],
            passphrase=SECRETS["passphrase"],
        )
        venue_change_approve(change_id=change.pk, approver=erin, code=fresh_code(erin))
        codes = recovery_codes_regenerate(user=bob, code=fresh_code(bob))
    assert Notification.objects.filter(kind=Kind.CONFIGURATION_CHANGED).count() >= 2
    texts = [n.title + n.body for n in Notification.objects.all()]
    texts += [m.subject + m.body for m in mail.outbox]
    assert mail.outbox
    for text in texts:
        assert leaked(text) == []
        assert not any(c in text for c in codes)
