"""A policy or price change takes two whitelist admins: one proposes, another approves with a
fresh TOTP code. Each approval writes the next version; the trail carries the readable diff."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from policies import selectors, services
from policies.models import PolicyVersion, PriceTable, Proposal, ProposalState
from policies.rulebook import PolicyError

pytestmark = pytest.mark.django_db

TWO_TIERS = {
    "settings": {
        "median_multiple": "3",
        "business_hours_start": 8,
        "business_hours_end": 18,
        "weekdays_only": True,
        "rubber_stamp_seconds": 10,
    },
    "rules": [
        {"asset": "BTC", "amount_above": "5", "quorum": 2, "required_role": "treasury_lead"},
        {"quorum": 1},
    ],
}


def propose(actor, raw=TWO_TIERS):
    return services.policy_change_propose(actor=actor, raw=raw, ip="198.51.100.1")


def test_a_fresh_database_has_version_one_with_a_default_rule(db):
    version = services.policy_in_force()
    assert version.number == 1
    assert [(r.position, r.quorum) for r in version.rules.all()] == [(1, 1)]


def test_carol_proposes_and_erin_approves_with_totp_writing_version_two(carol, erin, fresh_code):
    proposal = propose(carol)
    assert selectors.policy_current().number == 1  # nothing changes before the second person

    services.proposal_approve(
        proposal_id=proposal.pk, approver=erin, code=fresh_code(erin), ip="198.51.100.2"
    )

    current = selectors.policy_current()
    assert current.number == 2 and current.proposal_id == proposal.pk
    first, default = current.rules.order_by("position")
    assert (first.asset, first.amount_above, first.quorum, first.required_role) == (
        "BTC",
        Decimal(5),
        2,
        "treasury_lead",
    )
    assert default.quorum == 1
    events = list(AuditEvent.objects.filter(action__startswith="policy.").order_by("seq"))
    assert [e.action for e in events] == ["policy.change_proposed", "policy.change_approved"]
    assert events[0].actor == carol and events[1].actor == erin
    assert "Rule 1 added: BTC above 5, needs 2, one a treasury lead" in events[1].message
    assert "Rule 2 (default): moved from position 1" in events[1].message
    assert events[1].data["diff"] == events[0].data["diff"]


def test_carol_cannot_approve_her_own_proposal(carol, fresh_code):
    proposal = propose(carol)
    with pytest.raises(PolicyError, match="second whitelist admin"):
        services.proposal_approve(proposal_id=proposal.pk, approver=carol, code=fresh_code(carol))
    assert Proposal.objects.get().state == ProposalState.PROPOSED
    assert PolicyVersion.objects.count() == 1


def test_the_database_refuses_a_self_approved_proposal_too(carol):
    proposal = propose(carol)
    proposal.state, proposal.decided_by = ProposalState.APPROVED, carol
    with pytest.raises(Exception, match="policy_proposal_four_eyes"):
        proposal.save()


@pytest.mark.parametrize("who", ["bob", "dave", "alice"])
def test_only_whitelist_admins_propose_or_approve(who, alice, bob, dave, carol, fresh_code):
    someone = {"alice": alice, "bob": bob, "dave": dave}[who]
    with pytest.raises(PermissionDenied):
        propose(someone)
    proposal = propose(carol)
    with pytest.raises(PolicyError, match="Only whitelist admins"):
        services.proposal_approve(
            proposal_id=proposal.pk, approver=someone, code=fresh_code(someone)
        )
    assert PolicyVersion.objects.count() == 1


def test_a_wrong_code_approves_nothing(carol, erin):
    proposal = propose(carol)
    with pytest.raises(PolicyError) as refused:
        services.proposal_approve(proposal_id=proposal.pk, approver=erin, code="000000")
    assert refused.value.field == "code"
    assert PolicyVersion.objects.count() == 1


def test_one_open_proposal_at_a_time_and_a_proposal_that_changes_nothing_is_refused(carol, erin):
    with pytest.raises(PolicyError, match="changes nothing"):
        propose(carol, {"settings": TWO_TIERS["settings"], "rules": [{"quorum": 1}]})
    propose(carol)
    with pytest.raises(PolicyError, match="already waiting"):
        propose(erin, {**TWO_TIERS, "rules": [{"quorum": 2}]})


def test_the_proposer_may_withdraw_and_anyone_may_then_propose_again(carol, erin):
    proposal = propose(carol)
    services.proposal_decline(proposal_id=proposal.pk, actor=carol, reason="typo")
    assert Proposal.objects.get().state == ProposalState.DECLINED
    assert AuditEvent.objects.filter(action="policy.change_declined").count() == 1
    propose(erin)


def test_a_proposal_written_against_an_older_version_is_refused(carol, erin, fresh_code, db):
    proposal = propose(carol)
    PolicyVersion.objects.create(number=2)  # another change got in first
    with pytest.raises(PolicyError, match="changed after this was proposed"):
        services.proposal_approve(proposal_id=proposal.pk, approver=erin, code=fresh_code(erin))
    assert Proposal.objects.get().state == ProposalState.PROPOSED


def test_prices_change_under_the_same_four_eyes(carol, erin, fresh_code):
    raw = {"as_of": "2026-11-27", "prices": {"BTC": "60000.50"}}
    proposal = services.prices_change_propose(actor=carol, raw=raw)
    with pytest.raises(PolicyError, match="second whitelist admin"):
        services.proposal_approve(proposal_id=proposal.pk, approver=carol, code=fresh_code(carol))
    assert selectors.usd_value(asset="BTC", amount=Decimal(2)) is None

    services.proposal_approve(proposal_id=proposal.pk, approver=erin, code=fresh_code(erin))

    table = PriceTable.objects.get()
    assert str(table.as_of) == "2026-11-27"
    value, as_of = selectors.usd_value(asset="btc", amount=Decimal("0.5"))
    assert value == Decimal("30000.25") and as_of == table.as_of
    assert [e.action for e in AuditEvent.objects.order_by("seq")] == [
        "price.change_proposed",
        "price.change_approved",
    ]
