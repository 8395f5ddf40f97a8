"""The client's address behind the documented proxy, and no-store on what Django renders.

Personas: alice signs in from 198.51.100.7 through our proxy at 10.0.0.5; mallory sends her own
X-Forwarded-For, with and without a proxy in front of her.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from audit.models import AuditEvent
from config.middleware import client_address, trusted_networks
from tests.factories import PASSWORD

PROXY = "10.0.0.5"
TRUSTED = trusted_networks(["10.0.0.0/24", "fd00::/8"])


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "expected"),
    [
        # No proxy configured in front: the peer is the client, whatever the header says.
        ("198.51.100.7", "", "198.51.100.7"),
        ("203.0.113.66", "198.51.100.7", "203.0.113.66"),
        # Our proxy appended the address it saw.
        (PROXY, "198.51.100.7", "198.51.100.7"),
        # Mallory forged an entry; our proxy appended her real address after it.
        (PROXY, "1.2.3.4, 203.0.113.66", "203.0.113.66"),
        # Two proxies of ours in a row: skip both, take the first address that is not ours.
        (PROXY, "1.2.3.4, 198.51.100.7, 10.0.0.9", "198.51.100.7"),
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
        # A proxy of ours without the header, or with garbage: keep the proxy, never guess.
        (PROXY, "", PROXY),
        (PROXY, "not-an-ip", PROXY),
        (PROXY, "198.51.100.7, garbage", PROXY),
    ],
)
def test_the_right_most_untrusted_forwarded_address_is_the_client(
    remote_addr, forwarded_for, expected
):
    assert (
        client_address(remote_addr=remote_addr, forwarded_for=forwarded_for, trusted=TRUSTED)
        == expected
    )


@pytest.mark.django_db
def test_alice_behind_the_proxy_is_recorded_with_her_own_address(settings, alice):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    response = Client().post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7",
    )
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="login.succeeded").ip == "198.51.100.7"


@pytest.mark.django_db
def test_without_a_trusted_proxy_mallory_cannot_choose_her_address(settings, alice):
    settings.TRUSTED_PROXIES = []
    Client().post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="203.0.113.66",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
    )
    assert AuditEvent.objects.get(action="login.succeeded").ip == "203.0.113.66"


@pytest.mark.django_db
def test_pages_and_exports_are_not_stored_by_browsers_or_proxies(dave_client):
    for url in ("/", "/audit/", "/venues/", "/audit/export/audit.csv", "/accounts/login/"):
        response = dave_client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response.headers.get("Cache-Control", ""), url


def test_a_mistyped_trusted_proxy_names_the_setting():
    with pytest.raises(ImproperlyConfigured, match=r"TRUSTED_PROXIES: '10\.0\.0\.300'"):
        trusted_networks(["10.0.0.1", "10.0.0.300"])
