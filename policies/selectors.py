"""Reads of the policy and the reference prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from venues.models import Venue
from whitelist.models import WhitelistedAddress

from . import rulebook
from .models import PolicyVersion, PriceTable, Proposal, ProposalKind, ProposalState, Rule


def policy_current() -> PolicyVersion | None:
    """The version in force (see ``services.policy_in_force`` for why it may be missing)."""
    return PolicyVersion.objects.order_by("-number").first()


def policy_rules(version: PolicyVersion) -> list[Rule]:
    return list(version.rules.select_related("venue", "destination").order_by("position"))


def policy_payload(version: PolicyVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "settings": {
            "median_multiple": format(version.median_multiple.normalize(), "f"),
            "business_hours_start": version.business_hours_start,
            "business_hours_end": version.business_hours_end,
            "weekdays_only": version.weekdays_only,
            "rubber_stamp_seconds": version.rubber_stamp_seconds,
        },
        "rules": [rulebook.rule_as_payload(rule) for rule in policy_rules(version)],
    }


def names_for_display() -> dict[str, dict[int, str]]:
    """Venue and destination names by id, for describing rules in words."""
    return {
        "venue": dict(Venue.objects.values_list("pk", "name")),
        "destination": dict(WhitelistedAddress.objects.values_list("pk", "label")),
    }


def rule_description(rule: Rule) -> str:
    return rulebook.rule_describe(rulebook.rule_as_payload(rule), names_for_display())


def prices_current() -> PriceTable | None:
    return PriceTable.objects.order_by("-number").prefetch_related("prices").first()


def prices_payload(table: PriceTable | None) -> dict[str, Any] | None:
    if table is None:
        return None
    return {
        "as_of": table.as_of.isoformat(),
        "prices": {p.asset: format(p.usd.normalize(), "f") for p in table.prices.all()},
    }


def usd_value(*, asset: str, amount: Decimal) -> tuple[Decimal, Any] | None:
    """(value in USD to the cent, date of the price), or None where no price is set."""
    table = prices_current()
    if table is None:
        return None
    price = next((p for p in table.prices.all() if p.asset == asset.upper()), None)
    if price is None:
        return None
    return (amount * price.usd).quantize(Decimal("0.01")), table.as_of


def proposal_open(kind: str) -> Proposal | None:
    return (
        Proposal.objects.filter(kind=kind, state=ProposalState.PROPOSED)
        .select_related("proposed_by")
        .first()
    )


def proposal_diff(proposal: Proposal) -> list[str]:
    """The proposal against what is in force now."""
    if proposal.kind == ProposalKind.POLICY:
        return rulebook.policy_diff(
            policy_payload(policy_current()), proposal.payload, names_for_display()
        )
    return rulebook.prices_diff(prices_payload(prices_current()), proposal.payload)


def proposals_recent(kind: str, limit: int = 10) -> list[Proposal]:
    return list(
        Proposal.objects.filter(kind=kind)
        .exclude(state=ProposalState.PROPOSED)
        .select_related("proposed_by", "decided_by")[:limit]
    )
