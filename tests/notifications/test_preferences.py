"""Each person picks channels per kind on the settings page; security kinds cannot be turned
off, whatever the form says.

Personas: alice requests, bob approves and edits his settings.
"""

from __future__ import annotations

import pytest

from audit.services import audit_event_record
from notifications.models import Channel, Delivery, Kind
from notifications.selectors import SECURITY_KINDS, preferences_for
from tests.factories import WithdrawalFactory

pytestmark = pytest.mark.django_db

URL = "/notifications/settings/"


def choice(user, kind):
    return next(c for c in preferences_for(user=user) if c.kind == kind)


def test_the_page_lists_every_kind_with_security_ones_locked_on(bob_client):
    response = bob_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    for kind in Kind:
        assert f'name="{kind.value}"' in html
    assert html.count("disabled") == len(SECURITY_KINDS)


def test_bob_turns_approval_email_off_and_is_no_longer_emailed(
    bob_client, bob, alice, address, django_capture_on_commit_callbacks
):
    kept = {k.value: "email" for k in Kind if k != Kind.APPROVAL_NEEDED}
    response = bob_client.post(URL, kept)
    assert response.status_code == 302
    assert choice(bob, Kind.APPROVAL_NEEDED).email is False
    assert choice(bob, Kind.WITHDRAWAL_FAILED).email is True

    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    audit_event_record(action="withdrawal.requested", actor=alice, target=withdrawal)
    assert not Delivery.objects.filter(user=bob, channel=Channel.EMAIL).exists()


def test_security_kinds_stay_on_when_the_form_asks_for_nothing(bob_client, bob, uma):
    assert bob_client.post(URL, {}).status_code == 302
    for kind in SECURITY_KINDS:
        assert choice(bob, kind).email is True
    assert choice(bob, Kind.APPROVAL_NEEDED).email is False

    audit_event_record(action="people.device_reset", actor=uma, target=bob)
    assert Delivery.objects.filter(
        user=bob, channel=Channel.EMAIL, notification__kind=Kind.MY_ACCESS_CHANGED
    ).exists()


def test_unknown_kinds_and_channels_are_ignored(bob_client, bob):
    response = bob_client.post(URL, {"approval_needed": ["email", "sms"], "no_such_kind": "email"})
    assert response.status_code == 302
    assert choice(bob, Kind.APPROVAL_NEEDED).email is True
    assert choice(bob, Kind.APPROVAL_NEEDED).webhook is False


def test_the_page_needs_a_signed_in_person(client):
    assert client.get(URL).status_code == 302
