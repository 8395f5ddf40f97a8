"""The policy and price pages: who sees them, proposing through the form, approving through
the page by a second whitelist admin, refusals shown on the page, and the approval panel."""

from __future__ import annotations

from decimal import Decimal

import pytest

from policies.models import PolicyVersion, PriceTable, Proposal, ProposalState
from tests.factories import policy_install
from tests.withdrawals.test_services import approved, create

pytestmark = pytest.mark.django_db


def rules_post(rows, **settings) -> dict[str, str]:
    data = {
        "rules-TOTAL_FORMS": str(len(rows)),
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "30",
        "settings-median_multiple": "3",
        "settings-business_hours_start": "8",
        "settings-business_hours_end": "18",
        "settings-weekdays_only": "on",
        "settings-rubber_stamp_seconds": "10",
    }
    data.update({f"settings-{k}": v for k, v in settings.items()})
    for i, row in enumerate(rows):
        for field, value in row.items():
            data[f"rules-{i}-{field}"] = str(value)
    return data


TWO_TIERS = [
    {"asset": "BTC", "amount_above": "5", "quorum": 2, "required_role": "treasury_lead"},
    {"quorum": 1, "expiry_hours": 72},
]


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("carol", 200), ("dave", 200), ("mallory", 403)],
)
def test_everyone_with_a_role_reads_the_policy_and_prices(who, status, personas, login):
    client = login(personas[who])
    assert client.get("/policy/").status_code == status
    assert client.get("/policy/prices/").status_code == status


@pytest.mark.parametrize("who", ["alice", "bob", "dave", "mallory"])
def test_only_whitelist_admins_reach_the_proposal_form(who, personas, login):
    client = login(personas[who])
    assert client.get("/policy/propose/").status_code == 403
    assert client.post("/policy/propose/", rules_post(TWO_TIERS)).status_code == 403
    assert not Proposal.objects.exists()


def test_carol_proposes_through_the_form_and_erin_approves_on_the_page(
    carol, erin, login, fresh_code
):
    carol_client = login(carol)
    form = carol_client.get("/policy/propose/")
    assert form.status_code == 200 and b'name="rules-0-quorum"' in form.content

    response = carol_client.post("/policy/propose/", rules_post(TWO_TIERS))
    assert response.status_code == 302
    proposal = Proposal.objects.get()
    page = carol_client.get("/policy/").content.decode()
    assert "Rule 1 added: BTC above 5, needs 2, one a treasury lead" in page
    assert "a second whitelist admin must approve it" in page
    assert 'name="code"' not in page  # no approve form for the proposer

    own = carol_client.post(f"/policy/proposals/{proposal.pk}/approve/", {"code": "123456"})
    assert own.status_code == 400
    assert PolicyVersion.objects.count() == 1

    erin_client = login(erin)
    assert 'name="code"' in erin_client.get("/policy/").content.decode()
    done = erin_client.post(f"/policy/proposals/{proposal.pk}/approve/", {"code": fresh_code(erin)})
    assert done.status_code == 302
    assert PolicyVersion.objects.order_by("-number").first().number == 2
    assert "treasury lead" in erin_client.get("/policy/").content.decode()


def test_a_bad_policy_is_refused_on_the_page_and_nothing_saved(carol, login):
    rows = [{"quorum": 2}, {"quorum": 1}]
    response = login(carol).post("/policy/propose/", rules_post(rows))
    assert response.status_code == 400
    assert "Rule 1 matches everything" in response.content.decode()
    assert not Proposal.objects.exists()


def test_a_float_looking_amount_is_kept_exact(carol, login):
    rows = [{"asset": "ETH", "daily_amount": "0.1"}, {"quorum": 1}]
    login(carol).post("/policy/propose/", rules_post(rows))
    assert Proposal.objects.get().payload["rules"][0]["daily_amount"] == "0.1"


def test_a_wrong_code_is_shown_next_to_the_code_field(carol, erin, login):
    login(carol).post("/policy/propose/", rules_post(TWO_TIERS))
    proposal = Proposal.objects.get()
    response = login(erin).post(f"/policy/proposals/{proposal.pk}/approve/", {"code": "000000"})
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert Proposal.objects.get().state == ProposalState.PROPOSED


def test_the_proposer_withdraws_on_the_page(carol, login):
    client = login(carol)
    client.post("/policy/propose/", rules_post(TWO_TIERS))
    proposal = Proposal.objects.get()
    assert client.post(f"/policy/proposals/{proposal.pk}/decline/", {}).status_code == 302
    assert Proposal.objects.get().state == ProposalState.DECLINED


def test_prices_are_proposed_and_approved_on_their_page(carol, erin, login, fresh_code):
    data = {
        "as_of": "2026-11-27",
        "prices-TOTAL_FORMS": "2",
        "prices-INITIAL_FORMS": "0",
        "prices-MIN_NUM_FORMS": "0",
        "prices-MAX_NUM_FORMS": "100",
        "prices-0-asset": "BTC",
        "prices-0-usd": "60000",
        "prices-1-asset": "",
        "prices-1-usd": "",
    }
    assert login(carol).post("/policy/prices/propose/", data).status_code == 302
    proposal = Proposal.objects.get()
    assert "BTC: no price → 60000 USD" in login(erin).get("/policy/prices/").content.decode()
    login(erin).post(f"/policy/proposals/{proposal.pk}/approve/", {"code": fresh_code(erin)})
    assert PriceTable.objects.get().prices.get().usd == Decimal(60000)


def test_the_approve_panel_shows_what_the_rule_needs_and_the_red_flags(
    alice, bob, tina, address, login
):
    policy_install(
        {"asset": address.asset, "quorum": 2, "required_role": "treasury_lead", "label": "Big"}
    )
    withdrawal = create(alice, address)
    page = login(bob).get(f"/withdrawals/{withdrawal.pk}/").content.decode()
    assert "Needs 2 of 2 approvers, one a treasury lead (rule: Big)" in page
    assert 'data-flag="first_payment"' in page
    assert "Expires" in page
    # The requester sees no approve panel, so no flags either.
    assert (
        'data-flag="first_payment"'
        not in login(alice).get(f"/withdrawals/{withdrawal.pk}/").content.decode()
    )


def test_auditors_filter_withdrawals_by_the_red_flag_their_approval_carried(
    alice, bob, dave, address, login, fresh_code
):
    policy_install(rubber_stamp_seconds=3600)
    flagged = approved(create(alice, address), bob, fresh_code(bob))
    quiet = create(alice, address, flagged.amount * 2)
    client = login(dave)

    first = client.get("/withdrawals/?red_flag=first_payment").content.decode()
    assert f"/withdrawals/{flagged.pk}/" in first and f"/withdrawals/{quiet.pk}/" not in first
    stamped = client.get("/withdrawals/?red_flag=rubber_stamp").content.decode()
    assert f"/withdrawals/{flagged.pk}/" in stamped
    none = client.get("/withdrawals/?red_flag=near_duplicate").content.decode()
    assert f"/withdrawals/{flagged.pk}/" not in none


def test_a_rule_added_in_the_empty_row_goes_before_the_default(carol, login):
    rows = [{"quorum": 1, "ORDER": 1}, {"asset": "ETH", "quorum": 2}]
    assert login(carol).post("/policy/propose/", rules_post(rows)).status_code == 302
    rules = Proposal.objects.get().payload["rules"]
    assert [(r["asset"], r["quorum"]) for r in rules] == [("ETH", 2), ("", 1)]
