"""The policy as data: rule matching and precedence, what a valid policy is, the readable diff."""

from __future__ import annotations

from decimal import Decimal

import pytest

from policies.models import Rule
from policies.rulebook import (
    PolicyError,
    policy_diff,
    policy_payload_clean,
    prices_diff,
    prices_payload_clean,
    rule_first_match,
)

NAMES = {"venue": {1: "Kraken", 2: "KuCoin"}, "destination": {7: "Cold wallet"}}


def rule(position: int, **fields) -> Rule:
    return Rule(position=position, **fields)


def match(rules, *, venue=1, asset="BTC", destination=7, amount="1") -> int:
    return rule_first_match(
        rules, venue_id=venue, asset=asset, destination_id=destination, amount=Decimal(amount)
    ).position


RULES = [
    rule(1, asset="BTC", amount_above=Decimal(5), quorum=2, required_role="treasury_lead"),
    rule(2, asset="BTC", venue_id=2, quorum=2),
    rule(3, destination_id=7, asset="ETH", amount_up_to=Decimal(10)),
    rule(4),
]


@pytest.mark.parametrize(
    ("kwargs", "position"),
    [
        ({"amount": "5.000000000000000001"}, 1),  # just above the band's lower bound
        ({"amount": "5"}, 4),  # the lower bound is exclusive
        ({"amount": "6", "venue": 2}, 1),  # first match wins over the venue rule after it
        ({"amount": "1", "venue": 2}, 2),
        ({"asset": "eth", "amount": "10"}, 3),  # the upper bound is inclusive, assets any case
        ({"asset": "ETH", "amount": "10.1"}, 4),
        ({"asset": "ETH", "destination": 8, "amount": "1"}, 4),
        ({"asset": "USDT", "amount": "1000000"}, 4),  # the default catches the rest
    ],
)
def test_the_first_matching_rule_in_order_wins(kwargs, position):
    assert match(RULES, **kwargs) == position


def test_order_is_by_position_not_by_list_order():
    assert match(list(reversed(RULES)), amount="6") == 1


def default(**fields):
    return {"quorum": 1, **fields}


def test_a_valid_policy_ends_with_a_catch_all_default_rule():
    with pytest.raises(PolicyError, match="last rule is the default"):
        policy_payload_clean({"rules": [default(asset="BTC")]})
    with pytest.raises(PolicyError, match="at least its default"):
        policy_payload_clean({"rules": []})


def test_a_catch_all_before_the_end_is_refused_as_it_hides_the_rules_after_it():
    with pytest.raises(PolicyError, match="Rule 1 matches everything"):
        policy_payload_clean({"rules": [default(quorum=2), default(asset="BTC"), default()]})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount_above": "5"}, "needs an asset"),
        ({"daily_amount": "5"}, "needs an asset"),
        ({"asset": "BTC", "amount_above": "5", "amount_up_to": "5"}, "upper bound"),
        ({"asset": "BTC", "amount_above": "five"}, "not an amount"),
        ({"asset": "BTC", "amount_above": "-1"}, "zero or more"),
        ({"asset": "BTC", "amount_above": "NaN"}, "zero or more"),
        ({"asset": "BTC", "quorum": "0"}, "from 1 to 5"),
        ({"asset": "BTC", "quorum": "9"}, "from 1 to 5"),
        ({"asset": "BTC", "required_role": "king"}, "not a role"),
        ({"asset": "BTC", "max_per_withdrawal": "0.0000000000000000001"}, "decimal places"),
    ],
)
def test_bad_rules_are_refused_with_the_rule_and_the_reason(fields, message):
    with pytest.raises(PolicyError, match=message) as refused:
        policy_payload_clean({"rules": [default(**fields), default()]})
    assert refused.value.message.startswith("Rule 1")


def test_a_clean_policy_keeps_decimals_as_exact_strings():
    payload = policy_payload_clean(
        {"rules": [default(asset="btc", amount_above="5.10", daily_amount="20"), default()]}
    )
    first = payload["rules"][0]
    assert first["asset"] == "BTC"
    assert first["amount_above"] == "5.1" and first["daily_amount"] == "20"
    assert payload["rules"][1]["expiry_hours"] == 72


def test_the_diff_names_each_changed_field_of_each_rule_in_words():
    old = policy_payload_clean({"rules": [default(asset="BTC", amount_above="5"), default()]})
    new = policy_payload_clean(
        {
            "rules": [
                default(asset="BTC", amount_above="5", quorum=2, required_role="treasury_lead"),
                default(asset="ETH", venue=2, daily_count=10),
                default(),
            ]
        }
    )
    lines = policy_diff(old, new, NAMES)
    assert lines == [
        "Rule 1 (BTC above 5): approvers 1 → 2; one approver must be none → treasury lead",
        "Rule 2 added: ETH on KuCoin, needs 1, 24 h count (venue and asset) 10, expires after 72 h",
        "Rule 3 (default): moved from position 2",
    ]
    assert policy_diff(new, new, NAMES) == []
    assert policy_diff(new, old, NAMES)[-1].startswith("Rule 2 removed: ETH on KuCoin")


def test_a_rule_matching_exactly_what_an_earlier_one_does_is_refused():
    with pytest.raises(PolicyError, match="Rule 2 matches exactly what rule 1 does"):
        policy_payload_clean({"rules": [default(asset="BTC"), default(asset="btc"), default()]})


def test_prices_need_a_date_and_a_positive_price_and_diff_per_asset():
    with pytest.raises(PolicyError, match="date"):
        prices_payload_clean({"as_of": "", "prices": {"BTC": "60000"}})
    with pytest.raises(PolicyError, match="above zero"):
        prices_payload_clean({"as_of": "2026-11-28", "prices": {"BTC": "0"}})
    old = prices_payload_clean({"as_of": "2026-11-27", "prices": {"BTC": "60000", "ETH": "3000"}})
    new = prices_payload_clean({"as_of": "2026-11-28", "prices": {"btc": "61000"}})
    assert prices_diff(old, new) == [
        "Prices as of 2026-11-28 (were 2026-11-27)",
        "BTC: 60000 → 61000 USD",
        "ETH: 3000 → no price USD",
    ]
