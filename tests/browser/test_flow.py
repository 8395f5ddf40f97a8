"""The whole four-eyes flow, by two people in real Chromium.

Alice requests a withdrawal on the Kraken spot sandbox and sees the venue's fee preview while she
types; Bob approves it from his queue with a fresh quote and a TOTP code; the page follows the
withdrawal to ``completed`` through htmx polling, without a reload.

Tasks run eagerly on commit inside the live server. The sandbox settles one second after the
submission, so the page shows ``submitted`` first; the test then plays the part of Celery beat
(the periodic status refresh) and watches the page pick up ``completed`` on its own.
"""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django_otp.oath import TOTP, totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from tests.browser.conftest import SERVER_LOCK
from venues.models import Venue
from whitelist.models import WhitelistedAddress
from withdrawals import tasks
from withdrawals.models import State, WithdrawalRequest

PASSWORD = "countersign-demo"
KRAKEN = "Kraken spot (sandbox)"
TIMEOUT_MS = 15_000


def current_code(username: str) -> str:
    """A code the user's authenticator would show, and that the server has not seen yet.

    A code is accepted once (replay is refused) and the device tolerates one step of drift, so
    a second code within the same 30 seconds is taken from the next step, as a person would
    wait for the next code.
    """
    with SERVER_LOCK:
        device = TOTPDevice.objects.get(user__username=username, name="demo")
    now = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).t()
    step = max(now, device.last_t + 1)
    code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift + step - now)
    return f"{code:0{device.digits}d}"


def sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Authenticator code")).to_be_visible()
    page.fill("#id_code", current_code(username))
    page.get_by_role("button", name="Verify").click()
    expect(page.locator(".who .user")).to_have_text(username)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_request_approve_submit_complete(live_server, browser, screenshots, settings):
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 1.0
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    venue = Venue.objects.get(name=KRAKEN)
    address = WhitelistedAddress.objects.filter(venue=venue, asset="ETH").order_by("pk").first()
    assert address is not None, "seed_demo whitelists an ETH address on the Kraken sandbox"
    base = live_server.url

    # Alice: password, then TOTP; then the new-withdrawal form with the live fee preview.
    alice_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    alice = alice_ctx.new_page()
    alice.set_default_timeout(TIMEOUT_MS)
    sign_in(alice, base, "alice")
    alice.screenshot(path=screenshots / "01-alice-dashboard.png", full_page=True)

    alice.get_by_role("link", name="New withdrawal").first.click()
    expect(alice.get_by_role("heading", name="New withdrawal")).to_be_visible()
    alice.select_option("#id_venue", value=str(venue.pk))
    # The address list is swapped in by htmx for the chosen venue.
    expect(alice.locator(f"#id_address option[value='{address.pk}']")).to_have_count(1)
    alice.select_option("#id_address", value=str(address.pk))
    alice.locator("#id_amount").press_sequentially("0.5", delay=120)
    preview = alice.locator("#preview")
    expect(preview.locator("dl.quote")).to_be_visible()
    expect(preview).to_contain_text("Venue fee")
    expect(preview).to_contain_text("Received")
    expect(preview).to_contain_text("Venue limit")
    alice.screenshot(path=screenshots / "02-alice-fee-preview.png", full_page=True)

    alice.get_by_role("button", name="Request withdrawal").click()
    expect(alice.locator("#state")).to_have_text("Pending approval")
    with SERVER_LOCK:
        withdrawal = WithdrawalRequest.objects.get(requested_by__username="alice")
    assert withdrawal.state == State.PENDING_APPROVAL
    assert withdrawal.venue_id == venue.pk
    assert str(withdrawal.amount.normalize()) == "0.5"
    # Nobody approves their own request: Alice gets no approve panel.
    expect(alice.locator("#approve-panel")).to_have_count(0)
    expect(alice.get_by_role("button", name="Confirm & submit")).to_have_count(0)
    alice.screenshot(path=screenshots / "03-alice-pending.png", full_page=True)

    # Bob, in his own browser context: his queue, the fresh quote, his TOTP code.
    bob_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    bob = bob_ctx.new_page()
    bob.set_default_timeout(TIMEOUT_MS)
    sign_in(bob, base, "bob")
    queue = bob.locator("section", has=bob.get_by_role("heading", name="Waiting for my approval"))
    expect(queue).to_contain_text(KRAKEN)
    bob.screenshot(path=screenshots / "04-bob-queue.png", full_page=True)
    queue.get_by_role("link", name=f"#{withdrawal.pk}").click()

    panel = bob.locator("#approve-panel")
    expect(panel.locator("#quote-fee")).to_be_visible()
    expect(panel).to_contain_text("Valid until")
    bob.screenshot(path=screenshots / "05-bob-fresh-quote.png", full_page=True)
    panel.locator("#id_code").fill(current_code("bob"))
    panel.get_by_role("button", name="Confirm & submit").click()

    # Submitted with the venue's reference...
    state = bob.locator("#state")
    expect(state).to_have_text("Submitted")
    expect(bob.locator("#venue-ref")).not_to_be_empty()
    with SERVER_LOCK:
        withdrawal.refresh_from_db()
        assert withdrawal.state == State.SUBMITTED
        assert withdrawal.approvals.filter(approver__username="bob").exists()
    bob.evaluate("window.__countersignNoReload = true")
    bob.screenshot(path=screenshots / "06-bob-submitted.png", full_page=True)

    # ...then Celery beat's periodic refresh (played here) learns the venue settled it,
    # and the open page shows it by polling, without a reload.
    deadline = time.monotonic() + 10
    while withdrawal.state == State.SUBMITTED and time.monotonic() < deadline:
        time.sleep(0.5)
        with SERVER_LOCK:
            tasks.refresh_open_withdrawals()
            withdrawal.refresh_from_db()
    assert withdrawal.state == State.COMPLETED
    expect(state).to_have_text("Completed")
    assert bob.evaluate("window.__countersignNoReload === true"), "the page was reloaded"
    bob.screenshot(path=screenshots / "07-bob-completed.png", full_page=True)

    alice.reload()
    expect(alice.locator("#state")).to_have_text("Completed")
    alice_ctx.close()
    bob_ctx.close()
