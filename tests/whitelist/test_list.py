"""The whitelist page: one searchable, sortable table; addresses readable in groups of four and
copyable whole; look-alikes marked character by character; the venue check says when there is
nothing to compare with."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import VenueFactory, WhitelistedAddressFactory
from tests.whitelist.conftest import LOOKALIKE_ETH, NEW_ETH, OTHER_ETH
from whitelist import services
from whitelist.models import AddressState
from whitelist.selectors import addresses_search, lookalike_marks, sort_parse
from whitelist.templatetags.addresses import address_groups
from whitelist.validators import differing_positions

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
URL = "/whitelist/"


def text_of(html: str) -> str:
    """What a person copies: the text with every tag removed."""
    return re.sub(r"<[^>]+>", "", html)


def eth(venue, address, label, **kw):
    return WhitelistedAddressFactory(
        venue=venue,
        asset="ETH",
        network="Ethereum",
        address=address,
        memo="",
        venue_key="",
        label=label,
        **kw,
    )


@pytest.fixture
def book(venue):
    """Three ETH addresses at one venue; the third looks like the first."""
    return [
        eth(venue, NEW_ETH, "Payroll"),
        eth(venue, OTHER_ETH, "Cold storage", state=AddressState.PROPOSED),
        eth(venue, LOOKALIKE_ETH, "Supplier"),
    ]


def rows_of(html: str) -> list[str]:
    return re.findall(r'<tr id="address-(\d+)"', html)


def test_search_matches_label_address_or_network_in_an_htmx_partial(carol_client, book):
    response = carol_client.get(URL, {"q": "payroll"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="results"' in html
    assert rows_of(html) == [str(book[0].pk)]
    assert "1 address matching “payroll”" in html
    # The request-dependent parts ride in the partial: the sort field the next search keeps.
    assert 'name="sort" value="venue"' in html
    by_address = carol_client.get(URL, {"q": OTHER_ETH[2:12].lower()}, **HX).content.decode()
    assert rows_of(by_address) == [str(book[1].pk)]
    assert len(rows_of(carol_client.get(URL, {"q": "ethereum"}, **HX).content.decode())) == 3


def test_the_full_page_searches_without_javascript_and_pushes_the_url(carol_client, book):
    html = carol_client.get(URL, {"q": "nothing like this"}).content.decode()
    assert "<html" in html and 'hx-push-url="true"' in html
    assert '<label for="wl-q">' in html
    assert "No address matches “nothing like this”." in html


def test_sorts_by_whitelisted_keys_only(carol_client, book):
    by_label = rows_of(carol_client.get(URL, {"sort": "label"}, **HX).content.decode())
    assert by_label == [str(book[1].pk), str(book[0].pk), str(book[2].pk)]
    newest = rows_of(carol_client.get(URL, {"sort": "-created"}, **HX).content.decode())
    assert newest == [str(a.pk) for a in reversed(book)]
    assert sort_parse("-state") == ("state", True)
    # A field name that is not offered (or a lookup through a relation) is the default order.
    assert sort_parse("proposed_by__password") == ("venue", False)
    response = carol_client.get(URL, {"sort": "-venue__credentials"})
    assert response.status_code == 200
    assert 'aria-sort="ascending"' in response.content.decode()


def test_search_words_all_have_to_match(book):
    assert list(addresses_search(q="cold ethereum")) == [book[1]]
    assert list(addresses_search(q="cold bitcoin")) == []


def test_an_address_reads_in_groups_of_four_and_copies_whole():
    html = address_groups(NEW_ETH)
    assert html.count('<span class="g">') == len(NEW_ETH) // 4 + (len(NEW_ETH) % 4 > 0)
    assert '<span class="g">0xdb</span>' in html
    assert text_of(html) == NEW_ETH  # no spaces, no other characters to paste


def test_the_characters_that_differ_are_marked(book):
    marks = lookalike_marks(addresses=book)
    assert set(marks) == {book[0].pk, book[2].pk}  # Cold storage resembles nothing
    assert marks[book[2].pk] == differing_positions(LOOKALIKE_ETH, NEW_ETH)
    html = address_groups(LOOKALIKE_ETH, marks[book[2].pk])
    assert text_of(html) == LOOKALIKE_ETH
    marked = "".join(re.findall(r"<mark>([^<]*)</mark>", html))
    assert marked == "".join(LOOKALIKE_ETH[i] for i in sorted(marks[book[2].pk]))
    assert LOOKALIKE_ETH[:4] not in marked and "c6fb" not in marked.lower()


def test_differing_positions_ignore_case_and_cope_with_lengths():
    assert differing_positions("0xAbCd1234", "0xabcd1234") == frozenset()
    assert differing_positions("abcdXYZwxyz", "abcdQwxyz") == frozenset({4, 5, 6})


def test_the_list_marks_look_alikes(carol_client, book):
    html = carol_client.get(URL).content.decode()
    assert html.count("Look-alike: marked characters differ") == 2
    assert "<mark>" in html


def test_the_detail_page_marks_the_look_alike_it_warns_about(carol_client, book):
    html = carol_client.get(reverse("whitelist:detail", args=[book[2].pk])).content.decode()
    assert 'id="lookalike-warning"' in html
    assert html.count("<mark>") >= 2  # in this address and in the one it resembles


@pytest.mark.parametrize("kind", ["kucoin", "nordpay", "onekonto"])
def test_venue_check_is_not_applicable_where_the_venue_keeps_no_address_book(carol_client, kind):
    venue = VenueFactory(kind=kind, name=f"{kind} main")
    address = WhitelistedAddressFactory(venue=venue, destination=0)
    html = carol_client.get(reverse("whitelist:detail", args=[address.pk])).content.decode()
    assert f"not applicable: {kind} main keeps no address book" in html
    assert ">matches<" not in html


def test_venue_check_still_reports_a_match_at_kraken(carol_client, address):
    assert address.venue.kind == "kraken"
    address.drift_checked_at = address.created_at
    address.save()
    html = carol_client.get(reverse("whitelist:detail", args=[address.pk])).content.decode()
    assert '<span class="ok">matches</span>' in html


def test_the_scheduled_check_counts_only_venues_with_an_address_book(address):
    """A KuCoin address has nothing to be compared with: it is neither "checked" nor stamped."""
    kucoin = WhitelistedAddressFactory(venue=VenueFactory(kind="kucoin"), destination=0)
    assert services.addresses_venue_check_all() == {"checked": 1, "drift": 0, "unavailable": 0}
    kucoin.refresh_from_db()
    assert kucoin.drift_checked_at is None
