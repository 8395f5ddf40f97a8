"""The demo seeds a tiered policy, reference prices and tina, the treasury lead."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from accounts.roles import has_role
from policies import selectors
from policies.models import PolicyVersion, PriceTable

pytestmark = pytest.mark.django_db


def test_seed_demo_installs_tiers_prices_and_a_treasury_lead_once(settings):
    settings.VENUE_SANDBOXES_ENABLED = True
    # The migrations' default policy, unless an earlier test on this database emptied it.
    before = PolicyVersion.objects.count()
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())

    tina = User.objects.get(username="tina")
    assert has_role(tina, "approver") and has_role(tina, "treasury_lead")
    assert PolicyVersion.objects.count() == before + 1 and PriceTable.objects.count() == 1
    rules = selectors.policy_rules(selectors.policy_current())
    big = rules[0]
    assert (big.asset, big.amount_above, big.quorum, big.required_role) == (
        "BTC",
        Decimal("0.5"),
        2,
        "treasury_lead",
    )
    assert rules[1].quorum == 1 and rules[1].daily_amount == Decimal(20)
    assert selectors.usd_value(asset="BTC", amount=Decimal("0.5"))[0] == Decimal("30000.00")
