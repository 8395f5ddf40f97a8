"""The policy applied to withdrawals: the rule recorded at request, the per-withdrawal maximum
and the velocity limits, a quorum with a required role, red flags, rubber stamps, expiry."""

from __future__ import annotations

import datetime
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from tests.factories import good_amount, policy_install
from tests.withdrawals.test_services import approve, approved, create, no_tasks, reload
from withdrawals import policy, services
from withdrawals.models import Approval, State, WithdrawalRequest
from withdrawals.services import WithdrawalError

pytestmark = pytest.mark.django_db

ALWAYS_OPEN = {"business_hours_start": 0, "business_hours_end": 24, "weekdays_only": False}


@pytest.fixture
def amount(address) -> Decimal:
    return good_amount(address.venue)


def install(*rules, **settings):
    return policy_install(*rules, **{**ALWAYS_OPEN, **settings})


# --- the rule at request time -------------------------------------------------------------


def test_a_request_records_the_rule_that_matched_and_what_it_decided(alice, address, amount):
    version = install(
        {"asset": address.asset, "amount_up_to": amount / 2, "quorum": 1},
        {"asset": address.asset, "quorum": 2, "required_role": "treasury_lead", "expiry_hours": 5},
    )
    withdrawal = create(alice, address, amount)
    rule = withdrawal.policy_rule
    assert (rule.policy, rule.position) == (version, 2)
    assert (withdrawal.approval_quorum, withdrawal.approval_role) == (2, "treasury_lead")
    # Set from the same clock reading as the request, a moment before the row's own stamp.
    assert abs(withdrawal.expires_at - withdrawal.created_at - timedelta(hours=5)) < timedelta(
        seconds=5
    )
    data = AuditEvent.objects.get(action="withdrawal.requested").data
    assert (data["policy_version"], data["rule"], data["quorum"]) == (version.number, 2, 2)


def test_a_later_policy_change_does_not_change_what_a_pending_request_needs(
    alice, bob, address, amount, fresh_code
):
    install({"asset": address.asset, "quorum": 2})
    withdrawal = create(alice, address, amount)
    install()  # quorum 1 for everything from now on
    approve(withdrawal, bob, fresh_code(bob))
    assert reload(withdrawal).state == State.PENDING_APPROVAL


def test_above_the_per_withdrawal_maximum_is_refused_and_nothing_saved(alice, address, amount):
    install({"asset": address.asset, "max_per_withdrawal": amount - Decimal("0.0001")})
    with pytest.raises(WithdrawalError, match="Above the most one withdrawal may move") as no:
        create(alice, address, amount)
    assert no.value.field == "amount"
    assert WithdrawalRequest.objects.count() == 0


# --- velocity -----------------------------------------------------------------------------


def test_a_request_over_the_24h_amount_says_which_limit_what_is_used_and_when_room_frees(
    alice, bob, bianca, address, amount, fresh_code
):
    install({"asset": address.asset, "daily_amount": amount * Decimal("2.5")})
    first = approved(create(alice, address, amount), bob, fresh_code(bob))
    approved(create(alice, address, amount), bianca, fresh_code(bianca))

    with pytest.raises(WithdrawalError) as refused:
        create(alice, address, amount)

    message = refused.value.message
    limit = f"{(amount * Decimal('2.5')).normalize():f} {address.asset}"
    used = f"{(amount * 2).normalize():f} {address.asset}"
    assert f"24 h amount for {address.asset} on {address.venue.name} limit of {limit}" in message
    assert f"{used} used in the last 24 h" in message
    frees = timezone.localtime(reload(first).approved_at + timedelta(hours=24))
    assert f"Room for it frees at {frees:%Y-%m-%d %H:%M}" in message
    assert WithdrawalRequest.objects.count() == 2


def test_pending_requests_do_not_count_but_the_approval_reaching_quorum_does(
    alice, bob, bianca, address, amount, fresh_code
):
    install({"destination": address, "destination_daily_count": 1})
    first, second = create(alice, address, amount), create(alice, address, amount)
    approved(first, bob, fresh_code(bob))

    with no_tasks(), pytest.raises(WithdrawalError, match="24 h count for destination"):
        approve(second, bianca, fresh_code(bianca))

    assert reload(second).state == State.PENDING_APPROVAL
    assert not Approval.objects.filter(withdrawal=second).exists()


def test_a_rejected_or_cancelled_withdrawal_frees_its_place(
    alice, bob, bianca, address, amount, fresh_code
):
    install({"asset": address.asset, "daily_count": 1})
    first = approved(create(alice, address, amount), bob, fresh_code(bob))
    services.withdrawal_cancel(withdrawal_id=first.pk, requester=alice)
    approved(create(alice, address, amount), bianca, fresh_code(bianca))


def test_room_frees_when_the_oldest_use_leaves_the_window():
    now = timezone.now()
    uses = [(now - timedelta(hours=20), Decimal(3)), (now - timedelta(hours=2), Decimal(4))]
    at = policy._frees_at(uses, limit=Decimal(10), adding=Decimal(5))
    assert at == now - timedelta(hours=20) + timedelta(hours=24)
    assert policy._frees_at(uses, limit=Decimal(10), adding=Decimal(11)) is None


# --- quorum with a required role ----------------------------------------------------------


def test_two_approvers_one_a_treasury_lead(alice, bob, bianca, tina, address, amount, fresh_code):
    install({"asset": address.asset, "quorum": 2, "required_role": "treasury_lead"})
    withdrawal = create(alice, address, amount)

    approve(withdrawal, bob, fresh_code(bob))
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    with pytest.raises(WithdrawalError, match="must come from a treasury lead"):
        approve(withdrawal, bianca, fresh_code(bianca))
    with no_tasks():
        approve(withdrawal, tina, fresh_code(tina))
    assert reload(withdrawal).state == State.APPROVED


def test_a_treasury_lead_alone_is_not_a_quorum_of_two(
    alice, bob, tina, address, amount, fresh_code
):
    install({"asset": address.asset, "quorum": 2, "required_role": "treasury_lead"})
    withdrawal = create(alice, address, amount)
    approve(withdrawal, tina, fresh_code(tina))
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    with no_tasks():
        approve(withdrawal, bob, fresh_code(bob))
    assert reload(withdrawal).state == State.APPROVED


def test_the_panel_says_how_many_of_how_many_and_which_rule(
    alice, bob, bianca, tina, address, amount
):
    install(
        {
            "asset": address.asset,
            "amount_above": amount / 2,
            "quorum": 2,
            "required_role": "treasury_lead",
        }
    )
    withdrawal = create(alice, address, amount)
    context = policy.approval_context(withdrawal=withdrawal, viewer=bob)
    above = f"{(amount / 2).normalize():f}"
    assert context["needs"] == (
        f"needs 2 of 3 approvers, one a treasury lead (rule: {address.asset} above {above})"
    )
    assert context["expires_at"] == withdrawal.expires_at


# --- red flags ----------------------------------------------------------------------------


def codes(withdrawal, now=None):
    return [f.code for f in policy.red_flags(reload(withdrawal), now=now or timezone.now())]


def test_the_first_payment_to_a_destination_is_flagged_and_the_next_is_not(
    alice, bob, address, amount, fresh_code
):
    install()
    first = create(alice, address, amount)
    assert codes(first) == ["first_payment"]
    approved(first, bob, fresh_code(bob))
    assert codes(create(alice, address, amount * 2)) == []


def test_same_destination_and_amount_within_24h_is_a_near_duplicate(alice, address, amount):
    install()
    first = create(alice, address, amount)
    second = create(alice, address, amount)
    assert "near_duplicate" in codes(second) and "near_duplicate" in codes(first)
    WithdrawalRequest.objects.filter(pk=first.pk).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert "near_duplicate" not in codes(second)


def test_an_amount_above_n_times_the_median_is_flagged(alice, bob, address, amount, fresh_code):
    install(median_multiple=Decimal(3))
    approved(create(alice, address, amount), bob, fresh_code(bob))
    assert "above_median" not in codes(create(alice, address, amount * 3))
    assert "above_median" in codes(create(alice, address, amount * 4))


def test_above_80_percent_of_a_limit_is_flagged(alice, bob, address, amount, fresh_code):
    install({"asset": address.asset, "daily_amount": amount * 10})
    approved(create(alice, address, amount * 7), bob, fresh_code(bob))
    assert "near_limit" not in codes(create(alice, address, amount))
    assert "near_limit" in codes(create(alice, address, amount * Decimal("1.5")))


def test_outside_business_hours_is_flagged(alice, address, amount):
    install(business_hours_start=8, business_hours_end=18, weekdays_only=True)
    withdrawal = create(alice, address, amount)
    tuesday = datetime.datetime(2026, 11, 24, tzinfo=datetime.UTC)
    assert "outside_hours" not in codes(withdrawal, tuesday.replace(hour=8))
    assert "outside_hours" in codes(withdrawal, tuesday.replace(hour=18))
    assert "outside_hours" in codes(withdrawal, tuesday.replace(hour=7, minute=59))
    assert "outside_hours" in codes(withdrawal, tuesday.replace(day=29, hour=12))  # Sunday


def test_the_flags_shown_and_a_rubber_stamp_are_recorded_with_the_approval(
    alice, bob, address, amount, fresh_code
):
    install(rubber_stamp_seconds=3600)
    withdrawal = create(alice, address, amount)
    approved(withdrawal, bob, fresh_code(bob))
    approval = Approval.objects.get(withdrawal=withdrawal)
    assert approval.red_flags == "first_payment"
    assert approval.rubber_stamp is True
    assert Decimal(0) <= approval.review_seconds < Decimal(3600)
    event = AuditEvent.objects.get(action="withdrawal.approved")
    assert event.data["red_flags"] == "first_payment" and event.data["rubber_stamp"] is True


def test_an_approval_after_the_threshold_is_no_rubber_stamp(
    alice, bob, address, amount, fresh_code
):
    install(rubber_stamp_seconds=5)
    withdrawal = create(alice, address, amount)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    quote.__class__.objects.filter(pk=quote.pk).update(
        fetched_at=timezone.now() - timedelta(seconds=30)
    )
    with no_tasks():
        approve(withdrawal, bob, fresh_code(bob), quote=quote)
    approval = Approval.objects.get(withdrawal=withdrawal)
    assert approval.rubber_stamp is False and approval.review_seconds >= 30


# --- expiry -------------------------------------------------------------------------------


def test_a_request_expires_when_its_rule_says(alice, address, amount):
    install({"asset": address.asset, "expiry_hours": 1})
    due = create(alice, address, amount)
    waiting = create(alice, address, amount + 1)
    WithdrawalRequest.objects.filter(pk=due.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.withdrawals_expire_stale() == 1
    assert reload(due).state == State.EXPIRED
    assert reload(waiting).state == State.PENDING_APPROVAL
