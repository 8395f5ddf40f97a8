"""The top bar's count of what waits for me: acts only I can take now, never my own requests
or proposals.

Personas: alice requests; bob approves; rita requests and approves; carol and erin are
whitelist admins; uma and ulf administer users; dave audits.
"""

from __future__ import annotations

import pytest

from accounts.services import access_change_propose
from notifications.selectors import waiting_for
from tests.factories import UserFactory, WhitelistedAddressFactory, WithdrawalFactory
from withdrawals.models import State

pytestmark = pytest.mark.django_db

URL = "/notifications/waiting/"


def test_an_approver_waits_on_others_requests_never_on_his_own(alice, bob, rita, address):
    WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    WithdrawalFactory(requested_by=rita, whitelisted_address=address)
    assert waiting_for(user=bob).approvals == 2
    assert waiting_for(user=rita).approvals == 1
    assert waiting_for(user=alice).total == 0


def test_a_whitelist_admin_waits_on_the_other_admins_proposals(carol, erin, venue):
    WhitelistedAddressFactory(venue=venue, proposed_by=carol, approved_by=None, state="proposed")
    assert waiting_for(user=erin).whitelist == 1
    assert waiting_for(user=carol).whitelist == 0


def test_a_user_admin_waits_on_changes_neither_his_nor_about_him(uma, bob):
    ulf = UserFactory(username="ulf", roles=["user_admin"])
    access_change_propose(admin=ulf, subject_id=bob.pk, kind="grant", role="auditor")
    access_change_propose(admin=ulf, subject_id=uma.pk, kind="grant", role="auditor")
    assert waiting_for(user=uma).access_changes == 1
    assert waiting_for(user=ulf).access_changes == 0


def test_unsettled_withdrawals_wait_on_those_who_may_settle_them(alice, bob, carol, dave, address):
    WithdrawalFactory(requested_by=alice, whitelisted_address=address, state=State.OUTCOME_UNKNOWN)
    assert waiting_for(user=bob).attention == 1
    assert waiting_for(user=carol).attention == 1
    assert waiting_for(user=dave).total == 0


def test_the_badge_shows_the_count_and_polls_as_a_poll(bob_client, alice, address):
    WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    response = bob_client.get(URL, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "1 waiting for you" in html
    assert "/notifications/waiting/?poll=1" in html
    assert "every 45s" in html


def test_every_page_carries_the_badge_which_loads_itself(bob_client):
    html = bob_client.get("/").content.decode()
    assert 'id="waiting-badge"' in html and 'hx-trigger="load"' in html


def test_nothing_waits_for_someone_with_no_role(mallory_client):
    assert "Nothing waits for you" in mallory_client.get(URL).content.decode()
