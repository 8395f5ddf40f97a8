"""A two-approver tier with a treasury lead, by three people in real Chromium.

The demo policy needs two approvers, one a treasury lead, for BTC above 0.5. Alice's request
page says so while she types; Bob, an approver, sees on his panel what the rule needs and the
red flag of a first payment; his approval alone leaves the withdrawal pending; Tina, approver
and treasury lead, gives the second and it goes out.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.browser.conftest import SERVER_LOCK
from tests.browser.test_flow import KRAKEN, TIMEOUT_MS, current_code, sign_in
from venues.models import Venue
from whitelist.models import WhitelistedAddress
from withdrawals.models import Approval, State, WithdrawalRequest

NEEDS = "Needs 2 of 2 approvers, one a treasury lead (rule: BTC above 0.5)"


def approve_as(browser, base: str, username: str, withdrawal_id: int):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, base, username)
    page.goto(f"{base}/withdrawals/{withdrawal_id}/")
    panel = page.locator("#approve-panel")
    expect(panel.locator("#policy-needs")).to_contain_text(NEEDS)
    expect(panel.locator("#quote-fee")).to_be_visible()
    return page, panel


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_two_approvers_one_a_treasury_lead(live_server, browser, screenshots, settings):
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0  # stays submitted: nothing else moves it
    call_command("seed_demo", stdout=io.StringIO())
    venue = Venue.objects.get(name=KRAKEN)
    address = WhitelistedAddress.objects.filter(venue=venue, asset="BTC").order_by("pk").first()
    assert address is not None, "seed_demo whitelists a BTC address on the Kraken sandbox"
    base = live_server.url

    alice_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    alice = alice_ctx.new_page()
    alice.set_default_timeout(TIMEOUT_MS)
    sign_in(alice, base, "alice")
    alice.get_by_role("link", name="New withdrawal").first.click()
    alice.select_option("#id_venue", value=str(venue.pk))
    expect(alice.locator(f"#id_address option[value='{address.pk}']")).to_have_count(1)
    alice.select_option("#id_address", value=str(address.pk))
    alice.locator("#id_amount").press_sequentially("1", delay=120)
    request_info = alice.locator("#policy-request")
    expect(request_info).to_contain_text("Needs 2 approvers, one a treasury lead")
    expect(request_info).to_contain_text("rule: BTC above 0.5")
    expect(alice.locator("#preview")).to_contain_text("About 60000.00 USD")
    alice.screenshot(path=screenshots / "p1-alice-request-tier.png", full_page=True)
    alice.get_by_role("button", name="Request withdrawal").click()
    expect(alice.locator("#state")).to_have_text("Pending approval")
    expect(alice.locator("#expires-at")).to_be_visible()
    with SERVER_LOCK:
        withdrawal = WithdrawalRequest.objects.get(requested_by__username="alice")
    assert (withdrawal.approval_quorum, withdrawal.approval_role) == (2, "treasury_lead")

    bob, panel = approve_as(browser, base, "bob", withdrawal.pk)
    expect(panel.locator("[data-flag='first_payment']")).to_be_visible()
    bob.screenshot(path=screenshots / "p2-bob-panel.png", full_page=True)
    panel.locator("#id_code").fill(current_code("bob"))
    panel.get_by_role("button", name="Confirm & submit").click()
    expect(panel.locator("#policy-needs")).to_contain_text("1 given so far")
    with SERVER_LOCK:
        withdrawal.refresh_from_db()
        assert withdrawal.state == State.PENDING_APPROVAL
        assert "first_payment" in Approval.objects.get(withdrawal=withdrawal).red_flags.split()

    tina, panel = approve_as(browser, base, "tina", withdrawal.pk)
    expect(panel.locator("#policy-needs")).to_contain_text("1 given so far")
    panel.locator("#id_code").fill(current_code("tina"))
    panel.get_by_role("button", name="Confirm & submit").click()
    expect(tina.locator("#state")).to_have_text("Submitted")
    tina.screenshot(path=screenshots / "p3-tina-submitted.png", full_page=True)
    with SERVER_LOCK:
        withdrawal.refresh_from_db()
        assert withdrawal.state == State.SUBMITTED
        assert set(withdrawal.approvals.values_list("approver__username", flat=True)) == {
            "bob",
            "tina",
        }

    # The rules she approved under are on the Policy page, in words.
    tina.get_by_role("link", name="Policy").click()
    expect(tina.locator("#rules")).to_contain_text("BTC above 0.5")
    expect(tina.locator("#rules")).to_contain_text("treasury lead")
    tina.screenshot(path=screenshots / "p4-policy-page.png", full_page=True)
