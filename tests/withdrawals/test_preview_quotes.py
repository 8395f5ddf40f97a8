"""The requester's live preview: a quote is kept per (venue, address, amount) until it expires,
and on Nord-Pay, where every quote opens a withdraw request at the venue, typing never asks
for one (issue 10, item 8)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from tests.factories import VenueFactory, WhitelistedAddressFactory, good_amount
from venues.sandbox.registry import sandbox_for
from withdrawals import services

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
TYPING = {"typing": "1"}  # what the form's own trigger adds (hx-vals)


@pytest.fixture(autouse=True)
def no_kept_quotes():
    cache.clear()
    yield
    cache.clear()


def _form(address, amount) -> dict[str, str]:
    return {"venue": str(address.venue_id), "address": str(address.pk), "amount": f"{amount:f}"}


def _nordpay_requests() -> int:
    sandbox = sandbox_for("nordpay")
    with sandbox.store.tx() as tx:
        return len(tx.all(sandbox._c("requests")))


def test_typing_on_nordpay_opens_no_venue_request_until_get_quote(alice_client):
    address = WhitelistedAddressFactory(venue=VenueFactory(kind="nordpay"), destination=0)
    form = _form(address, good_amount(address.venue))
    url = reverse("withdrawals:preview")

    typed = alice_client.post(url, form | TYPING, **HX)
    assert typed.status_code == 200
    assert b"Get quote" in typed.content and b"Venue fee" not in typed.content
    assert _nordpay_requests() == 0

    asked = alice_client.post(url, form, **HX)  # the "Get quote" button: no typing flag
    assert b"Venue fee" in asked.content
    assert _nordpay_requests() == 1

    # Typing the same amount again shows the kept quote until it expires: no new request.
    again = alice_client.post(url, form | TYPING, **HX)
    assert b"Venue fee" in again.content
    assert _nordpay_requests() == 1


def test_the_new_withdrawal_page_offers_get_quote_without_typing_it(alice_client):
    page = alice_client.get(reverse("withdrawals:new"))
    assert b'hx-vals=\'{"typing": "1"}\'' in page.content


def test_a_kept_preview_is_shown_without_asking_the_venue_again(alice, venue):
    address = WhitelistedAddressFactory(venue=venue, destination=0)
    amount = good_amount(address.venue)
    first = services.withdrawal_preview(
        user=alice, venue_id=venue.pk, address_id=address.pk, amount=amount, typing=True
    )
    # Were the venue asked again, this fault would answer: it is not asked.
    sandbox_for(venue.kind).inject("http_error", status=503, times=5)
    again = services.withdrawal_preview(
        user=alice, venue_id=venue.pk, address_id=address.pk, amount=amount, typing=True
    )
    assert first is not None and again is not None
    assert again.quote == first.quote
    other = amount + first.quote.minimum
    with pytest.raises(services.WithdrawalError, match="did not answer"):
        services.withdrawal_preview(
            user=alice, venue_id=venue.pk, address_id=address.pk, amount=other, typing=True
        )
