"""Every request loads the signed-in person once: their roles and their confirmed authenticator
apps come in the same query (accounts.backends), and the second-factor check reads the session's
device from them (accounts.middleware.SessionDeviceMiddleware). What the session may do must be
exactly what a query of each would have said, on the very next request after any change."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse, set_script_prefix
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.roles import AUDITOR
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

HISTORY = reverse("withdrawals:list")
VENUES = reverse("venues:list")
VERIFY = reverse("accounts:verify")
ENROL = reverse("accounts:enrol")


def _session_device(client: Client, persistent_id: str) -> None:
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = persistent_id
    session.save()


def test_a_page_reads_the_person_their_roles_and_their_device_in_one_statement(dave_client):
    dave_client.get(HISTORY)
    with CaptureQueriesContext(connection) as ctx:
        response = dave_client.get(HISTORY)
    assert response.status_code == 200
    statements = [q["sql"] for q in ctx.captured_queries]
    user_reads = [s for s in statements if "auth_user_groups" in s or "totpdevice" in s]
    assert len(user_reads) == 1, statements
    # The auditor's export links show that the role came through that one read.
    assert b"Export this selection" in response.content


def test_a_role_taken_away_is_gone_on_the_next_request(dave, dave_client):
    assert dave_client.get(VENUES).status_code == 200
    dave.groups.remove(Group.objects.get(name=AUDITOR))
    assert dave_client.get(VENUES).status_code == 403
    assert b"Export this selection" not in dave_client.get(HISTORY).content


def test_a_role_given_counts_on_the_next_request(mallory, login):
    client = login(mallory)
    assert client.get(VENUES).status_code == 403
    mallory.groups.add(Group.objects.get(name=AUDITOR))
    assert client.get(VENUES).status_code == 200


def test_a_removed_authenticator_unverifies_the_session(alice, alice_client):
    assert alice_client.get(HISTORY).status_code == 200
    TOTPDevice.objects.filter(user=alice).delete()
    response = alice_client.get(HISTORY)
    assert response.status_code == 302
    assert response["Location"] == ENROL
    assert DEVICE_ID_SESSION_KEY not in alice_client.session


def test_an_unconfirmed_authenticator_does_not_verify(alice, alice_client):
    TOTPDevice.objects.filter(user=alice).update(confirmed=False)
    response = alice_client.get(HISTORY)
    assert response.status_code == 302
    assert DEVICE_ID_SESSION_KEY not in alice_client.session


def test_another_persons_authenticator_in_the_session_does_not_verify(alice, bob, login):
    client = login(alice)
    bobs = TOTPDevice.objects.get(user=bob, confirmed=True)
    _session_device(client, bobs.persistent_id)
    response = client.get(HISTORY)
    assert response.status_code == 302
    assert response["Location"] == VERIFY
    assert DEVICE_ID_SESSION_KEY not in client.session


@pytest.mark.parametrize(
    "persistent_id", ["otp_totp.totpdevice/x", "otp_totp.totpdevice/", "nonsense", "a.b.c/1"]
)
def test_a_tampered_device_id_is_no_device_and_no_error(alice, login, persistent_id):
    client = login(alice)
    _session_device(client, persistent_id)
    response = client.get(HISTORY)
    assert response.status_code == 302
    assert response["Location"] == VERIFY


def test_a_session_verified_by_a_recovery_code_stays_verified(alice, login):
    client = login(alice)
    static = StaticDevice.objects.create(user=alice, name="recovery", confirmed=True)
    _session_device(client, static.persistent_id)
    assert client.get(HISTORY).status_code == 200


def test_a_deactivated_person_is_signed_out(alice, alice_client):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    response = alice_client.get(HISTORY)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_the_device_taken_from_the_session_is_the_real_one(alice, alice_client):
    """Anything that reads more of the device than its id gets the stored values."""
    from django.contrib.auth import get_user
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from accounts.middleware import SessionDeviceMiddleware

    request = RequestFactory().get(HISTORY)
    request.session = SessionStore(alice_client.session.session_key)
    AuthenticationMiddleware(lambda r: None).process_request(request)
    SessionDeviceMiddleware(lambda r: None)(request)
    device = request.user.otp_device
    stored = TOTPDevice.objects.get(user=alice, confirmed=True)
    assert device.pk == stored.pk
    assert device.key == stored.key
    assert device.name == stored.name
    assert get_user(request).pk == alice.pk


def test_two_people_keep_their_own_roles(dave, bob, login):
    other = UserFactory(username="olga", roles=["approver", "auditor"])
    clients = {"dave": login(dave), "bob": login(bob), "olga": login(other)}
    assert clients["dave"].get(VENUES).status_code == 200
    assert clients["bob"].get(VENUES).status_code == 403
    assert clients["olga"].get(VENUES).status_code == 200


def test_the_layout_links_follow_the_script_prefix(dave_client):
    """The layout's links are reversed once per script prefix, not once for all of them."""
    # As the WSGI handler does for a request under SCRIPT_NAME (the test client does not).
    set_script_prefix("/countersign/")
    try:
        prefixed = dave_client.get(HISTORY).content.decode()
    finally:
        set_script_prefix("/")
    plain = dave_client.get(HISTORY).content.decode()
    assert f'href="/countersign{HISTORY}">Withdrawals</a>' in prefixed
    assert f'href="{HISTORY}">Withdrawals</a>' in plain
    assert "/countersign/" not in plain
