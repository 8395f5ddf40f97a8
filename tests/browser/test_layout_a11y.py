"""Every page, for every role, at a phone's width (390 px) and a desktop's (1280 px): the page
never scrolls sideways, and axe-core reports no serious or critical accessibility violation.

The page list is walked from config.urls (as tests/test_url_matrix.py does), so a page added
tomorrow is checked tomorrow. A URL that answers a persona with anything but a full page (a
refusal, an htmx fragment, a download, a POST-only endpoint) is not a page for that persona.

One test per persona, each page loaded once and measured at both widths.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from accounts.services import access_change_propose, person_invite
from policies.services import policy_change_propose
from tests.browser.conftest import SERVER_LOCK
from tests.conftest import verified_login
from tests.factories import UserFactory, WhitelistedAddressFactory, WithdrawalFactory
from tests.test_url_matrix import concrete_paths
from venues.services import venue_change_propose
from whitelist.models import AddressState

WIDTHS = (1280, 390)
HEIGHT = 900
SERIOUS = {"serious", "critical"}
# Signed in with a password only: these see the code step and the enrolment dead end.
UNVERIFIED = ("no code yet", "no authenticator")
# Not pages: the Django admin (read-only, Django's own markup), machine endpoints, downloads.
NOT_PAGES = ("/admin/", "/metrics", "/healthz", "/audit/export/", "/audit/checkpoint.json")

OVERFLOW = "document.scrollingElement.scrollWidth - window.innerWidth"
AXE_RUN = "axe.run(document, {resultTypes: ['violations']})"
# The page as its reader sees it once it is still: no htmx request in flight or swap settling,
# and no fade running. An indicator caught half-faded (the detail page asks for a quote as it
# loads) has the contrast of neither end.
QUIET = """() =>
    !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')
    && document.getAnimations().every(a => a.playState !== 'running')"""


@pytest.fixture
def people(db) -> dict[str, Any]:
    return {
        "requester": UserFactory(username="alice", roles=["requester"]),
        "approver": UserFactory(username="bob", roles=["approver"]),
        "whitelist admin": UserFactory(username="carol", roles=["whitelist_admin"]),
        "user admin": UserFactory(username="uma", roles=["user_admin"]),
        "auditor": UserFactory(username="dave", roles=["auditor"]),
        "second user admin": UserFactory(username="ulf", roles=["user_admin"]),
        # Signed in with a password only: the code step, and the enrolment dead end.
        "no code yet": UserFactory(username="nico", roles=["requester"]),
        "no authenticator": UserFactory(username="nadia", totp=False),
    }


@pytest.fixture
def objects(people) -> dict[str, Any]:
    """One of everything a page can be about, in the states that show the most."""
    carol = people["whitelist admin"]
    address = WhitelistedAddressFactory(destination=0, label="ETH treasury (long label, wraps)")
    venue = address.venue
    # A proposal waiting for carol's approval, and one in cooling-off: badges, panels, queue.
    proposed = WhitelistedAddressFactory(venue=venue, destination=1, state=AddressState.PROPOSED)
    # A look-alike of it (same first and last four characters): the marked characters show.
    poison = proposed.address[:4] + "0" * (len(proposed.address) - 8) + proposed.address[-4:]
    WhitelistedAddressFactory(
        venue=venue, destination=1, address=poison, label="Look-alike", venue_key=""
    )
    withdrawal = WithdrawalFactory(requested_by=people["requester"], whitelisted_address=address)
    return {
        "withdrawal": withdrawal,
        "venue": venue,
        "venue_change": venue_change_propose(
            actor=carol, venue_id=venue.pk, account="layout-account"
        ),
        "address": address,
        "device": None,
        "user": people["requester"],
        # A policy change waiting for a second whitelist admin: the readable diff and its panel.
        "policy_proposal": policy_change_propose(
            actor=carol, raw={"rules": [{"asset": "BTC", "quorum": 2}, {"quorum": 1}]}
        ),
        "access_change": access_change_propose(
            admin=people["second user admin"],
            subject_id=people["approver"].pk,
            kind="grant",
            role="auditor",
        ),
        # The single-use link an invited person opens (config.urls has only its pattern).
        "enrolment_path": reverse(
            "accounts:enrol_link",
            args=[person_invite(admin=people["user admin"], username="ina", email="ina@x.test")[1]],
        ),
    }


def page_paths(objects: dict[str, Any]) -> list[str]:
    objects = {**objects, "device": objects["user"]}
    paths = [p for p in concrete_paths(objects) if not p.startswith(NOT_PAGES)]
    return [*paths, objects["enrolment_path"]]


def session_cookie(user: Any, base_url: str, *, verified: bool = True) -> dict[str, Any]:
    client = Client()
    if verified:
        verified_login(client, user)
    else:
        client.force_login(user)  # password given, no code yet
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}


def check_page(page: Any, where: str) -> list[str]:
    """Problems on the loaded page, at every width."""
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        page.wait_for_function(QUIET)
        overflow = page.evaluate(OVERFLOW)
        if overflow > 0:
            problems.append(f"{where} @{width}px: page scrolls sideways by {overflow}px")
        for violation in page.evaluate(AXE_RUN)["violations"]:
            if violation["impact"] in SERIOUS:
                targets = [" ".join(map(str, n["target"])) for n in violation["nodes"][:3]]
                problems.append(
                    f"{where} @{width}px: {violation['id']} ({violation['impact']}): "
                    f"{violation['help']} at {targets}"
                )
    return problems


PERSONAS = (
    "anonymous",
    "requester",
    "approver",
    "whitelist admin",
    "user admin",
    "auditor",
    *UNVERIFIED,
)


def expected_pages(objects: dict[str, Any]) -> set[tuple[str, str]]:
    """The pages each persona works on: the walk must reach them (a refusal would silently
    shrink it)."""
    address, withdrawal = objects["address"].pk, objects["withdrawal"].pk
    return {
        ("anonymous", "/accounts/login/"),
        ("anonymous", objects["enrolment_path"]),
        ("no code yet", "/accounts/verify/"),
        ("no authenticator", "/accounts/enrol/"),
        ("requester", "/withdrawals/new/"),
        ("requester", f"/withdrawals/{withdrawal}/"),
        ("approver", f"/withdrawals/{withdrawal}/"),
        ("whitelist admin", "/whitelist/"),
        ("whitelist admin", f"/whitelist/{address}/"),
        ("whitelist admin", "/whitelist/new/"),
        ("whitelist admin", "/venues/"),
        ("user admin", "/people/"),
        ("auditor", "/audit/events/"),
        ("auditor", "/people/access-review/"),
    }


# One test per persona, so that parallel runs spread the walk over the workers.
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", PERSONAS)
def test_every_page_fits_a_phone_and_passes_axe(live_server, browser, people, objects, role):
    base = live_server.url
    user = people.get(role)
    checked: set[tuple[str, str]] = set()
    problems: list[str] = []
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT})
    context.add_init_script(Axe().axe_script)
    if user is not None:
        with SERVER_LOCK:
            cookie = session_cookie(user, base, verified=role not in UNVERIFIED)
            context.add_cookies([cookie])
    page = context.new_page()
    page.set_default_timeout(15_000)
    for path in page_paths(objects):
        # Asked first without rendering: a browser refuses to show an empty error body.
        probe = page.request.get(base + path, max_redirects=0)
        if probe.status >= 500:
            problems.append(f"{role} {path}: HTTP {probe.status}")
        if probe.status != 200 or "text/html" not in probe.headers.get("content-type", ""):
            continue  # a refusal, a redirect, a download, or POST only (405)
        page.goto(base + path, wait_until="load")
        if page.locator("main#main").count() != 1:
            continue  # an htmx fragment, not a page
        checked.add((role, path))
        problems += check_page(page, f"{role} {path}")
    context.close()

    for expected in expected_pages(objects):
        if expected[0] == role:
            assert expected in checked, expected
    assert not problems, "\n".join(problems)


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


SELECT_TEXT = """(el) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return selection.toString();
}"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_whitelist_on_a_phone_searches_sorts_and_copies_addresses_whole(
    live_server, browser, people, objects
):
    base = live_server.url
    address = objects["address"]
    context = browser.new_context(viewport={"width": 390, "height": HEIGHT})
    with SERVER_LOCK:
        context.add_cookies([session_cookie(people["whitelist admin"], base)])
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base}/whitelist/")

    row = page.locator(f"#address-{address.pk}")
    # What a person copies from the grouped address is the address, without spaces.
    assert row.locator(".addr").evaluate(SELECT_TEXT) == address.address

    page.get_by_label("Search label, address or network").fill("long label")
    expect(page.locator("#whitelist tbody tr")).to_have_count(1)
    expect(row).to_be_visible()
    assert query(page.url) == {"q": ["long label"], "sort": ["venue"]}

    page.get_by_role("link", name="Label", exact=True).click()
    expect(page.locator('th[aria-sort="ascending"]')).to_contain_text("Label")
    assert query(page.url) == {"q": ["long label"], "sort": ["label"]}
    assert page.evaluate(OVERFLOW) <= 0
    context.close()
