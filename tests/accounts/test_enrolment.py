"""Enrolment by invitation (issue 11, item 4): a single-use, expiring link; the TOTP secret is
made for the link's session only and saved on confirmation; recovery codes, each use audited.

Personas: uma (user admin) invites nina (new); alice (requester) lost her phone; a stranger
who got hold of a link.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Invitation
from accounts.services import access_change_approve, access_change_propose, person_invite
from audit.models import AuditEvent
from tests.conftest import verified_login
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("withdrawals:dashboard")
NEW_PASSWORD = "a-long-and-private-passphrase"


@pytest.fixture
def nina_link(uma):
    user, token = person_invite(admin=uma, username="nina", email="nina@example.com")
    return user, reverse("accounts:enrol_link", args=[token])


def enrol(client: Client, link: str, code: str, password: str = NEW_PASSWORD, **extra):
    data = {"password": password, "password_again": password, "code": code, **extra}
    return client.post(link, data)


def test_an_enrolment_link_works_once(nina_link, enrol_code):
    nina, link = nina_link
    client = Client()
    page = client.get(link)
    assert page.status_code == 200 and b"<svg" in page.content
    assert page["Cache-Control"].startswith("max-age=0") or "no-store" in page["Cache-Control"]
    # Nothing is saved before a code proves the secret.
    assert not TOTPDevice.objects.filter(user=nina).exists()

    done = enrol(client, link, enrol_code(page))
    assert done.status_code == 200 and b"Recovery codes" in done.content
    assert TOTPDevice.objects.filter(user=nina, confirmed=True).count() == 1
    assert client.get(DASHBOARD).status_code == 200  # signed in with both factors

    again = Client()
    assert again.get(link).status_code == 404
    replay = enrol(again, link, enrol_code(page))
    assert replay.status_code == 404 and b"does not work" in replay.content
    assert TOTPDevice.objects.filter(user=nina).count() == 1
    assert AuditEvent.objects.filter(action="people.enrolled", actor=nina).count() == 1


def test_the_secret_belongs_to_the_session_that_opened_the_link(nina_link, enrol_code):
    nina, link = nina_link
    first, second = Client(), Client()
    first_page, second_page = first.get(link), second.get(link)
    assert enrol_code(first_page) != enrol_code(second_page) or (
        re.search(rb"secret=\w+", first_page.content).group()
        != re.search(rb"secret=\w+", second_page.content).group()
    )
    # The same browser sees the same secret on every load until it confirms.
    assert enrol_code(first.get(link)) == enrol_code(first_page)
    # A code for the first session's secret proves nothing in the second session.
    refused = enrol(second, link, enrol_code(first_page))
    assert refused.status_code == 400 and b"does not match" in refused.content
    assert not TOTPDevice.objects.filter(user=nina).exists()
    assert enrol(first, link, enrol_code(first_page)).status_code == 200


def test_an_expired_link_is_refused(nina_link, enrol_code):
    nina, link = nina_link
    client = Client()
    page = client.get(link)
    Invitation.objects.filter(user=nina).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert enrol(client, link, enrol_code(page)).status_code == 404
    assert not TOTPDevice.objects.filter(user=nina).exists()


def test_five_wrong_codes_void_the_link(nina_link, enrol_code):
    _nina, link = nina_link
    client = Client()
    page = client.get(link)
    wrong = f"{(int(enrol_code(page)) + 1) % 1_000_000:06d}"
    for _ in range(4):
        assert enrol(client, link, wrong).status_code == 400
    last = enrol(client, link, wrong)
    assert last.status_code == 404 and b"Too many wrong attempts" in last.content
    assert enrol(client, link, enrol_code(page)).status_code == 404


def test_a_new_person_chooses_a_real_password(nina_link, enrol_code):
    _nina, link = nina_link
    client = Client()
    page = client.get(link)
    weak = enrol(client, link, enrol_code(page), password="password")
    assert weak.status_code == 400 and b"too common" in weak.content
    differ = enrol(client, link, enrol_code(page), password_again="something-else-entirely")
    assert differ.status_code == 400 and b"differ" in differ.content


def test_the_link_owner_signs_in_later_with_the_new_device(nina_link, enrol_code, fresh_code):
    nina, link = nina_link
    client = Client()
    page = client.get(link)
    enrol(client, link, enrol_code(page))
    later = Client()
    later.post(reverse("accounts:login"), {"username": "nina", "password": NEW_PASSWORD})
    assert later.post(reverse("accounts:verify"), {"code": fresh_code(nina)}).status_code == 302
    assert later.get(DASHBOARD).status_code == 200


def test_alice_after_a_device_reset_needs_the_link_and_her_password(
    alice, uma, ulf, alice_client, fresh_code, enrol_code
):
    change = access_change_propose(admin=uma, subject_id=alice.pk, kind="device_reset")
    access_change_approve(approver=ulf, change_id=change.pk, code=fresh_code(ulf))
    assert not TOTPDevice.objects.filter(user=alice).exists()
    # Her signed-in session loses its second factor at once.
    assert alice_client.get(DASHBOARD)["Location"] == reverse("accounts:enrol")

    uma_client = verified_login(Client(), uma)
    issued = uma_client.post(reverse("people:enrolment_link", args=[alice.pk]))
    link = (
        re.search(rb'id="enrolment-url">https?://[^/]+([^<]+)<', issued.content).group(1).decode()
    )
    client = Client()
    page = client.get(link)
    assert b"Your password" in page.content and b"The same password again" not in page.content
    refused = enrol(client, link, enrol_code(page), password="not-her-password")
    assert refused.status_code == 400 and b"not your password" in refused.content
    assert enrol(client, link, enrol_code(page), password=PASSWORD).status_code == 200
    assert TOTPDevice.objects.filter(user=alice, confirmed=True).count() == 1


def test_a_recovery_code_signs_in_once_and_each_use_is_audited(nina_link, enrol_code):
    nina, link = nina_link
    client = Client()
    done = enrol(client, link, enrol_code(client.get(link)))
    codes = re.findall(rb"<li>([a-z2-7]{8})</li>", done.content)
    assert len(codes) == 10
    assert StaticToken.objects.filter(device__user=nina).count() == 10

    def sign_in_with(code: str):
        c = Client()
        c.post(reverse("accounts:login"), {"username": "nina", "password": NEW_PASSWORD})
        return c, c.post(reverse("accounts:verify"), {"code": code})

    c, response = sign_in_with(codes[0].decode().upper())
    assert response.status_code == 302 and c.get(DASHBOARD).status_code == 200
    used = AuditEvent.objects.get(action="auth.recovery_code_used")
    assert used.actor == nina and used.data == {"remaining": 9}
    assert codes[0].decode() not in str(used.data) + used.message
    _c, again = sign_in_with(codes[0].decode())
    assert again.status_code == 200 and b"already used" in again.content


def test_new_recovery_codes_need_a_fresh_code_and_replace_the_old(alice, alice_client, fresh_code):
    url = reverse("accounts:recovery_codes")
    assert alice_client.get(url).status_code == 200
    refused = alice_client.post(url, {"code": "000000"})
    assert refused.status_code == 400
    # django-otp's own delay after a wrong code runs on the wall clock: lift it.
    TOTPDevice.objects.filter(user=alice).update(throttling_failure_timestamp=None)
    first = re.findall(
        rb"<li>([a-z2-7]{8})</li>", alice_client.post(url, {"code": fresh_code(alice)}).content
    )
    second = re.findall(
        rb"<li>([a-z2-7]{8})</li>", alice_client.post(url, {"code": fresh_code(alice)}).content
    )
    assert len(first) == len(second) == 10 and not set(first) & set(second)
    assert StaticToken.objects.filter(device__user=alice).count() == 10
    assert AuditEvent.objects.filter(action="people.recovery_codes_replaced").count() == 2
