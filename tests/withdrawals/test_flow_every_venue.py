"""The whole flow through the pages, once per venue kind, on the demo's seeded data.

alice requests through the form (with the live preview), bob loads a fresh quote and confirms
with his TOTP code, and the withdrawal reaches ``completed`` through the venue's sandbox.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from tests.factories import TotpClock, totp_code
from venues.models import Venue
from venues.registry import KINDS
from venues.sandbox.registry import sandbox_for
from whitelist.models import WhitelistedAddress
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.django_db(transaction=True)


def _login(client, username: str, clock: TotpClock) -> None:
    user = User.objects.get(username=username)
    response = client.post(
        "/accounts/login/", {"username": username, "password": "countersign-demo"}
    )
    assert response.status_code == 302 and "/accounts/verify/" in response["Location"]
    code = totp_code(user, at=clock.time())
    assert client.post("/accounts/verify/", {"code": code}).status_code == 302


def _next_code(username: str, clock: TotpClock) -> str:
    """A code of the next time step, so the sign-in's step cannot count as a replay. From the
    clock the devices see: a code of the wall clock would be two steps ahead of it whenever the
    test crosses a step boundary."""
    clock.advance()
    return totp_code(User.objects.get(username=username), at=clock.time())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_request_approve_complete_through_the_pages(kind, client, totp_clock):
    call_command("seed_demo", verbosity=0)
    venue = Venue.objects.get(kind=kind)
    seed = sandbox_for(kind).seed(api_key=f"demo-{kind}-key", balance=Decimal("5000"))
    address = WhitelistedAddress.objects.get(venue=venue, address=seed.address, memo=seed.memo)
    amount = (seed.minimum * 2).normalize()
    form = {"venue": venue.pk, "address": address.pk, "amount": f"{amount:f}"}
    if kind == "kucoin":
        form["fee_deduct_type"] = "INTERNAL"

    _login(client, "alice", totp_clock)
    addresses = client.get(
        "/withdrawals/new/addresses/", {"venue": venue.pk}, HTTP_HX_REQUEST="true"
    )
    assert address.label.encode() in addresses.content
    preview = client.post("/withdrawals/new/preview/", form, HTTP_HX_REQUEST="true")
    assert preview.status_code == 200
    if kind == "onekonto":
        assert b"Fee not quoted by the venue" in preview.content
    else:
        assert b"Venue fee" in preview.content and b"Received" in preview.content
    created = client.post("/withdrawals/new/", form)
    assert created.status_code == 302, created.content.decode()[:2000]
    withdrawal = WithdrawalRequest.objects.get()
    assert withdrawal.state == State.PENDING_APPROVAL and withdrawal.amount == Decimal(amount)

    client.logout()
    _login(client, "bob", totp_clock)
    panel = client.post(f"/withdrawals/{withdrawal.pk}/quote/", HTTP_HX_REQUEST="true")
    assert b"Confirm &amp; submit" in panel.content
    quote_id = re.search(rb'name="quote" value="(\d+)"', panel.content).group(1).decode()
    approved = client.post(
        f"/withdrawals/{withdrawal.pk}/approve/",
        {"code": _next_code("bob", totp_clock), "quote": quote_id},
        HTTP_HX_REQUEST="true",
    )
    assert approved.status_code == 204 and approved["HX-Redirect"]

    withdrawal.refresh_from_db()
    assert withdrawal.state == State.COMPLETED, withdrawal.status_detail
    assert withdrawal.venue_reference
    assert sandbox_for(kind).count_withdrawals() == 1
    status = client.get(f"/withdrawals/{withdrawal.pk}/status/", HTTP_HX_REQUEST="true")
    assert status.status_code == 286  # final: htmx stops polling
    assert b"Completed" in status.content
