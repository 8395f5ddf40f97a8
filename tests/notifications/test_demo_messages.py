"""The demo shows each person the email sent to them, and no one else's.

Personas: alice requests; bob and bianca approve and read their mailboxes.
"""

from __future__ import annotations

import pytest

from audit.services import audit_event_record
from tests.factories import WithdrawalFactory

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/demo/messages/"


def test_bob_reads_the_email_sent_to_him_and_alice_does_not(
    alice, bob, address, bob_client, alice_client
):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    audit_event_record(action="withdrawal.requested", actor=alice, target=withdrawal)
    bob_page = bob_client.get(URL).content.decode()
    assert f"Withdrawal #{withdrawal.pk} waits for your approval" in bob_page
    assert f"/withdrawals/{withdrawal.pk}/" in bob_page
    assert "waits for your approval" not in alice_client.get(URL).content.decode()


def test_the_mailbox_needs_a_signed_in_person(client):
    assert client.get(URL).status_code == 302
