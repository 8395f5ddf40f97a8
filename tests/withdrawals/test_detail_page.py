"""The withdrawal page a finance team and its auditors read: the approve panel against an
expired quote, banners that follow the state, venue refusals in words, the fee charged, the
transaction on its explorer, approvals counted.

Personas: alice requests, bob approves.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import WithdrawalFactory
from tests.withdrawals.test_services import approved, create, reload, sandbox
from venues.interface import VenueState, VenueStatus
from venues.refusals import GENERIC, refusal_explain
from withdrawals import services
from withdrawals.models import Approval, State

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def url(name: str, pk: int) -> str:
    return reverse(f"withdrawals:{name}", kwargs={"pk": pk})


def quote_in(panel) -> str:
    return re.search(rb'name="quote" value="(\d+)"', panel.content).group(1).decode()


# --- the approve panel and an expired quote -------------------------------------------------


def test_an_expired_quote_is_refused_before_the_code_is_spent(
    bob_client, bob, alice, address, fresh_code, django_capture_on_commit_callbacks
):
    withdrawal = create(alice, address)
    stale = quote_in(bob_client.post(url("quote", withdrawal.pk), **HX))
    withdrawal.quotes.filter(pk=stale).update(expires_at=timezone.now() - timedelta(seconds=1))
    code = fresh_code(bob)
    refused = bob_client.post(url("approve", withdrawal.pk), {"code": code, "quote": stale}, **HX)
    assert refused.status_code == 200
    assert b"expired" in refused.content and b"your code was not used" in refused.content
    assert b"Get a fresh quote" in refused.content
    assert b"Confirm &amp; submit" not in refused.content
    assert Approval.objects.count() == 0
    fresh = bob_client.post(url("quote", withdrawal.pk), **HX)
    assert b"Confirm &amp; submit" in fresh.content and b"data-expires-in" in fresh.content
    with django_capture_on_commit_callbacks(execute=True):
        done = bob_client.post(
            url("approve", withdrawal.pk), {"code": code, "quote": quote_in(fresh)}, **HX
        )
    assert done.status_code == 204  # the same code, still unspent, approves
    assert reload(withdrawal).state == State.COMPLETED


def test_an_expired_quote_without_javascript_is_refused_on_the_full_page(
    bob_client, bob, alice, address, fresh_code
):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    withdrawal.quotes.filter(pk=quote.pk).update(expires_at=timezone.now())
    response = bob_client.post(
        url("approve", withdrawal.pk), {"code": fresh_code(bob), "quote": quote.pk}
    )
    assert response.status_code == 400 and b"your code was not used" in response.content
    assert b"Confirm &amp; submit" not in response.content and Approval.objects.count() == 0


def test_after_the_requester_cancels_the_approver_gets_the_page_again_without_confirm(
    bob_client, bob, alice, address, fresh_code
):
    withdrawal = create(alice, address)
    quote = quote_in(bob_client.post(url("quote", withdrawal.pk), **HX))
    services.withdrawal_cancel(withdrawal_id=withdrawal.pk, requester=alice)
    response = bob_client.post(
        url("approve", withdrawal.pk), {"code": fresh_code(bob), "quote": quote}, **HX
    )
    assert response.status_code == 204 and response["HX-Redirect"] == url("detail", withdrawal.pk)
    page = bob_client.get(url("detail", withdrawal.pk))
    assert b"Confirm &amp; submit" not in page.content and b"Approve or reject" not in page.content
    assert b"Cancelled" in page.content and b"cancelled, not pending approval" in page.content
    again = bob_client.post(url("quote", withdrawal.pk), **HX)
    assert again.status_code == 204 and Approval.objects.count() == 0


# --- banners follow the state ---------------------------------------------------------------


def test_after_approval_the_banner_follows_the_venue_to_completed(
    bob_client, bob, alice, address, fresh_code
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    page = bob_client.get(url("detail", withdrawal.pk))
    assert b"Approved. Submitting to the venue" in page.content
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.COMPLETED
    live = bob_client.get(url("status", withdrawal.pk), {"poll": "1"}, **HX)
    assert live.status_code == 286
    assert b"Completed" in live.content and b"Submitting" not in live.content
    page = bob_client.get(url("detail", withdrawal.pk))
    assert b"Submitting" not in page.content


def test_a_venue_refusal_reads_in_words_with_the_venue_code_beside_it(
    bob_client, bob, alice, address, fresh_code
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    sandbox().inject(
        "error", path=sandbox().SUBMIT_PATH, method="POST", error="EFunding:Invalid amount"
    )
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.FAILED
    assert withdrawal.venue_error_code == "EFunding:Invalid amount"
    page = bob_client.get(url("detail", withdrawal.pk)).content.decode()
    assert "Kraken refused the amount" in page
    assert "Venue code: <code>EFunding:Invalid amount</code>" in page
    assert "refused: EFunding" not in page
    assert "Submitting" not in page
    attempt = withdrawal.attempts.get()
    assert "EFunding:Invalid amount" in attempt.detail  # the venue's words stay in the evidence


@pytest.mark.parametrize(
    ("kind", "code", "words"),
    [
        ("kraken", "EFunding:Unknown withdraw key", "no saved withdrawal address"),
        ("kraken_embed", "EFunding:Invalid fee token", "fresh quote"),
        ("kucoin", "400100: request parameter illegal", "KuCoin refused a parameter"),
        ("kucoin", "260210", "closed withdrawals on this network"),
        ("nordpay", "Amount is less than minimum withdraw amount for BTC (0.001)", "minimum"),
        ("onekonto", "Insufficient Funds: Requested 1100 BTC but only 999", "not hold enough"),
    ],
)
def test_each_venue_documents_its_refusals_in_words(kind, code, words):
    refusal = refusal_explain(kind=kind, code=code)
    assert words in refusal.message and refusal.code == code


def test_an_undocumented_refusal_gets_the_generic_words_and_keeps_its_code():
    refusal = refusal_explain(kind="kraken", code="EFunding:Something new")
    assert refusal.message == GENERIC and refusal.code == "EFunding:Something new"


# --- facts: fee charged, transaction, approvals, expiry, amounts ----------------------------


def test_the_fee_the_venue_charged_is_recorded_and_shown(bob_client, bob, alice, address):
    withdrawal = WithdrawalFactory(
        requested_by=alice,
        whitelisted_address=address,
        state=State.SUBMITTED,
        venue_reference="REF-1",
    )
    with services.transaction.atomic():
        services._apply_venue_status(
            withdrawal,
            VenueStatus(
                reference="REF-1",
                state=VenueState.COMPLETED,
                raw_status="Success",
                txid="ab12",
                fee=Decimal("0.000150000000000000"),
            ),
        )
    withdrawal = reload(withdrawal)
    assert withdrawal.fee_charged == Decimal("0.00015")
    page = bob_client.get(url("detail", withdrawal.pk)).content.decode()
    assert re.search(r'id="fee-charged">0\.00015 BTC<', page)


def test_the_sandbox_flow_records_the_fee_charged(bob, alice, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.COMPLETED
    # The sandbox charges what it quoted, and reports it in its history.
    assert withdrawal.fee_charged == withdrawal.confirmed_quote.fee


def test_the_transaction_links_to_its_explorer_escaped(bob_client, alice, address, settings):
    settings.EXPLORER_TX_URLS = {address.network.upper(): "https://explorer.example/tx/{txid}"}
    withdrawal = WithdrawalFactory(
        requested_by=alice,
        whitelisted_address=address,
        state=State.COMPLETED,
        venue_txid='ab"><script>x</script>/../1',
    )
    page = bob_client.get(url("detail", withdrawal.pk)).content.decode()
    assert (
        'href="https://explorer.example/tx/ab%22%3E%3Cscript%3Ex%3C%2Fscript%3E%2F..%2F1"' in page
    )
    assert "<script>x</script>" not in page


def test_no_explorer_link_for_a_network_without_one(bob_client, alice, address, settings):
    settings.EXPLORER_TX_URLS = {"SOMEWHERE-ELSE": "https://explorer.example/tx/{txid}"}
    withdrawal = WithdrawalFactory(
        requested_by=alice, whitelisted_address=address, state=State.COMPLETED, venue_txid="ab12"
    )
    page = bob_client.get(url("detail", withdrawal.pk)).content.decode()
    assert '<code class="wrap">ab12</code>' in page and "explorer.example" not in page


def test_approvals_are_counted_against_the_quorum_and_the_expiry_shown(
    bob_client, alice, address, settings
):
    settings.WITHDRAWAL_EXPIRY_HOURS = 72
    withdrawal = WithdrawalFactory(
        requested_by=alice,
        whitelisted_address=address,
        amount=Decimal("1234.50"),
        approval_quorum=2,
    )
    page = bob_client.get(url("detail", withdrawal.pk)).content.decode()
    assert 'id="approval-count">0 of 2<' in page
    expires = withdrawal.created_at + timedelta(hours=72)
    assert f'id="expires-at">{expires:%Y-%m-%d %H:%M:%S} UTC<' in page
    assert "1,234.5 BTC" in page


def test_the_red_flags_recorded_with_each_approval_are_shown_in_words(
    bob_client, alice, bob, address
):
    withdrawal = WithdrawalFactory(
        requested_by=alice, whitelisted_address=address, state=State.APPROVED
    )
    Approval.objects.create(
        withdrawal=withdrawal,
        approver=bob,
        requester=alice,
        payload_hash=withdrawal.payload_hash,
        totp_step=1,
        red_flags="first_payment near_duplicate",
        rubber_stamp=True,
    )
    page = bob_client.get(url("detail", withdrawal.pk)).content.decode()
    approvals = page[page.index('id="approval-list"') :]
    assert "Red flags when approved: First payment to this destination; " in approvals
    assert "Same destination and amount within 24 h" in approvals
    assert "Rubber stamp: approved right after the quote loaded" in approvals


def test_an_approval_without_red_flags_shows_none(bob_client, alice, bob, address):
    withdrawal = WithdrawalFactory(
        requested_by=alice, whitelisted_address=address, state=State.APPROVED
    )
    Approval.objects.create(
        withdrawal=withdrawal,
        approver=bob,
        requester=alice,
        payload_hash=withdrawal.payload_hash,
        totp_step=1,
    )
    page = bob_client.get(url("detail", withdrawal.pk)).content.decode()
    assert 'id="approval-list"' in page and "Red flags when approved" not in page
