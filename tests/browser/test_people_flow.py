"""A new approver through the people page, in real Chromium.

Frank (user admin) invites Nina and proposes the approver role for her; Grace, the second user
admin, approves the grant with her TOTP code; Nina opens her single-use enrolment link, chooses
a password, scans the code (the test reads the otpauth:// key as a phone would) and confirms,
keeps her recovery codes, and approves Alice's withdrawal with a fresh code.
"""

from __future__ import annotations

from base64 import b32decode
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_otp.oath import TOTP, totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from accounts.models import AccessChange
from tests.browser.conftest import SERVER_LOCK
from tests.browser.test_flow import KRAKEN, TIMEOUT_MS, sign_in
from venues.models import Venue
from whitelist.models import WhitelistedAddress
from withdrawals.models import State
from withdrawals.services import withdrawal_create

NINA_PASSWORD = "nina-chooses-a-long-passphrase"


def phone_code(secret_hex: str, last_t: int = -1) -> str:
    """What an authenticator holding ``secret_hex`` shows, from a step the server has not used
    (the device allows one step of drift, as a person waits for the next code)."""
    key = bytes.fromhex(secret_hex)
    now = TOTP(key).t()
    step = max(now, last_t + 1)
    return f"{totp(key, drift=step - now):06d}"


def person(browser, base: str, username: str) -> tuple[object, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, base, username)
    return context, page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_invite_grant_enrol_and_approve(live_server, browser, screenshots, settings):
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 1.0
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    base = live_server.url

    # Frank invites Nina: the link is shown once, in the invite panel.
    frank_ctx, frank = person(browser, base, "frank")
    frank.get_by_role("link", name="People").first.click()
    expect(frank.get_by_role("heading", name="People and roles")).to_be_visible()
    frank.fill("#id_username", "nina")
    frank.fill("#id_email", "nina@example.com")
    frank.get_by_role("button", name="Invite").click()
    link = frank.locator("#enrolment-url")
    expect(link).to_be_visible()
    enrolment_url = link.inner_text().strip()
    frank.screenshot(path=screenshots / "people-01-frank-invites.png", full_page=True)

    # ...and proposes the approver role for her. Nothing changes yet.
    frank.reload()
    row = frank.locator("#person-nina")
    row.locator("select[name=kind]").select_option("grant")
    row.locator("select[name=role]").select_option("approver")
    row.get_by_role("textbox", name="Reason for nina").fill("Joins the payments desk")
    row.get_by_role("button", name="Propose").click()
    expect(frank.locator(".messages")).to_contain_text("A second user admin must approve it")
    expect(frank.locator("#changes")).to_contain_text("You proposed it")
    with SERVER_LOCK:
        nina = get_user_model().objects.get(username="nina")
        change = AccessChange.objects.get(subject=nina)
        assert not nina.groups.filter(name="approver").exists()

    # Grace approves with her TOTP code, through the htmx panel.
    grace_ctx, grace = person(browser, base, "grace")
    grace.get_by_role("link", name="People").first.click()
    panel = grace.locator(f"#change-{change.pk}")
    with SERVER_LOCK:
        device = TOTPDevice.objects.get(user__username="grace")
        grace_code = phone_code(device.key, device.last_t)
    panel.locator(f"#id_c{change.pk}-code").fill(grace_code)
    grace.screenshot(path=screenshots / "people-02-grace-approves.png", full_page=True)
    panel.get_by_role("button", name="Approve").click()
    expect(grace.locator(".messages")).to_contain_text("the change is in force")
    with SERVER_LOCK:
        assert nina.groups.filter(name="approver").exists()

    # Alice asks for a withdrawal (through the service, as her page is covered elsewhere).
    with SERVER_LOCK:
        venue = Venue.objects.get(name=KRAKEN)
        address = WhitelistedAddress.objects.filter(venue=venue, asset="ETH").order_by("pk")[0]
        withdrawal = withdrawal_create(
            requester=get_user_model().objects.get(username="alice"),
            venue_id=venue.pk,
            address_id=address.pk,
            amount=Decimal("0.5"),
        )

    # Nina opens her link in her own browser: password, QR code, first code.
    nina_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = nina_ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(enrolment_url)
    expect(page.get_by_role("heading", name="Set up your authenticator, nina")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    otpauth = page.locator("details code").text_content()
    secret_b32 = parse_qs(urlparse(otpauth).query)["secret"][0]
    secret = b32decode(secret_b32 + "=" * (-len(secret_b32) % 8)).hex()
    page.fill("#id_password", NINA_PASSWORD)
    page.fill("#id_password_again", NINA_PASSWORD)
    page.fill("#id_code", phone_code(secret))
    page.screenshot(path=screenshots / "people-03-nina-enrols.png", full_page=True)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    expect(page.locator("#codes li")).to_have_count(10)
    page.screenshot(path=screenshots / "people-04-nina-recovery-codes.png", full_page=True)

    # The link worked once.
    stranger = browser.new_context().new_page()
    stranger.goto(enrolment_url)
    expect(stranger.get_by_role("heading", name="This link does not work")).to_be_visible()

    # Nina, signed in, approves Alice's withdrawal with her next code.
    page.get_by_role("link", name="Continue").click()
    queue = page.locator("section", has=page.get_by_role("heading", name="Waiting for my approval"))
    queue.get_by_role("link", name=f"#{withdrawal.pk}").click()
    approve = page.locator("#approve-panel")
    expect(approve.locator("#quote-fee")).to_be_visible()
    with SERVER_LOCK:
        device = TOTPDevice.objects.get(user=nina, confirmed=True)
        assert device.key == secret
        code = phone_code(device.key, device.last_t)
    approve.locator("#id_code").fill(code)
    approve.get_by_role("button", name="Confirm & submit").click()
    expect(page.locator("#state")).to_have_text("Submitted")
    page.screenshot(path=screenshots / "people-05-nina-approved.png", full_page=True)
    with SERVER_LOCK:
        withdrawal.refresh_from_db()
        assert withdrawal.state == State.SUBMITTED
        assert withdrawal.approvals.filter(approver=nina).exists()
    for context in (frank_ctx, grace_ctx, nina_ctx):
        context.close()
