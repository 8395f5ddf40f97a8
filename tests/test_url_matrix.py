"""Every URL the project serves x every persona x every method: never a 500; GET never changes
state; the auditor (dave) and the no-role user (mallory) never change state with any method.

The URL list is walked from config.urls, so a new page is covered the day it is added.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AccessChange, ChangeState, Invitation
from accounts.services import access_change_propose
from audit.models import AuditEvent
from notifications.models import Preference
from policies.models import PolicyVersion, PriceTable, Proposal, Rule
from policies.services import policy_change_propose
from tests.conftest import verified_login
from tests.factories import UserFactory, WithdrawalFactory
from venues.models import Venue, VenueChange, VenueChangeState
from venues.services import venue_change_propose
from whitelist.models import WhitelistedAddress
from withdrawals.models import Approval, Quote, WithdrawalRequest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("quiet_refusals")]

METHODS = ("get", "post", "put", "patch", "delete")
PERSONAS = ("anonymous", "alice", "bob", "carol", "dave", "mallory", "uma")
READ_ONLY = ("anonymous", "dave", "mallory")


def is_server_error(path: str, status: int) -> bool:
    """A 5xx is a bug, except the health check's documented 503 when a dependency is down."""
    return status >= 500 and not (path == "/healthz" and status == 503)


def url_patterns() -> list[tuple[str, str | None]]:
    """(route, name) of every pattern, includes flattened."""

    def walk(patterns: list[Any], prefix: str) -> Any:
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            else:
                yield prefix + str(p.pattern), p.name

    return list(walk(get_resolver().url_patterns, ""))


def test_the_matrix_sees_every_withdrawal_and_account_url():
    routes = {route for route, _ in url_patterns()}
    for expected in (
        "",
        "withdrawals/<int:pk>/approve/",
        "withdrawals/new/preview/",
        "policy/proposals/<int:pk>/approve/",
        "accounts/verify/",
        "accounts/enrol/<str:token>/",
        "people/",
        "people/changes/<int:pk>/approve/",
        "people/access-review/",
        "admin/",
    ):
        assert expected in routes


def concrete_paths(objects: dict[str, Any]) -> list[str]:
    """Fill each route's parameters with the id of a real object of the right kind."""

    def value(route: str, name: str, pattern: str = "") -> str:
        if name == "app_label":
            return pattern.split("|")[0]
        if name == "url":
            return "no-such-page/"
        if name == "content_type_id":
            return "1"
        if route.startswith("people/changes/"):
            return str(objects["access_change"].pk)
        if route.startswith("people/"):
            return str(objects["user"].pk)
        if route.startswith("policy/proposals/"):
            return str(objects["policy_proposal"].pk)
        if route.startswith("venues/changes/"):
            return str(objects["venue_change"].pk)
        if route.startswith("venues/"):
            return str(objects["venue"].pk)
        if route.startswith("whitelist/"):
            return str(objects["address"].pk)
        if route.startswith("admin/otp_totp/"):
            return str(objects["device"].pk)
        if route.startswith("admin/auth/"):
            return str(objects["user"].pk)
        return str(objects["withdrawal"].pk)

    paths = []
    for route, _name in url_patterns():
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m, r=route: value(r, m.group(1)), route)
        path = re.sub(
            r"\(\?P<(\w+)>([^)]*)\)", lambda m, r=route: value(r, m.group(1), m.group(2)), path
        )
        path = "/" + path.replace("^", "").replace("$", "")
        resolve(path)  # raises if the filling produced a path the project does not serve
        paths.append(path)
    return paths


def snapshot() -> dict[str, list[dict[str, Any]]]:
    return {
        "withdrawals": list(WithdrawalRequest.objects.order_by("pk").values()),
        "approvals": list(Approval.objects.order_by("pk").values()),
        "quotes": list(Quote.objects.order_by("pk").values()),
        "venues": list(Venue.objects.order_by("pk").values()),
        "venue_changes": list(VenueChange.objects.order_by("pk").values()),
        "policy": list(PolicyVersion.objects.order_by("pk").values())
        + list(Rule.objects.order_by("pk").values())
        + list(Proposal.objects.order_by("pk").values())
        + list(PriceTable.objects.order_by("pk").values()),
        "addresses": list(WhitelistedAddress.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("seq").values()),
        # Who may do what: accounts, roles, proposals, links and devices (not a device's
        # throttle counters, which a refused code moves by design).
        "people": list(
            get_user_model().objects.order_by("pk").values("pk", "is_active", "password")
        ),
        "roles": list(get_user_model().groups.through.objects.order_by("pk").values()),
        "access_changes": list(AccessChange.objects.order_by("pk").values()),
        "invitations": list(Invitation.objects.order_by("pk").values()),
        "devices": list(TOTPDevice.objects.order_by("pk").values("pk", "user", "key", "confirmed"))
        + list(StaticDevice.objects.order_by("pk").values("pk", "user"))
        + list(StaticToken.objects.order_by("pk").values()),
    }


# Records of authentication attempts (the test's own logins, refused codes), not business state.
AUTH_EVENTS = {"totp.refused", "login.succeeded", "login.failed"}
# The audit trail records who read an export or evidence pack: a record of access, not a change.
ACCESS_EVENTS = {"export.created"}


def assert_unchanged(before: dict[str, Any], *, allow_auth_events: bool = False) -> None:
    after = snapshot()
    tables = ("withdrawals", "approvals", "quotes", "venues", "venue_changes", "addresses")
    for table in (*tables, "people", "roles", "access_changes", "invitations", "devices"):
        assert after[table] == before[table], table
    old = before["audit"]
    assert after["audit"][: len(old)] == old
    new = after["audit"][len(old) :]
    allowed = AUTH_EVENTS | ACCESS_EVENTS if allow_auth_events else ACCESS_EVENTS
    assert {e["action"] for e in new} <= allowed, [(e["action"], e["message"]) for e in new]


@pytest.fixture
def uma(db):
    """User admin."""
    return UserFactory(username="uma", roles=["user_admin"])


@pytest.fixture
def ulf(db):
    """A second user admin: proposes what uma may approve."""
    return UserFactory(username="ulf", roles=["user_admin"])


@pytest.fixture
def objects(alice, bob, carol, dave, mallory, uma, ulf, address):
    withdrawal = WithdrawalFactory(requested_by=alice, whitelisted_address=address)
    return {
        "withdrawal": withdrawal,
        "venue": address.venue,
        "venue_change": venue_change_propose(
            actor=carol, venue_id=address.venue.pk, account="matrix-account"
        ),
        "address": address,
        "policy_proposal": policy_change_propose(
            actor=carol, raw={"rules": [{"asset": "BTC", "quorum": 2}, {"quorum": 1}]}
        ),
        "device": TOTPDevice.objects.get(user=bob),
        "user": alice,
        "access_change": access_change_propose(
            admin=ulf, subject_id=bob.pk, kind="grant", role="auditor"
        ),
        "personas": {
            "alice": alice,
            "bob": bob,
            "carol": carol,
            "dave": dave,
            "mallory": mallory,
            "uma": uma,
        },
    }


def client_as(persona: str, objects: dict[str, Any]) -> Client:
    client = Client(raise_request_exception=False)
    if persona != "anonymous":
        verified_login(client, objects["personas"][persona])
    return client


def payload(objects: dict[str, Any]) -> dict[str, str]:
    """Plausible form data, so refusals are decided by authorisation, not by empty forms."""
    return {
        "venue": str(objects["venue"].pk),
        "address": str(objects["address"].pk),
        "amount": "0.001",
        "code": "000000",
        "quote": "1",
        "reason": "matrix",
        "name": "Matrix venue",
        "kind": "kraken",
        "base_url": "sandbox://kraken",
        "api_key": "k",
        "api_secret": "s",
    }


def request(client: Client, method: str, path: str, data: dict[str, str]):
    if method == "get":
        return client.get(path)
    if method == "post":
        return client.post(path, data)
    from urllib.parse import urlencode

    return getattr(client, method)(
        path, urlencode(data), content_type="application/x-www-form-urlencoded"
    )


@pytest.mark.parametrize("persona", PERSONAS)
def test_get_never_changes_state_and_never_500s(persona, objects):
    paths = concrete_paths(objects)
    client = client_as(persona, objects)
    before = snapshot()
    failures = []
    for path in paths:
        for htmx in (False, True):
            headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
            response = client.get(path, **headers)
            if is_server_error(path, response.status_code):
                failures.append((path, htmx, response.status_code))
    assert failures == []
    assert_unchanged(before)


@pytest.mark.parametrize("persona", PERSONAS)
def test_no_method_on_any_url_gives_a_500(persona, objects):
    """And the auditor, the no-role user and the anonymous visitor change nothing at all."""
    paths = concrete_paths(objects)
    data = payload(objects)
    before = snapshot()
    client = client_as(persona, objects)
    failures, statuses = [], {}
    for path in paths:
        for method in METHODS:
            response = request(client, method, path, data)
            statuses[(method, path)] = response.status_code
            if is_server_error(path, response.status_code):
                failures.append((method.upper(), path, response.status_code))
        if persona != "anonymous" and "_auth_user_id" not in client.session:
            client = client_as(persona, objects)  # that was a logout URL
    assert failures == []
    if persona in READ_ONLY:
        assert_unchanged(before, allow_auth_events=True)
        # Every mutating withdrawal endpoint was refused outright.
        pk = objects["withdrawal"].pk
        for name in ("quote", "approve", "reject", "cancel", "requote"):
            assert statuses[("post", f"/withdrawals/{pk}/{name}/")] in {302, 403, 404}


def test_auditor_reads_what_no_role_cannot(objects):
    pk = objects["withdrawal"].pk
    dave = client_as("dave", objects)
    mallory = client_as("mallory", objects)
    assert dave.get(f"/withdrawals/{pk}/").status_code == 200
    assert mallory.get(f"/withdrawals/{pk}/").status_code == 404


def test_nobody_is_staff_so_admin_is_closed_to_every_persona(objects):
    for persona in PERSONAS:
        client = client_as(persona, objects)
        response = client.get("/admin/auth/user/")
        assert response.status_code == 302, persona
        assert response["Location"].startswith(("/admin/login/", "/accounts/login/")), persona


def test_a_second_whitelist_admin_approves_a_venue_change_through_its_page(objects, fresh_code):
    """A successful mutation, not only refusals: erin approves carol's change with TOTP."""
    erin = UserFactory(username="erin", roles=["whitelist_admin"])
    change = objects["venue_change"]
    client = verified_login(Client(), erin)
    response = client.post(f"/venues/changes/{change.pk}/approve/", {"code": fresh_code(erin)})
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.state == VenueChangeState.APPLIED
    assert Venue.objects.get(pk=objects["venue"].pk).account == "matrix-account"


def test_a_second_whitelist_admin_approves_a_policy_change_through_its_page(objects, fresh_code):
    """A successful mutation: erin approves carol's policy proposal with TOTP."""
    erin = UserFactory(username="erin", roles=["whitelist_admin"])
    proposal = objects["policy_proposal"]
    client = verified_login(Client(), erin)
    response = client.post(f"/policy/proposals/{proposal.pk}/approve/", {"code": fresh_code(erin)})
    assert response.status_code == 302
    assert Rule.objects.filter(policy__proposal=proposal, asset="BTC", quorum=2).exists()


def test_only_user_admins_reach_the_people_page_and_auditors_the_access_review(objects):
    expected_people = {"anonymous": 302, "uma": 200}
    expected_review = {"anonymous": 302, "dave": 200, "uma": 200}
    for persona in PERSONAS:
        client = client_as(persona, objects)
        assert client.get("/people/").status_code == expected_people.get(persona, 403), persona
        review = client.get("/people/access-review/").status_code
        assert review == expected_review.get(persona, 403), persona


def test_a_second_user_admin_approves_a_grant_through_the_people_page(objects, fresh_code):
    """A successful mutation of the user admin role: uma approves ulf's grant with TOTP."""
    uma = objects["personas"]["uma"]
    change = objects["access_change"]
    client = client_as("uma", objects)
    response = client.post(
        f"/people/changes/{change.pk}/approve/", {f"c{change.pk}-code": fresh_code(uma)}
    )
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.state == ChangeState.APPROVED and change.decided_by == uma
    assert objects["personas"]["bob"].groups.filter(name="auditor").exists()


@pytest.mark.parametrize("persona", [p for p in PERSONAS if p != "anonymous"])
def test_every_role_replaces_its_own_recovery_codes_with_a_valid_code(persona, objects, fresh_code):
    """A successful mutation for every role on the accounts pages: one's own recovery codes,
    with a fresh TOTP code (a credential of one's own, like signing out; no business state)."""
    user = objects["personas"][persona]
    client = client_as(persona, objects)
    response = client.post("/accounts/recovery-codes/", {"code": fresh_code(user)})
    assert response.status_code == 200 and b'id="codes"' in response.content
    assert StaticToken.objects.filter(device__user=user).count() == 10


@pytest.mark.parametrize("persona", [p for p in PERSONAS if p != "anonymous"])
def test_every_role_saves_its_own_notification_settings(persona, objects):
    """A successful mutation for every role on the notifications page: one's own channels."""
    user = objects["personas"][persona]
    client = client_as(persona, objects)
    response = client.post("/notifications/settings/", {"approval_needed": "webhook"})
    assert response.status_code == 302
    saved = Preference.objects.get(user=user, kind="approval_needed")
    assert (saved.email, saved.webhook) == (False, True)
    assert not Preference.objects.exclude(user=user).exists()
