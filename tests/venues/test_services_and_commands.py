"""Operating venues: the services, the ``venue`` command and the admin pages."""

from __future__ import annotations

import io
import logging

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from venues.models import Venue
from venues.registry import sandbox_for
from venues.services import VenueConfigError, venue_check, venue_create, venue_update

pytestmark = pytest.mark.django_db


def _user(name: str, role: str | None) -> User:
    user = User.objects.create_user(name, password="pw-" + name)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def test_admin_creates_venue_with_encrypted_write_only_credentials():
    carol = _user("carol", "whitelist_admin")
    venue = venue_create(
        actor=carol,
        kind="kucoin",
        name="KuCoin main",
        base_url="https://api.kucoin.example",
        api_key="key-123",
        api_secret="very-secret-value",
        passphrase="pass-phrase-value",
    )
    venue.refresh_from_db()
    assert "very-secret-value" not in venue.credentials_encrypted
    assert venue.credentials.api_secret == "very-secret-value"
    event = AuditEvent.objects.get(action="venue.created")
    assert "very-secret-value" not in str(event.data) and "pass-phrase-value" not in str(event.data)
    assert event.data["credentials_set"] == ["api_key", "api_secret", "passphrase"]


def test_requester_may_not_create_venue():
    alice = _user("alice", "requester")
    with pytest.raises(PermissionDenied):
        venue_create(actor=alice, kind="kraken", name="x", base_url="https://x.example")
    assert not Venue.objects.exists()


@pytest.mark.parametrize(
    ("kind", "name", "base_url", "field"),
    [
        ("binance", "B", "https://b.example", "kind"),
        ("kraken", " ", "https://k.example", "name"),
        ("kraken", "K", "ftp://k.example", "base_url"),
    ],
)
def test_bad_venue_input_is_refused_and_nothing_saved(kind, name, base_url, field):
    with pytest.raises(VenueConfigError) as caught:
        venue_create(actor=None, kind=kind, name=name, base_url=base_url)
    assert caught.value.field == field
    assert not Venue.objects.exists() and not AuditEvent.objects.exists()


def test_update_keeps_credentials_left_blank_and_audits_names_only():
    venue = venue_create(
        actor=None,
        kind="kraken",
        name="K",
        base_url="https://k.example",
        api_key="a",
        api_secret="s1",
    )
    venue_update(actor=None, venue_id=venue.pk, api_key="", api_secret="s2-new-secret")
    venue.refresh_from_db()
    assert venue.credentials.api_key == "a"
    assert venue.credentials.api_secret == "s2-new-secret"
    event = AuditEvent.objects.get(action="venue.updated")
    assert event.data == {"credentials_replaced": ["api_secret"]}


@pytest.mark.parametrize("kind", ["kraken", "kraken_embed", "kucoin", "onekonto", "nordpay"])
def test_venue_command_add_check_update_never_prints_secrets(kind, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    seed = sandbox_for(kind).seed()
    creds = seed.credentials
    # "--opt=value": a generated key may start with "-", which argparse would take for an option.
    args = [f"--api-key={creds.api_key}", f"--api-secret={creds.api_secret}"]
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
    call_command("venue", "update", "V1", "--api-secret", "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")
    with pytest.raises(SystemExit) as exited:
        call_command("venue", "check", "V1", stdout=io.StringIO(), stderr=(err := io.StringIO()))
    assert exited.value.code == 1
    assert err.getvalue().startswith("failed: V1: venue refused:")
    printed = out.getvalue() + err.getvalue() + capsys.readouterr().out + caplog.text
    assert creds.api_secret not in printed
    assert "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==" not in printed
    if creds.passphrase:
        assert creds.passphrase not in printed


def test_venue_check_unreachable_is_one_clear_line():
    venue = venue_create(
        actor=None,
        kind="kraken",
        name="K",
        base_url="http://127.0.0.1:9",
        api_key="a",
        api_secret="c2VjcmV0",
    )
    result = venue_check(venue=venue)
    assert (
        not result.ok and result.message.startswith("unreachable:") and "\n" not in result.message
    )


def test_venue_command_unknown_name_fails_clearly():
    with pytest.raises(CommandError, match="no venue named 'nope'"):
        call_command("venue", "check", "nope")


def test_venue_pages_admin_may_auditor_may_read_requester_may_not(client):
    carol = _user("carol", "whitelist_admin")
    dave = _user("dave", "auditor")
    alice = _user("alice", "requester")
    from django_otp.plugins.otp_totp.models import TOTPDevice

    for user in (carol, dave, alice):
        TOTPDevice.objects.create(user=user, name="t", confirmed=True)

    def login(user):
        client.force_login(user)
        session = client.session
        session["otp_device_id"] = TOTPDevice.objects.get(user=user).persistent_id
        session.save()

    login(carol)
    response = client.post(
        "/venues/new/",
        {
            "kind": "kraken",
            "name": "K",
            "base_url": "sandbox://kraken",
            "api_key": "k",
            "api_secret": "c2VjcmV0LXZhbHVl",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    page = client.get("/venues/")
    assert b"c2VjcmV0LXZhbHVl" not in page.content and b"stored (write-only)" in page.content
    edit = client.get(f"/venues/{Venue.objects.get().pk}/edit/")
    assert b"c2VjcmV0LXZhbHVl" not in edit.content
    login(dave)
    assert client.get("/venues/").status_code == 200
    assert client.post("/venues/new/", {"kind": "kraken"}).status_code == 403
    login(alice)
    assert client.get("/venues/").status_code == 403
