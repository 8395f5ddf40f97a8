"""Operating venues: configuration under four eyes, the URL rules, the connection check, the
``venue`` and ``rotate_credentials`` commands and the pages.

Personas: carol and erin are whitelist admins (one proposes, the other approves), dave audits,
alice requests and may not touch venues.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from tests.factories import UserFactory, VenueFactory
from venues.models import Venue, VenueChange, VenueChangeState
from venues.sandbox.registry import sandbox_for
from venues.services import (
    VenueConfigError,
    venue_bootstrap,
    venue_change_approve,
    venue_change_propose,
    venue_change_reject,
    venue_check,
    venue_set_enabled,
)

pytestmark = pytest.mark.django_db

SECRET = "bmV3LXNlY3JldC1uZXZlci1zaG93bi10by1hbnlvbmU="


@pytest.fixture
def erin(db):
    """The second whitelist admin."""
    return UserFactory(username="erin", roles=["whitelist_admin"])


def trail_text() -> str:
    return json.dumps([[e.action, e.message, e.data] for e in AuditEvent.objects.all()])


# --- four eyes ------------------------------------------------------------------------------


def test_one_admins_change_does_nothing_until_a_second_approves_with_totp(carol, erin, fresh_code):
    venue = VenueFactory(kind="kraken")
    before = (venue.base_url, venue.account, venue.credentials.api_secret)

    change = venue_change_propose(
        actor=carol, venue_id=venue.pk, base_url="http://127.0.0.1:9/collect", api_secret=SECRET
    )

    venue.refresh_from_db()
    assert (venue.base_url, venue.account, venue.credentials.api_secret) == before
    assert venue_check(venue=venue).ok  # the old configuration is still the one in force
    with pytest.raises(VenueConfigError, match="second whitelist admin"):
        venue_change_approve(change_id=change.pk, approver=carol, code=fresh_code(carol))
    venue.refresh_from_db()
    assert venue.base_url == before[0]

    venue_change_approve(change_id=change.pk, approver=erin, code=fresh_code(erin))

    venue.refresh_from_db()
    assert venue.base_url == "http://127.0.0.1:9/collect"
    assert venue.credentials.api_secret == SECRET
    assert venue.credentials.api_key  # a credential not given is kept
    change.refresh_from_db()
    assert change.state == VenueChangeState.APPLIED and change.credentials_encrypted == ""
    proposed = AuditEvent.objects.get(action="venue.change_proposed")
    applied = AuditEvent.objects.get(action="venue.updated")
    assert proposed.actor == carol and applied.actor == erin
    assert applied.data["base_url"] == [before[0], "http://127.0.0.1:9/collect"]
    assert applied.data["credentials_replaced"] == ["api_secret"]
    assert applied.data["proposed_by"] == "carol"
    assert SECRET not in trail_text() and before[2] not in trail_text()


def test_a_new_venue_exists_only_once_approved(carol, erin, fresh_code):
    change = venue_change_propose(
        actor=carol,
        kind="kucoin",
        name="KuCoin main",
        base_url="https://api.kucoin.com",
        api_key="key-123",
        api_secret=SECRET,
        passphrase="pass-phrase-value",
    )
    assert not Venue.objects.exists()
    assert SECRET not in change.credentials_encrypted

    venue = venue_change_approve(change_id=change.pk, approver=erin, code=fresh_code(erin))

    assert venue.credentials.api_secret == SECRET and venue.credentials.passphrase
    assert SECRET not in venue.credentials_encrypted
    created = AuditEvent.objects.get(action="venue.created")
    assert created.data["credentials_set"] == ["api_key", "api_secret", "passphrase"]
    assert SECRET not in trail_text() and "pass-phrase-value" not in trail_text()


def test_the_database_refuses_a_self_approved_change(carol):
    venue = VenueFactory(kind="kraken")
    change = venue_change_propose(actor=carol, venue_id=venue.pk, account="other")
    change.approved_by = carol
    change.state = VenueChangeState.APPLIED
    with pytest.raises(IntegrityError), transaction.atomic():
        change.save()


def test_a_wrong_code_changes_nothing_and_the_change_still_waits(carol, erin):
    venue = VenueFactory(kind="kraken")
    change = venue_change_propose(actor=carol, venue_id=venue.pk, account="elsewhere")
    with pytest.raises(VenueConfigError) as refused:
        venue_change_approve(change_id=change.pk, approver=erin, code="000000")
    assert refused.value.field == "code"
    venue.refresh_from_db()
    change.refresh_from_db()
    assert venue.account != "elsewhere" and change.state == VenueChangeState.PROPOSED


def test_one_open_change_per_venue_and_a_rejected_one_cannot_be_approved(carol, erin, fresh_code):
    venue = VenueFactory(kind="kraken")
    first = venue_change_propose(actor=carol, venue_id=venue.pk, account="a")
    with pytest.raises(VenueConfigError, match="already has a change waiting"):
        venue_change_propose(actor=erin, venue_id=venue.pk, account="b")
    venue_change_reject(change_id=first.pk, actor=carol, reason="typo")
    with pytest.raises(VenueConfigError, match="already rejected"):
        venue_change_approve(change_id=first.pk, approver=erin, code=fresh_code(erin))
    assert AuditEvent.objects.get(action="venue.change_rejected").data["reason"] == "typo"
    venue_change_propose(actor=erin, venue_id=venue.pk, account="b")  # now it may


def test_requester_may_not_propose_and_nothing_is_saved(alice):
    with pytest.raises(PermissionDenied):
        venue_change_propose(actor=alice, kind="kraken", name="x", base_url="https://x.example")
    assert not VenueChange.objects.exists()


def test_a_change_to_nothing_is_refused(carol):
    venue = VenueFactory(kind="kraken")
    with pytest.raises(VenueConfigError, match="Nothing to change"):
        venue_change_propose(actor=carol, venue_id=venue.pk, base_url=venue.base_url)


def test_turning_a_venue_off_is_immediate_and_audited(carol):
    venue = VenueFactory(kind="kraken")
    venue_set_enabled(actor=carol, venue_id=venue.pk, enabled=False)
    venue.refresh_from_db()
    assert not venue.enabled
    assert AuditEvent.objects.get(action="venue.disabled").actor == carol


# --- where a venue may be reached ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "base_url"),
    [
        ("kraken", "http://api.kraken.com"),  # not https
        ("kraken", "https://collector.example"),  # not a documented host
        ("kraken", "https://api.kraken.com.collector.example"),
        ("kraken", "https://api.kucoin.com"),  # another kind's host
        ("kraken", "https://api.kraken.com:8443"),
        ("kraken", "https://admin:pw@api.kraken.com"),
        ("kraken", "sandbox://kraken"),  # sandboxes are off outside the demo
        ("onekonto", "https://api.1konto.example"),  # 1Konto documents no host
        ("nordpay", "ftp://api.nord-pay.com"),
    ],
)
def test_outside_the_demo_only_documented_https_hosts_are_accepted(settings, carol, kind, base_url):
    settings.VENUE_HOSTS_RESTRICTED = True
    settings.VENUE_SANDBOXES_ENABLED = False
    with pytest.raises(VenueConfigError) as refused:
        venue_change_propose(actor=carol, kind=kind, name="V", base_url=base_url)
    assert refused.value.field == "base_url"
    assert not VenueChange.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("kind", "base_url"),
    [
        ("kraken", "https://api.kraken.com/"),
        ("kraken_embed", "https://nexus.kraken.com"),
        ("kucoin", "https://api.kucoin.com:443"),
        ("nordpay", "https://API.nord-pay.com/v1"),
        ("onekonto", "https://api.1konto.example"),  # named by the operator, below
        ("kraken", "https://kraken-proxy.internal.example"),
    ],
)
def test_documented_and_operator_named_hosts_are_accepted(settings, carol, kind, base_url):
    settings.VENUE_HOSTS_RESTRICTED = True
    settings.VENUE_SANDBOXES_ENABLED = False
    settings.VENUE_EXTRA_HOSTS = ["onekonto=api.1konto.example", "kraken-proxy.internal.example"]
    change = venue_change_propose(actor=carol, kind=kind, name="V", base_url=base_url)
    assert change.base_url == base_url.rstrip("/")


def test_an_approval_rechecks_the_url_rules(settings, carol, erin, fresh_code):
    settings.VENUE_EXTRA_HOSTS = ["kraken-proxy.internal.example"]
    settings.VENUE_HOSTS_RESTRICTED = True
    change = venue_change_propose(
        actor=carol, kind="kraken", name="V", base_url="https://kraken-proxy.internal.example"
    )
    settings.VENUE_EXTRA_HOSTS = []
    with pytest.raises(VenueConfigError, match="not a host"):
        venue_change_approve(change_id=change.pk, approver=erin, code=fresh_code(erin))
    assert not Venue.objects.exists()


# --- test connection -----------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[dict]:
    """A server someone pointed a venue at: it answers whatever it likes."""
    state = {"body": b"", "status": 200, "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state["seen"].append(self.rfile.read(length))
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state["body"])

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_test_connection_never_shows_what_the_network_answered(listener):
    venue = VenueFactory(kind="kraken", base_url=listener["url"])
    listener["body"] = json.dumps({"error": ["EGeneral:Internal: db password is hunter2"]}).encode()
    result = venue_check(venue=venue)
    assert not result.ok and "hunter2" not in result.message
    assert result.message == "venue refused: an undocumented answer, not shown here"

    listener["body"] = json.dumps({"error": ["EAPI:Invalid key <b>call me</b>"]}).encode()
    result = venue_check(venue=venue)
    assert result.message == "venue refused: EAPI:Invalid key (the API key is not known)"

    listener["status"], listener["body"] = 502, b"<html>internal host inventory</html>"
    result = venue_check(venue=venue)
    assert result.message == "unreachable: the venue answered HTTP 502"
    assert listener["seen"], "the listener was reached, so the check above saw its answers"


def test_a_working_venue_gets_our_own_verdict():
    venue = VenueFactory(kind="nordpay")
    result = venue_check(venue=venue)
    assert result.ok and result.message == "Nord-Pay accepted the credentials."


def test_venue_check_unreachable_is_one_clear_line():
    venue = venue_bootstrap(
        kind="kraken", name="K", base_url="http://127.0.0.1:9", api_key="a", api_secret="c2VjcmV0"
    )
    result = venue_check(venue=venue)
    assert result.message == "unreachable: no answer from the venue's host"


# --- the commands --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["kraken", "kraken_embed", "kucoin", "onekonto", "nordpay"])
def test_venue_command_adds_and_proposes_and_never_prints_secrets(
    kind, capsys, caplog, erin, fresh_code
):
    caplog.set_level(logging.DEBUG)
    seed = sandbox_for(kind).seed()
    creds = seed.credentials
    # "--opt=value": a generated key may start with "-", which argparse would take for an option.
    args = [f"--api-key={creds.api_key}"]
    if creds.api_secret:
        args += [f"--api-secret={creds.api_secret}"]
    if creds.passphrase:
        args += [f"--passphrase={creds.passphrase}"]
    if creds.account:
        args += [f"--account={creds.account}"]
    if seed.options.path_prefix:
        args += [f"--path-prefix={seed.options.path_prefix}"]
    if seed.options.fee_deduct_type:
        args += [f"--fee-deduct-type={seed.options.fee_deduct_type}"]
    call_command(
        "venue", "add", "--kind", kind, "--name", "V1", "--base-url", f"sandbox://{kind}", *args
    )
    out = io.StringIO()
    call_command("venue", "check", "V1", stdout=out)
    assert out.getvalue().startswith("ok: V1:")
    wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
    # The credential that authenticates: Nord-Pay's X-API-KEY is its API key (NOTES §7).
    field = "api_key" if kind == "nordpay" else "api_secret"
    call_command("venue", "update", "V1", f"--{field.replace('_', '-')}={wrong}", stdout=out)
    assert "proposed change" in out.getvalue()
    # Only a proposal so far: the venue still works with its old secret and options.
    call_command("venue", "check", "V1", stdout=out)
    assert out.getvalue().count("ok: V1:") == 2
    change = VenueChange.objects.get(venue__name="V1")
    assert change.summary == {"credentials_replaced": [field]}
    venue_change_approve(change_id=change.pk, approver=erin, code=fresh_code(erin))
    with pytest.raises(SystemExit) as exited:
        call_command("venue", "check", "V1", stdout=io.StringIO(), stderr=(err := io.StringIO()))
    assert exited.value.code == 1
    assert err.getvalue().startswith("failed: V1: venue refused")
    printed = out.getvalue() + err.getvalue() + capsys.readouterr().out + caplog.text
    bearer = creds.api_key if kind == "nordpay" else ""  # Nord-Pay's key alone moves money
    for secret in (creds.api_secret, wrong, creds.passphrase, bearer):
        assert not secret or secret not in printed


def test_venue_command_refuses_an_existing_name_and_a_bad_url():
    call_command(
        "venue", "add", "--kind", "kraken", "--name", "K", "--base-url", "sandbox://kraken"
    )
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "venue", "add", "--kind", "kraken", "--name", "K", "--base-url", "sandbox://kraken"
        )
    with pytest.raises(CommandError, match="must start with"):
        call_command("venue", "add", "--kind", "kraken", "--name", "L", "--base-url", "ftp://x")
    assert Venue.objects.count() == 1


def test_venue_command_unknown_name_fails_clearly():
    with pytest.raises(CommandError, match="no venue named 'nope'"):
        call_command("venue", "check", "nope")


def test_rotate_credentials_re_encrypts_every_venue_under_the_newest_key(settings, carol):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    venue = VenueFactory(kind="kraken")
    pending = venue_change_propose(actor=carol, venue_id=venue.pk, api_secret=SECRET)
    secret = venue.credentials.api_secret

    settings.CREDENTIALS_KEYS = [new, old]
    call_command("rotate_credentials", stdout=(out := io.StringIO()))
    assert "1 venue" in out.getvalue()

    settings.CREDENTIALS_KEYS = [new]  # the old key is gone: everything still decrypts
    venue.refresh_from_db()
    pending.refresh_from_db()
    assert venue.credentials.api_secret == secret
    assert pending.new_credentials == {"api_secret": SECRET}
    assert AuditEvent.objects.filter(action="venue.credentials_rotated").exists()


# --- the pages -----------------------------------------------------------------------------


def test_pages_propose_then_a_second_admin_approves(login, carol, erin, dave, alice, fresh_code):
    carol_client = login(carol)
    response = carol_client.post(
        "/venues/new/",
        {
            "kind": "kraken",
            "name": "K",
            "base_url": "sandbox://kraken",
            "api_key": "k",
            "api_secret": SECRET,
        },
    )
    assert response.status_code == 302
    change = VenueChange.objects.get()
    assert response.url == f"/venues/changes/{change.pk}/"
    assert not Venue.objects.exists()
    own = carol_client.get(response.url)
    assert (
        b"another whitelist admin must approve" in own.content
        and b"approve-code" not in own.content
    )
    assert (
        carol_client.post(f"/venues/changes/{change.pk}/approve/", {"code": "123456"}).status_code
        == 400
    )

    erin_client = login(erin)
    page = erin_client.get(f"/venues/changes/{change.pk}/")
    assert b"approve-code" in page.content and SECRET.encode() not in page.content
    wrong = erin_client.post(f"/venues/changes/{change.pk}/approve/", {"code": ""})
    assert wrong.status_code == 400 and b'role="alert"' in wrong.content
    assert not Venue.objects.exists()
    done = erin_client.post(f"/venues/changes/{change.pk}/approve/", {"code": fresh_code(erin)})
    assert done.status_code == 302
    venue = Venue.objects.get()
    listing = erin_client.get("/venues/")
    assert SECRET.encode() not in listing.content and b"stored (write-only)" in listing.content
    assert SECRET.encode() not in erin_client.get(f"/venues/{venue.pk}/edit/").content

    dave_client = login(dave)
    assert dave_client.get("/venues/").status_code == 200
    assert dave_client.get(f"/venues/changes/{change.pk}/").status_code == 200
    assert dave_client.post("/venues/new/", {"kind": "kraken"}).status_code == 403
    assert dave_client.post(f"/venues/changes/{change.pk}/reject/", {}).status_code == 403
    alice_client = login(alice)
    assert alice_client.get("/venues/").status_code == 403
    assert alice_client.get(f"/venues/changes/{change.pk}/").status_code == 403


def test_a_refused_url_on_the_page_is_a_clear_message_and_nothing_saved(settings, login, carol):
    settings.VENUE_HOSTS_RESTRICTED = True
    response = login(carol).post(
        "/venues/new/", {"kind": "kraken", "name": "K", "base_url": "https://collector.example"}
    )
    assert response.status_code == 400 and b"not a host" in response.content
    assert not VenueChange.objects.exists()
