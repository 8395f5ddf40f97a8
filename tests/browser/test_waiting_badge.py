"""The top bar's waiting count in real Chromium: it loads itself through htmx, marked as a poll
(so it never keeps an idle session alive), and shows what waits for the signed-in person.

Alice requests a withdrawal; bob, an approver, sees one thing waiting for him; alice sees none
(her own request never waits on her).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from tests.browser.conftest import SERVER_LOCK
from tests.browser.test_flow import KRAKEN, TIMEOUT_MS, sign_in
from venues.models import Venue
from whitelist.models import WhitelistedAddress
from withdrawals import services


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_badge_counts_what_waits_and_polls_as_a_poll(live_server, browser):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    with SERVER_LOCK:
        venue = Venue.objects.get(name=KRAKEN)
        address = WhitelistedAddress.objects.filter(venue=venue, asset="ETH").order_by("pk").first()
        alice = get_user_model().objects.get(username="alice")
        services.withdrawal_create(
            requester=alice, venue_id=venue.pk, address_id=address.pk, amount=Decimal("0.5")
        )

    polls: list[tuple[str, dict[str, str]]] = []
    page = browser.new_context().new_page()
    page.on(
        "request",
        lambda r: polls.append((r.url, r.headers)) if "/notifications/waiting/" in r.url else None,
    )
    sign_in(page, live_server.url, "bob")
    expect(page.locator("#waiting-badge")).to_contain_text("1 waiting for you", timeout=TIMEOUT_MS)
    # The poll flag config.middleware.IdleSessionMiddleware reads: no idle-deadline refresh.
    assert polls and polls[0][0].endswith("/notifications/waiting/?poll=1")
    assert polls[0][1].get("hx-request") == "true"

    other = browser.new_context().new_page()
    sign_in(other, live_server.url, "alice")
    expect(other.locator("#waiting-badge")).to_contain_text(
        "Nothing waits for you", timeout=TIMEOUT_MS
    )
