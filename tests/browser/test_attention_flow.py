"""Two people settle an unknown outcome on the "Needs attention" page, in real Chromium.

A withdrawal's submission timed out before Kraken took it, and Kraken then refuses every read
of its history (a rotated key): reconciliation cannot conclude, so it goes to people. Bob (an
approver) records "never sent" with his evidence and code; nothing moves. Carol (a whitelist
admin) confirms with her own code; only then is it sent again, once.
"""

from __future__ import annotations

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
from withdrawals import services
from withdrawals.models import State, WithdrawalRequest


def unknown_withdrawal() -> WithdrawalRequest:
    venue = Venue.objects.get(name=KRAKEN)
    address = WhitelistedAddress.objects.filter(venue=venue, asset="ETH").order_by("pk").first()
    users = get_user_model().objects
    alice, bob = users.get(username="alice"), users.get(username="bob")
    withdrawal = services.withdrawal_create(
        requester=alice, venue_id=venue.pk, address_id=address.pk, amount=Decimal("0.5")
    )
    sandbox = sandbox_for("kraken")
    sandbox.inject("timeout_before_accept", path=sandbox.SUBMIT_PATH)
    sandbox.inject("error", path=sandbox.HISTORY_PATH, error="EAPI:Invalid key", times=50)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    services.withdrawal_approve(
        withdrawal_id=withdrawal.pk, approver=bob, code=current_code("bob"), quote_id=quote.pk
    )
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.OUTCOME_UNKNOWN, withdrawal.status_detail
    assert withdrawal.attention_since is not None
    return withdrawal


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_two_people_settle_an_unknown_outcome(live_server, browser, screenshots, settings):
    settings.RECONCILE_ATTENTION_SECONDS = 0
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    with SERVER_LOCK:
        withdrawal = unknown_withdrawal()
        sent_before = sandbox_for("kraken").count_withdrawals()
    base = live_server.url

    bob_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    bob = bob_ctx.new_page()
    bob.set_default_timeout(TIMEOUT_MS)
    sign_in(bob, base, "bob")
    bob.get_by_role("link", name="Needs attention").click()
    item = bob.locator(f"#attention-{withdrawal.pk}")
    expect(item).to_contain_text("EAPI:Invalid key")
    item.get_by_label("Confirmed never sent").check()
    item.get_by_label("Evidence you checked").fill(
        "Kraken's withdrawal history for ETH shows nothing since the request."
    )
    item.get_by_label("Authenticator code").fill(current_code("bob"))
    item.get_by_role("button", name="Record finding").click()
    expect(item).to_contain_text("A second person must confirm it")
    expect(item.get_by_role("button", name="Confirm: confirmed never sent")).to_have_count(0)
    bob.screenshot(path=screenshots / "attention-01-bob-recorded.png", full_page=True)
    with SERVER_LOCK:
        withdrawal.refresh_from_db()
        assert withdrawal.state == State.OUTCOME_UNKNOWN  # one person's word moves nothing
        assert sandbox_for("kraken").count_withdrawals() == sent_before

    carol_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    carol = carol_ctx.new_page()
    carol.set_default_timeout(TIMEOUT_MS)
    sign_in(carol, base, "carol")
    carol.get_by_role("link", name="Needs attention").click()
    item = carol.locator(f"#attention-{withdrawal.pk}")
    expect(item).to_contain_text("bob recorded")
    item.get_by_label("Authenticator code").fill(current_code("carol"))
    item.get_by_role("button", name="Confirm: confirmed never sent").click()
    expect(item).to_contain_text("Confirmed and applied.")
    carol.screenshot(path=screenshots / "attention-02-carol-confirmed.png", full_page=True)

    with SERVER_LOCK:
        withdrawal.refresh_from_db()
        assert withdrawal.state == State.SUBMITTED  # sent again by the next attempt, once
        assert sandbox_for("kraken").count_withdrawals() == sent_before + 1
        assert withdrawal.resolutions.get().decided_by.username == "carol"
    bob_ctx.close()
    carol_ctx.close()
