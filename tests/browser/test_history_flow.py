"""The withdrawals history in real Chromium: the filters swap the rows, the count and the export
links together, so the export of a filtered page holds exactly its rows; an impossible date
range says so inside the swapped part and shows no rows.

Dave, the auditor, filters to KuCoin and completed among withdrawals on every demo venue.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from tests.browser.test_flow import TIMEOUT_MS, sign_in
from tests.factories import WithdrawalFactory
from venues.models import Venue
from whitelist.models import WhitelistedAddress
from withdrawals.models import State

KUCOIN = "KuCoin (sandbox)"
AMOUNT = Decimal("0.5")


def _withdrawals() -> set[int]:
    """Two completed on KuCoin (the selection), and others that differ in venue or state."""
    alice = get_user_model().objects.get(username="alice")
    kucoin = Venue.objects.get(name=KUCOIN)
    on_kucoin = WhitelistedAddress.objects.filter(venue=kucoin).first()
    elsewhere = WhitelistedAddress.objects.exclude(venue=kucoin).first()
    chosen = {
        WithdrawalFactory(
            whitelisted_address=on_kucoin, requested_by=alice, amount=AMOUNT, state=State.COMPLETED
        ).pk
        for _ in range(2)
    }
    WithdrawalFactory(whitelisted_address=on_kucoin, requested_by=alice, amount=AMOUNT)
    WithdrawalFactory(
        whitelisted_address=on_kucoin, requested_by=alice, amount=AMOUNT, state=State.FAILED
    )
    for _ in range(3):
        WithdrawalFactory(
            whitelisted_address=elsewhere, requested_by=alice, amount=AMOUNT, state=State.COMPLETED
        )
    return chosen


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_filtered_export_holds_the_filtered_rows_and_a_bad_range_says_so(
    live_server, browser, screenshots
):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    chosen = _withdrawals()
    kucoin = Venue.objects.get(name=KUCOIN)
    base = live_server.url

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, base, "dave")
    page.goto(f"{base}/withdrawals/")
    expect(page.locator("#count")).to_have_text("7 withdrawals shown.")

    # Each change swaps the history part and pushes the filters into the address bar.
    page.get_by_label("Venue").select_option(value=str(kucoin.pk))
    expect(page.locator("#count")).to_have_text("4 withdrawals shown.")
    page.get_by_label("State").select_option(value=State.COMPLETED)
    expect(page.locator("#count")).to_have_text("2 withdrawals shown.")
    expect(page).to_have_url(f"{base}/withdrawals/?venue={kucoin.pk}&state=completed")
    page.screenshot(path=screenshots / "history-01-filtered.png", full_page=True)

    shown = {int(text.lstrip("#")) for text in page.locator("#rows a").all_inner_texts()}
    assert shown == chosen
    href = page.get_by_role("link", name="CSV").get_attribute("href")
    exported = page.request.get(f"{base}{href}")  # the page's own session
    assert exported.ok
    rows = list(csv.DictReader(io.StringIO(exported.text())))
    assert {int(row["id"]) for row in rows} == chosen
    assert {row["venue"] for row in rows} == {KUCOIN}

    # A range that ends before it starts: the message, no rows and no export, in the swap.
    page.get_by_label("From (YYYY-MM-DD)").fill("2026-03-02")
    page.get_by_label("To (YYYY-MM-DD)").fill("2026-03-01")
    page.get_by_label("To (YYYY-MM-DD)").press("Enter")
    alert = page.locator("#history [role=alert]")
    expect(alert).to_contain_text("The start date is after the end date.")
    expect(page.locator("#rows")).to_have_count(0)
    expect(page.get_by_role("link", name="CSV")).to_have_count(0)
    page.screenshot(path=screenshots / "history-02-bad-range.png", full_page=True)
    context.close()
