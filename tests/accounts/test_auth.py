"""Password plus TOTP on every page; enrolment first for users without a device.

Personas: alice (requester, enrolled), nora (new: no device yet), bob (approver).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory, WithdrawalFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
VERIFY = reverse("accounts:verify")
ENROL = reverse("accounts:enrol")


@pytest.fixture
def nora(db):
    """A requester who has never enrolled an authenticator."""
    return UserFactory(username="nora", roles=["requester"], totp=False)


@pytest.fixture
def withdrawal(alice, address):
    return WithdrawalFactory(requested_by=alice, whitelisted_address=address)


def pages(withdrawal) -> list[str]:
    pk = withdrawal.pk
    return [
        reverse("withdrawals:dashboard"),
        reverse("withdrawals:list"),
        reverse("withdrawals:new"),
        reverse("withdrawals:addresses") + f"?venue={withdrawal.venue_id}",
        reverse("withdrawals:detail", args=[pk]),
        reverse("withdrawals:status", args=[pk]),
    ]


def actions(withdrawal) -> list[str]:
    pk = withdrawal.pk
    return [reverse("withdrawals:preview")] + [
        reverse(f"withdrawals:{n}", args=[pk])
        for n in ("quote", "approve", "reject", "cancel", "requote")
    ]


def test_anonymous_is_sent_to_login_from_every_page(client, withdrawal):
    for path in pages(withdrawal):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(f"{LOGIN}?next="), path
    for path in actions(withdrawal):
        response = client.post(path, {"reason": "x"})
        assert response.status_code == 302 and response["Location"].startswith(LOGIN), path
    withdrawal.refresh_from_db()
    assert withdrawal.state == "pending_approval"


def test_nora_without_a_device_is_sent_to_enrolment_and_reaches_nothing_else(nora, withdrawal):
    client = Client()
    client.force_login(nora)
    for path in pages(withdrawal):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == ENROL, path
    for path in actions(withdrawal):
        assert client.post(path, {"reason": "x"})["Location"] == ENROL, path
    htmx = client.get(reverse("withdrawals:list"), HTTP_HX_REQUEST="true")
    assert htmx.status_code == 204 and htmx["HX-Redirect"] == ENROL
    # verify has nothing to verify with: back to enrolment.
    assert client.get(VERIFY)["Location"] == ENROL


def test_alice_with_a_device_but_unverified_is_sent_to_verify(alice, withdrawal):
    client = Client()
    client.force_login(alice)
    for path in pages(withdrawal) + actions(withdrawal):
        method = client.post if path in actions(withdrawal) else client.get
        response = method(path)
        assert response.status_code == 302 and response["Location"] == VERIFY, path
    # Enrolment is not a way around verification.
    assert client.get(ENROL)["Location"] == VERIFY


def test_nora_knowing_only_her_password_is_shown_no_secret(nora):
    """Enrolment trusts no password: the page a device-less user reaches shows no key or QR code
    and creates no device; a device comes only from an enrolment link (test_enrolment.py)."""
    client = Client()
    client.force_login(nora)
    for _ in range(2):
        page = client.get(ENROL)
        assert page.status_code == 200
        assert b"<svg" not in page.content and b"otpauth://" not in page.content
        assert b"Ask a user admin" in page.content
    assert not TOTPDevice.objects.filter(user=nora).exists()
    assert client.post(ENROL, {"code": "123456"}).status_code == 405
    assert client.get(reverse("withdrawals:dashboard"))["Location"] == ENROL


def _password_step(client: Client, user, next_url: str = "") -> str:
    response = client.post(
        LOGIN + (f"?next={next_url}" if next_url else ""),
        {"username": user.username, "password": PASSWORD},
    )
    assert response.status_code == 302, response.content
    return response["Location"]


def test_alice_logs_in_with_password_and_totp(alice, code_now):
    client = Client()
    target = _password_step(client, alice, next_url=reverse("withdrawals:list"))
    assert target.startswith(VERIFY)
    page = client.get(target)
    assert page.status_code == 200 and b"Authenticator code" in page.content
    done = client.post(target, {"code": code_now(alice), "next": reverse("withdrawals:list")})
    assert done.status_code == 302 and done["Location"] == reverse("withdrawals:list")
    assert client.get(reverse("withdrawals:list")).status_code == 200


def test_wrong_password_gets_no_session(alice):
    client = Client()
    response = client.post(LOGIN, {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert client.get(reverse("withdrawals:dashboard"))["Location"].startswith(LOGIN)


def test_alice_wrong_totp_is_refused_at_login(alice, code_now):
    client = Client()
    _password_step(client, alice)
    wrong = f"{(int(code_now(alice)) + 1) % 1_000_000:06d}"
    response = client.post(VERIFY, {"code": wrong})
    assert response.status_code == 200 and b"wrong" in response.content
    assert client.get(reverse("withdrawals:dashboard"))["Location"] == VERIFY
    assert AuditEvent.objects.filter(action="totp.refused", actor=alice).count() == 1


def test_login_verify_refuses_a_replayed_code(alice, code_now):
    first, second = Client(), Client()
    _password_step(first, alice)
    code = code_now(alice)
    assert first.post(VERIFY, {"code": code})["Location"] == "/"
    _password_step(second, alice)
    replay = second.post(VERIFY, {"code": code})
    assert replay.status_code == 200 and b"already used" in replay.content
    assert second.get(reverse("withdrawals:dashboard"))["Location"] == VERIFY


def test_verify_never_redirects_off_site(alice, code_now):
    client = Client()
    _password_step(client, alice)
    response = client.post(VERIFY, {"code": code_now(alice), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_logout_is_post_only_and_ends_the_session(alice_client):
    assert alice_client.get(reverse("accounts:logout")).status_code == 405
    assert alice_client.post(reverse("accounts:logout")).status_code == 302
    assert alice_client.get(reverse("withdrawals:dashboard"))["Location"].startswith(LOGIN)


def test_login_page_renders_for_anonymous(client):
    response = client.get(LOGIN)
    assert response.status_code == 200 and b'name="password"' in response.content


def test_login_keeps_a_next_url_with_a_query_string(alice, code_now):
    client = Client()
    wanted = reverse("withdrawals:list") + "?state=pending_approval&asset=BTC"
    target = client.post(LOGIN, {"username": "alice", "password": PASSWORD, "next": wanted})[
        "Location"
    ]
    page = client.get(target)
    assert f'value="{wanted}"'.replace("&", "&amp;").encode() in page.content
    done = client.post(target, {"code": code_now(alice), "next": wanted})
    assert done["Location"] == wanted
