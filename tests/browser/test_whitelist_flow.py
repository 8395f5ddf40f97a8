"""A new address through the whole four-eyes path in real Chromium, then paid.

Carol proposes an ETH address saved at the Kraken spot sandbox under a new key; Erin, the
second whitelist admin, approves it from her queue (no cooling-off, as in the demo); it is
active at once; Alice requests a withdrawal to it and Bob approves it through to the venue.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.browser.test_flow import KRAKEN, TIMEOUT_MS, current_code, sign_in
from tests.whitelist.conftest import NEW_ETH, kraken_save_key
from venues.models import Venue
from whitelist.models import AddressState, WhitelistedAddress
from withdrawals.models import State, WithdrawalRequest


def person(browser, base, username):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, base, username)
    return context, page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_propose_approve_active_withdraw(live_server, browser, screenshots, settings):
    settings.WHITELIST_COOLING_OFF_SECONDS = 0
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 1.0
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    venue = Venue.objects.get(name=KRAKEN)
    kraken_save_key(venue, key="eth-payroll", address=NEW_ETH)
    base = live_server.url

    # Carol proposes, with her TOTP code, through the htmx panel.
    carol_ctx, carol = person(browser, base, "carol")
    carol.get_by_role("link", name="Whitelist").first.click()
    carol.get_by_role("link", name="Propose address").click()
    carol.select_option("#id_venue", value=str(venue.pk))
    carol.select_option("#id_asset", value="ETH")
    carol.fill("#id_network", "Ethereum")
    carol.fill("#id_address", NEW_ETH)
    carol.fill("#id_label", "ETH payroll")
    carol.fill("#id_venue_key", "eth-payroll")
    carol.fill("#id_code", current_code("carol"))
    carol.screenshot(path=screenshots / "wl-01-carol-proposes.png", full_page=True)
    carol.get_by_role("button", name="Propose").click()
    expect(carol.locator("#state")).to_have_text("Proposed")
    address = WhitelistedAddress.objects.get(address=NEW_ETH)
    assert address.proposed_by.username == "carol"
    # Her own proposal offers her no approve panel.
    expect(carol.locator("#approve-panel")).to_have_count(0)

    # Alice cannot pick it yet: only active addresses are offered.
    alice_ctx, alice = person(browser, base, "alice")
    alice.goto(f"{base}/withdrawals/new/")
    alice.select_option("#id_venue", value=str(venue.pk))
    expect(alice.locator("#id_address option")).not_to_have_count(0)
    expect(alice.locator(f"#id_address option[value='{address.pk}']")).to_have_count(0)

    # Erin approves it from her queue.
    erin_ctx, erin = person(browser, base, "erin")
    erin.get_by_role("link", name="Whitelist").first.click()
    queue = erin.locator("#pending")
    expect(queue).to_contain_text("ETH payroll")
    queue.get_by_role("link", name=f"Review #{address.pk}").click()
    erin.locator("#approve-code").fill(current_code("erin"))
    erin.screenshot(path=screenshots / "wl-02-erin-approves.png", full_page=True)
    erin.get_by_role("button", name="Approve address").click()
    expect(erin.locator("#state")).to_have_text("Active")
    expect(erin.locator("#history")).to_contain_text("Address approved")
    address.refresh_from_db()
    assert address.state == AddressState.ACTIVE
    assert address.approved_by.username == "erin"

    # Alice requests a withdrawal to it now.
    alice.goto(f"{base}/withdrawals/new/")
    alice.select_option("#id_venue", value=str(venue.pk))
    expect(alice.locator(f"#id_address option[value='{address.pk}']")).to_have_count(1)
    alice.select_option("#id_address", value=str(address.pk))
    alice.locator("#id_amount").press_sequentially("0.05", delay=80)
    expect(alice.locator("#preview dl.quote")).to_be_visible()
    alice.get_by_role("button", name="Request withdrawal").click()
    expect(alice.locator("#state")).to_have_text("Pending approval")
    withdrawal = WithdrawalRequest.objects.get(whitelisted_address=address)

    # Bob, who had no part in whitelisting it, approves it through to the venue.
    bob_ctx, bob = person(browser, base, "bob")
    bob.goto(f"{base}/withdrawals/{withdrawal.pk}/")
    panel = bob.locator("#approve-panel")
    expect(panel.locator("#quote-fee")).to_be_visible()
    panel.locator("#id_code").fill(current_code("bob"))
    panel.get_by_role("button", name="Confirm & submit").click()
    expect(bob.locator("#state")).to_have_text("Submitted")
    bob.screenshot(path=screenshots / "wl-03-bob-submitted.png", full_page=True)
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.SUBMITTED
    assert withdrawal.address == NEW_ETH
    for ctx in (carol_ctx, alice_ctx, erin_ctx, bob_ctx):
        ctx.close()
