"""The withdrawal page in real Chromium: an expired quote, and banners after every ending.

Bob approves alice's withdrawals on the Kraken spot sandbox. His quote runs out while he reads
it (quotes here last seconds, not minutes): with JavaScript the countdown takes "Confirm &
submit" away; without it the server refuses before his code is checked, and the same code then
approves against a fresh quote. After the venue refuses, completes, or alice cancels under his
eyes, the page says what is true now and offers nothing stale.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from tests.browser.conftest import SERVER_LOCK
from tests.browser.test_flow import KRAKEN, TIMEOUT_MS, current_code, sign_in
from venues.models import Venue
from venues.sandbox.registry import sandbox_for
from whitelist.models import WhitelistedAddress
from withdrawals import services, tasks
from withdrawals.models import Approval, State, WithdrawalRequest

QUOTE_SECONDS = 10

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def requested(live_server, settings):
    """seed_demo's people and venues, and one request of alice's on the Kraken sandbox."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 1.0
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    venue = Venue.objects.get(name=KRAKEN)
    address = WhitelistedAddress.objects.filter(venue=venue, asset="ETH").order_by("pk").first()
    alice = get_user_model().objects.get(username="alice")

    def request() -> WithdrawalRequest:
        with SERVER_LOCK:
            return services.withdrawal_create(
                requester=alice, venue_id=venue.pk, address_id=address.pk, amount=Decimal("0.5")
            )

    return request


def bob_page(browser, base: str, *, javascript: bool = True):
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=javascript
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, base, "bob")  # plain forms: they work without JavaScript too
    return page


def test_an_expired_quote_offers_a_fresh_one_and_the_code_stays_usable(
    live_server, browser, requested, monkeypatch, screenshots
):
    monkeypatch.setattr(services, "QUOTE_TTL", timedelta(seconds=QUOTE_SECONDS))
    base = live_server.url

    # With JavaScript: the countdown runs, and at zero "Confirm & submit" goes away.
    first = requested()
    bob = bob_page(browser, base)
    bob.goto(f"{base}/withdrawals/{first.pk}/")
    panel = bob.locator("#approve-panel")
    expect(panel.locator("[data-countdown]")).to_be_visible()
    expect(panel).to_contain_text("left")
    bob.screenshot(path=screenshots / "10-countdown.png", full_page=True)
    expect(panel.locator("[data-expired-notice]")).to_be_visible(
        timeout=(QUOTE_SECONDS + 20) * 1000
    )
    expect(panel.get_by_role("button", name="Confirm & submit")).to_have_count(0)
    bob.screenshot(path=screenshots / "11-expired.png", full_page=True)
    panel.get_by_role("button", name="Get a fresh quote").click()
    expect(panel.locator("[data-countdown]")).to_be_visible()
    panel.locator("#id_code").fill(current_code("bob"))
    panel.get_by_role("button", name="Confirm & submit").click()
    expect(bob.locator("#state")).not_to_have_text("Pending approval")
    expect(bob.locator("#approve-panel")).to_have_count(0)

    # Without JavaScript: the server refuses the expired quote before it reads the code.
    second = requested()
    plain = bob_page(browser, base, javascript=False)
    plain.goto(f"{base}/withdrawals/{second.pk}/")
    plain.get_by_role("button", name="Get a fresh quote").click()
    expect(plain.locator("#approve-panel")).to_contain_text("Valid until")
    code = current_code("bob")
    plain.fill("#id_code", code)
    time.sleep(QUOTE_SECONDS + 1)  # bob reads slowly: the quote runs out
    plain.get_by_role("button", name="Confirm & submit").click()
    refused = plain.locator("#approve-panel")
    expect(refused).to_contain_text("your code was not used")
    expect(refused.get_by_role("button", name="Confirm & submit")).to_have_count(0)
    plain.screenshot(path=screenshots / "12-expired-without-js.png", full_page=True)
    with SERVER_LOCK:
        assert not Approval.objects.filter(withdrawal=second).exists()
    refused.get_by_role("button", name="Get a fresh quote").click()
    plain.fill("#id_code", code)  # the very same code
    plain.get_by_role("button", name="Confirm & submit").click()
    expect(plain.locator("#state")).not_to_have_text("Pending approval")
    with SERVER_LOCK:
        assert Approval.objects.filter(withdrawal=second, approver__username="bob").exists()


def test_banners_after_a_refusal_a_completion_and_a_cancel(
    live_server, browser, requested, screenshots
):
    base = live_server.url
    bob = bob_page(browser, base)
    sandbox = sandbox_for("kraken")

    # The venue refuses: a red "Failed" with the reason in words and the venue's code.
    refused = requested()
    sandbox.inject(
        "error", path=sandbox.SUBMIT_PATH, method="POST", error="EFunding:Invalid amount"
    )
    bob.goto(f"{base}/withdrawals/{refused.pk}/")
    bob.locator("#id_code").fill(current_code("bob"))
    bob.get_by_role("button", name="Confirm & submit").click()
    expect(bob.locator("#state")).to_have_text("Failed")
    banner = bob.locator("#state-banner")
    expect(banner).to_contain_text("Kraken refused the amount")
    expect(banner).to_contain_text("Venue code: EFunding:Invalid amount")
    expect(bob.locator("#state-banner")).not_to_contain_text("Submitting")
    bob.screenshot(path=screenshots / "20-failed.png", full_page=True)

    # The venue completes it: the open page follows by polling, no "Submitting…" left behind.
    completed = requested()
    bob.goto(f"{base}/withdrawals/{completed.pk}/")
    bob.locator("#id_code").fill(current_code("bob"))
    bob.get_by_role("button", name="Confirm & submit").click()
    expect(bob.locator("#state")).to_have_text("Submitted")
    deadline = time.monotonic() + 10
    state = State.SUBMITTED
    while state == State.SUBMITTED and time.monotonic() < deadline:
        time.sleep(0.5)
        with SERVER_LOCK:
            tasks.refresh_open_withdrawals()
            state = WithdrawalRequest.objects.get(pk=completed.pk).state
    expect(bob.locator("#state")).to_have_text("Completed")
    expect(bob.locator("#state-banner")).to_contain_text("Completed")
    expect(bob.locator("#state-banner")).not_to_contain_text("Submitting")
    expect(bob.locator("#fee-charged")).to_contain_text("ETH")
    expect(bob.locator("#txid a")).to_have_attribute(
        "href", re.compile(r"^https://etherscan\.io/tx/")
    )
    bob.screenshot(path=screenshots / "21-completed.png", full_page=True)

    # Alice cancels while bob holds a quote: his confirm brings the page back as it is now.
    cancelled = requested()
    bob.goto(f"{base}/withdrawals/{cancelled.pk}/")
    expect(bob.get_by_role("button", name="Confirm & submit")).to_be_visible()
    with SERVER_LOCK:
        services.withdrawal_cancel(withdrawal_id=cancelled.pk, requester=cancelled.requested_by)
    bob.locator("#id_code").fill(current_code("bob"))
    bob.get_by_role("button", name="Confirm & submit").click()
    expect(bob.locator("#state")).to_have_text("Cancelled")
    expect(bob.locator("#state-banner")).to_contain_text("Cancelled")
    expect(bob.get_by_role("button", name="Confirm & submit")).to_have_count(0)
    expect(bob.locator("#approve-panel")).to_have_count(0)
    expect(bob.locator(".messages")).to_contain_text("cancelled, not pending approval")
    bob.screenshot(path=screenshots / "22-cancelled.png", full_page=True)
