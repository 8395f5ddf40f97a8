"""The withdrawals history page: everything a filter changes is inside the partial htmx swaps
(rows, count, errors, export links), an invalid filter shows its message and no rows, every
control is labelled, and the page costs the same number of queries whatever it shows.

Personas: alice requests, bob approves, dave audits.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import WhitelistedAddressFactory, WithdrawalFactory
from withdrawals import selectors
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
LIST = reverse("withdrawals:list")


def detail(pk: int) -> str:
    return reverse("withdrawals:detail", kwargs={"pk": pk})


def export_links(html: str) -> list[str]:
    return re.findall(r'href="(/audit/export/withdrawals\.[^"]+)"', html)


def query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link.replace("&amp;", "&")).query)


@pytest.fixture
def two_venues(alice):
    """Three completed and one pending on the first venue, two completed on the second."""
    first = WhitelistedAddressFactory()
    second = WhitelistedAddressFactory()
    made = {
        "first_completed": [
            WithdrawalFactory(whitelisted_address=first, requested_by=alice, state=State.COMPLETED)
            for _ in range(3)
        ],
        "first_pending": [WithdrawalFactory(whitelisted_address=first, requested_by=alice)],
        "second_completed": [
            WithdrawalFactory(whitelisted_address=second, requested_by=alice, state=State.COMPLETED)
            for _ in range(2)
        ],
    }
    made["first"], made["second"] = first.venue, second.venue
    return made


def test_the_export_links_carry_the_filters_inside_the_swapped_partial(dave_client, two_venues):
    venue = two_venues["first"]
    response = dave_client.get(LIST, {"venue": venue.pk, "state": "completed"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    links = export_links(html)
    assert len(links) == 2  # CSV and JSON, both in the partial htmx swaps
    for link in links:
        assert query_of(link) == {"venue": [str(venue.pk)], "state": ["completed"]}
    shown = {w.pk for w in two_venues["first_completed"]}
    for pk in shown:
        assert detail(pk) in html
    for w in two_venues["first_pending"] + two_venues["second_completed"]:
        assert detail(w.pk) not in html
    assert "3 withdrawals shown" in html


def test_the_export_link_of_a_filtered_page_exports_exactly_its_rows(dave_client, two_venues):
    venue = two_venues["first"]
    page = dave_client.get(LIST, {"venue": venue.pk, "state": "completed"}, **HX)
    csv_link = next(
        link
        for link in export_links(page.content.decode())
        if ".csv?" in link or link.endswith(".csv")
    )
    exported = b"".join(dave_client.get(csv_link.replace("&amp;", "&")).streaming_content)
    lines = exported.decode().strip().splitlines()
    assert len(lines) == 1 + len(two_venues["first_completed"])


def test_the_export_link_leaves_out_the_page_cursor(dave_client, two_venues):
    older = two_venues["second_completed"][-1].pk
    html = dave_client.get(LIST, {"state": "completed", "before": older}, **HX).content.decode()
    for link in export_links(html):
        assert query_of(link) == {"state": ["completed"]}


@pytest.mark.parametrize(
    ("junk", "message"),
    [
        ({"since": "2026-03-02", "until": "2026-03-01"}, "The start date is after the end date."),
        ({"amount_min": "5", "amount_max": "1"}, "The minimum amount is above the maximum."),
        ({"state": "nonsense"}, "Select a valid choice."),
        ({"since": "03/01/2026x"}, "Enter a valid date."),
    ],
)
def test_an_invalid_filter_shows_its_message_and_no_rows_nor_export(
    dave_client, two_venues, junk, message
):
    for extra in ({}, HX):
        response = dave_client.get(LIST, junk, **extra)
        html = response.content.decode()
        assert response.status_code == 200
        assert message in html
        partial = html if extra else html[html.index('id="history"') :]
        assert 'role="alert"' in partial
        assert not any(detail(w.pk) in html for w in WithdrawalRequest.objects.all())
        assert export_links(html) == []
        assert "unfiltered" not in html


def test_an_unfiltered_page_links_the_whole_export_to_auditors_only(
    dave_client, bob_client, two_venues
):
    links = export_links(dave_client.get(LIST).content.decode())
    assert len(links) == 2 and all(query_of(link) == {} for link in links)
    assert export_links(bob_client.get(LIST).content.decode()) == []


class _Controls(HTMLParser):
    """The filter form's controls and labels."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.controls: list[dict[str, str | None]] = []
        self.labels: dict[str, str] = {}
        self._label_for: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form" and "filters" in (attributes.get("class") or ""):
            self.inside = True
        if not self.inside:
            return
        if tag in {"input", "select"} and attributes.get("type") not in {"hidden", "submit"}:
            self.controls.append(attributes)
        if tag == "label":
            self._label_for = attributes.get("for")
            self.labels[self._label_for or ""] = ""

    def handle_data(self, data):
        if self._label_for is not None:
            self.labels[self._label_for] += data

    def handle_endtag(self, tag):
        if tag == "label":
            self._label_for = None
        if tag == "form":
            self.inside = False


def test_every_filter_control_has_a_visible_label_and_dates_name_their_format(dave_client):
    parser = _Controls()
    parser.feed(dave_client.get(LIST).content.decode())
    # venue, state, asset, search, requester, from, to, min, max, red flag
    assert len(parser.controls) == 10
    for control in parser.controls:
        label = parser.labels.get(control["id"] or "")
        assert label and label.strip(), control
        assert control.get("placeholder") != "None"
    for name in ("since", "until"):
        assert "YYYY-MM-DD" in parser.labels[f"id_{name}"]


def test_rows_show_plain_amounts_local_times_and_state_names(dave_client, alice):
    withdrawal = WithdrawalFactory(requested_by=alice, amount=Decimal("100.00"))
    large = WithdrawalFactory(requested_by=alice, amount=Decimal("1234567.50000000"))
    html = dave_client.get(LIST, **HX).content.decode()
    created = timezone.localtime(withdrawal.created_at).strftime("%Y-%m-%d %H:%M")
    assert f"100 {withdrawal.asset}" in html and "E+" not in html
    assert f"1,234,567.5 {large.asset}" in html
    assert created in html
    assert "alice" in html and withdrawal.venue.name in html
    assert withdrawal.whitelisted_address.label in html
    assert "Pending approval" in html


def test_the_page_costs_the_same_queries_for_one_row_and_a_full_page(dave_client, alice):
    WithdrawalFactory(requested_by=alice)
    dave_client.get(LIST)  # sessions, roles and caches warmed

    def queries(params: dict[str, str]) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert dave_client.get(LIST, params).status_code == 200
        return len(ctx.captured_queries)

    one = {name: queries(params) for name, params in _SHAPES.items()}
    for _ in range(selectors.PAGE_SIZE + 5):
        WithdrawalFactory(requested_by=alice, whitelisted_address=WhitelistedAddressFactory())
    many = {name: queries(params) for name, params in _SHAPES.items()}
    assert one == many


_TODAY = timezone.localdate()
_SHAPES = {
    "first page": {},
    "state": {"state": "pending_approval"},
    "date range": {
        "since": (_TODAY - timedelta(days=30)).isoformat(),
        "until": _TODAY.isoformat(),
    },
    "requester": {"user": "alice"},
}


def _at(days_ago: int, **kwargs) -> WithdrawalRequest:
    withdrawal = WithdrawalFactory(**kwargs)
    stamp = timezone.now() - timedelta(days=days_ago)
    WithdrawalRequest.objects.filter(pk=withdrawal.pk).update(created_at=stamp)
    return withdrawal


def test_a_date_range_pages_by_creation_time_through_every_row(dave_client, alice, monkeypatch):
    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    # Ids and creation times disagree on purpose: the range walks creation time.
    inside = [_at(days, requested_by=alice) for days in (3, 1, 5, 2, 4)]
    _at(40, requested_by=alice)
    _at(0, requested_by=alice)
    since = (_TODAY - timedelta(days=10)).isoformat()
    until = (_TODAY - timedelta(days=1)).isoformat()
    newest_first = [
        w.pk
        for w in sorted(
            WithdrawalRequest.objects.filter(pk__in=[w.pk for w in inside]),
            key=lambda w: (w.created_at, w.pk),
            reverse=True,
        )
    ]
    seen: list[int] = []
    params = {"since": since, "until": until}
    for _ in range(5):
        html = dave_client.get(LIST, params, **HX).content.decode()
        seen += [int(pk) for pk in re.findall(r'href="/withdrawals/(\d+)/"', html)]
        cursor = re.search(r"before=(\d+)", html)
        if not cursor:
            break
        params = {"since": since, "until": until, "before": cursor.group(1)}
    assert seen == newest_first


def test_a_requester_sees_only_their_own_rows_in_the_history(alice_client, alice, bob):
    own = WithdrawalFactory(requested_by=alice)
    other = WithdrawalFactory()
    html = alice_client.get(LIST).content.decode()
    assert detail(own.pk) in html and detail(other.pk) not in html


def test_the_address_bar_gets_the_filters_without_blanks(dave_client, two_venues):
    blank = {"asset": "", "q": "", "since": "", "state": "completed"}
    response = dave_client.get(LIST, blank, **HX)
    assert response["HX-Push-Url"] == f"{LIST}?state=completed"
    for link in export_links(response.content.decode()):
        assert query_of(link) == {"state": ["completed"]}
    paged = dave_client.get(LIST, {**blank, "before": 99}, **HX)
    assert paged["HX-Push-Url"] == f"{LIST}?state=completed&before=99"


def test_the_approval_queue_shows_plain_amounts_at_a_constant_query_count(bob_client, alice, bob):
    dashboard = reverse("withdrawals:dashboard")
    first = WithdrawalFactory(requested_by=alice, amount=Decimal("100.00"))
    WithdrawalFactory(requested_by=bob)  # his own: never in his queue
    bob_client.get(dashboard)

    def queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as ctx:
            html = bob_client.get(dashboard).content.decode()
        return len(ctx.captured_queries), html

    count, html = queries()
    assert detail(first.pk) in html and f"100 {first.asset}" in html and "E+" not in html
    large = WithdrawalFactory(requested_by=alice, amount=Decimal("2500000"))
    assert f"2,500,000 {large.asset}" in bob_client.get(dashboard).content.decode()
    for _ in range(25):
        WithdrawalFactory(requested_by=alice, whitelisted_address=WhitelistedAddressFactory())
    more, html = queries()
    assert more == count
    assert html.count('href="/withdrawals/') - html.count('href="/withdrawals/new') >= 20
