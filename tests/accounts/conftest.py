"""People-page personas: two user admins, so four eyes can be kept."""

from __future__ import annotations

import re
from base64 import b32decode
from typing import Any

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import UserFactory


@pytest.fixture
def uma(db):
    """User admin: invites and proposes."""
    return UserFactory(username="uma", roles=["user_admin"])


@pytest.fixture
def ulf(db):
    """A second user admin: approves what uma proposes."""
    return UserFactory(username="ulf", roles=["user_admin"])


@pytest.fixture
def uma_client(uma, login):
    return login(uma)


@pytest.fixture
def ulf_client(ulf, login):
    return login(ulf)


def secret_on_page(content: bytes) -> str:
    """The hex key behind the otpauth:// URL an enrolment page shows."""
    match = re.search(rb"secret=([A-Z2-7]+)", content)
    assert match, "no otpauth secret on the page"
    raw = match.group(1).decode()
    return b32decode(raw + "=" * (-len(raw) % 8)).hex()


def code_for_secret(secret: str, at: float) -> str:
    device = TOTPDevice(key=secret)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = at
    return f"{totp.token():06d}"


@pytest.fixture
def enrol_code(totp_clock) -> Any:
    """The code an authenticator that scanned ``page`` shows now (on the TOTP clock)."""
    return lambda page: code_for_secret(secret_on_page(page.content), totp_clock.now)


@pytest.fixture
def anonymous() -> Client:
    return Client()
