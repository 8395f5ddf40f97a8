"""Personas and helpers of the whitelist tests: two whitelist admins (carol proposes, erin
approves), an auditor who may veto, and sandbox keys saved at the venue."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import UserFactory
from venues.models import Venue
from venues.sandbox.registry import sandbox_for
from whitelist import services
from whitelist.models import WhitelistedAddress

# EIP-55 examples that no sandbox seed registers.
NEW_ETH = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
OTHER_ETH = "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb"
# Same first 4 and last 4 characters as NEW_ETH, different in between.
LOOKALIKE_ETH = "0xdb" + "0" * 34 + "c6fb"


@pytest.fixture
def erin(db):
    """A second whitelist admin: approves what carol proposes."""
    return UserFactory(username="erin", roles=["whitelist_admin"])


@pytest.fixture
def ward(db):
    """Whitelist admin who is also a withdrawal approver."""
    return UserFactory(username="ward", roles=["whitelist_admin", "approver"])


@pytest.fixture(autouse=True)
def no_cooling_off(settings):
    settings.WHITELIST_COOLING_OFF_SECONDS = 0


def kraken_save_key(
    venue: Venue,
    *,
    key: str,
    address: str,
    memo: str = "",
    asset: str = "XETH",
    method: str = "Ether",
) -> None:
    """Save (or repoint) a withdrawal key in the Kraken spot sandbox account."""
    sandbox = sandbox_for("kraken")
    api_key = venue.credentials.api_key
    with sandbox.store.tx() as tx:
        account = sandbox.account(tx, api_key)
    saved = [a for a in account["addresses"] if a["key"] != key]
    saved.append(
        {
            "key": key,
            "asset": asset,
            "method": method,
            "address": address,
            "memo": memo,
            "verified": True,
        }
    )
    sandbox.account_upsert(api_key, addresses=saved)


def embed_repoint_key(venue: Venue, *, key: str, address: str) -> None:
    sandbox = sandbox_for("kraken_embed")
    api_key = venue.credentials.api_key
    with sandbox.store.tx() as tx:
        account = sandbox.account(tx, api_key)
    account["addresses"][key]["address"] = address
    sandbox.account_upsert(api_key, addresses=account["addresses"])


def propose(user: Any, venue: Venue, code: str, **overrides: Any) -> WhitelistedAddress:
    values = {
        "asset": "ETH",
        "network": "Ethereum",
        "address": NEW_ETH,
        "label": "ETH payroll",
        "venue_key": "eth-new",
        "memo": "",
    } | overrides
    return services.address_propose(
        proposer=user, venue_id=venue.pk, code=code, ip="198.51.100.20", **values
    )


@pytest.fixture
def new_key(venue):
    kraken_save_key(venue, key="eth-new", address=NEW_ETH)
    return "eth-new"


@pytest.fixture
def proposal(carol, venue, new_key, fresh_code):
    return propose(carol, venue, fresh_code(carol))
