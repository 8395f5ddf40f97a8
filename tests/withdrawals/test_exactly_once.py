"""Exactly once at every edge: the reproductions of a review, each as a test.

1. a refused *read* of the venue's history never books a withdrawal failed;
2. a stalled worker whose lease ran out never sends (and a late send is caught);
3. Kraken Embed's re-submit in reconciliation runs the same checks as a first submission;
4. the send re-checks what was approved (venue account, quote expiry, fee);
5. what reconciliation cannot settle goes to people, who settle it four-eyed;
7. a system retry never writes another ``withdrawal.approved``.

Personas: alice requests, bob and bianca approve, carol is a whitelist admin, dave audits.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from tests.factories import VenueFactory, WhitelistedAddressFactory, policy_install
from tests.withdrawals.test_services import (
    approve,
    approved,
    create,
    no_tasks,
    reload,
    sandbox,
    timeline,
)
from venues.interface import VenueAmbiguous, VenueState
from venues.kucoin import sandbox as kucoin_sandbox
from venues.models import SubmitAttempt
from venues.registry import client_for
from venues.sandbox.registry import sandbox_for
from whitelist.models import AddressState
from withdrawals import services
from withdrawals.models import (
    DuplicatePayment,
    Resolution,
    State,
    SubmissionAttempt,
    WithdrawalRequest,
)
from withdrawals.services import WithdrawalError, withdrawal_spec

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def pending_at_venue(settings):
    """Sandbox withdrawals stay pending, so ``submitted`` (and a cancel) is observable."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0


def stalled_attempt(withdrawal: WithdrawalRequest) -> int:
    """A worker wins ``approved -> submitting`` and then stalls: its attempt never runs on."""
    with mock.patch.object(services, "_attempt_run") as run, no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    number = run.call_args.args[1]
    assert reload(withdrawal).state == State.SUBMITTING
    return number


def let_lease_run_out(withdrawal: WithdrawalRequest) -> None:
    """As if the production clocks had run past the attempt's deadline and its margin."""
    past = timezone.now() - timedelta(hours=1)
    WithdrawalRequest.objects.filter(pk=withdrawal.pk).update(
        submit_deadline_at=past, submit_started_at=past
    )
    SubmissionAttempt.objects.filter(withdrawal=withdrawal).update(
        deadline_at=past, started_at=past
    )


def reconcile(withdrawal: WithdrawalRequest) -> WithdrawalRequest:
    with no_tasks():
        services.withdrawal_reconcile(withdrawal_id=withdrawal.pk)
    return reload(withdrawal)


def submit(withdrawal: WithdrawalRequest) -> WithdrawalRequest:
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    return reload(withdrawal)


def unknown_after_timeout(withdrawal: WithdrawalRequest, fault: str) -> WithdrawalRequest:
    venue_sandbox = sandbox_for(withdrawal.venue.kind)
    venue_sandbox.inject(fault, path=venue_sandbox.SUBMIT_PATH, method="POST")
    after = submit(withdrawal)
    assert after.state == State.OUTCOME_UNKNOWN
    return after


# --- 1. a refused read is not a refusal of the withdrawal ------------------------------------


@pytest.mark.parametrize("error", ["EAPI:Invalid key", "EGeneral:Permission denied"])
def test_a_refused_history_read_leaves_it_unknown_and_retries_with_backoff(
    alice, bob, address, fresh_code, error
):
    withdrawal = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_after_accept"
    )
    sandbox().inject("error", path=sandbox().HISTORY_PATH, error=error, times=5)

    after = reconcile(withdrawal)

    assert after.state == State.OUTCOME_UNKNOWN  # never "failed": the venue has it
    assert after.reconcile_failures == 1
    assert after.reconcile_after > timezone.now()
    assert error in after.status_detail
    assert after.attention_since is None  # not yet: reconciliation keeps trying
    assert "withdrawal.failed" not in timeline(withdrawal)
    # Backoff: asked again at once, it does not call the venue.
    assert reconcile(withdrawal).reconcile_failures == 1


def test_an_unknown_outcome_unreadable_for_long_goes_to_people(
    alice, bob, address, fresh_code, settings
):
    settings.RECONCILE_ATTENTION_SECONDS = 0
    withdrawal = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_after_accept"
    )
    sandbox().inject("error", path=sandbox().HISTORY_PATH, error="EAPI:Invalid key")

    after = reconcile(withdrawal)

    assert after.state == State.OUTCOME_UNKNOWN
    assert after.attention_since is not None
    assert "EAPI:Invalid key" in after.attention_reason
    assert timeline(withdrawal)[-1] == "withdrawal.attention_raised"


def test_once_the_venue_reads_again_reconciliation_finds_it(alice, bob, address, fresh_code):
    withdrawal = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_after_accept"
    )
    sandbox().inject("error", path=sandbox().HISTORY_PATH, error="EAPI:Invalid key")
    reconcile(withdrawal)
    WithdrawalRequest.objects.filter(pk=withdrawal.pk).update(reconcile_after=None)

    after = reconcile(withdrawal)

    assert after.state == State.SUBMITTED
    assert sandbox().count_withdrawals() == 1


# --- 2. a stalled worker cannot outlive its lease ---------------------------------------------


def test_a_superseded_attempt_never_sends(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    first = stalled_attempt(withdrawal)
    let_lease_run_out(withdrawal)
    assert reconcile(withdrawal).state == State.APPROVED  # the venue has no trace of it
    assert submit(withdrawal).state == State.SUBMITTED  # the second attempt sends
    assert sandbox().count_withdrawals() == 1

    with no_tasks():
        services._attempt_run(withdrawal.pk, first)  # the first worker wakes up

    assert sandbox().count_withdrawals() == 1
    attempt = SubmissionAttempt.objects.get(withdrawal=withdrawal, number=first)
    assert attempt.superseded
    assert attempt.outcome == SubmissionAttempt.Outcome.SUPERSEDED
    assert attempt.sent_at is None
    assert reload(withdrawal).state == State.SUBMITTED


def test_reconciliation_leaves_an_attempt_alone_while_its_lease_runs(
    alice, bob, address, fresh_code
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    stalled_attempt(withdrawal)

    assert reconcile(withdrawal).state == State.SUBMITTING
    assert withdrawal.pk not in services.withdrawals_needing_attention()["reconcile"]


def test_an_attempt_past_its_deadline_sends_nothing(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    number = stalled_attempt(withdrawal)
    SubmissionAttempt.objects.filter(withdrawal=withdrawal).update(
        deadline_at=timezone.now() - timedelta(seconds=1)
    )

    with no_tasks():
        services._attempt_run(withdrawal.pk, number)

    assert sandbox().count_withdrawals() == 0
    after = reload(withdrawal)
    assert after.state == State.APPROVED  # nothing was sent: safe to try again
    assert "deadline" in after.status_detail


def test_a_late_receipt_is_recorded_and_the_duplicate_cancelled_at_the_venue(
    alice, bob, address, fresh_code
):
    """The first worker passed its fence, then stalled before its bytes left. Kraken spot
    cannot make a send conditional: the late duplicate is detected, cancelled and raised."""
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    first = stalled_attempt(withdrawal)
    let_lease_run_out(withdrawal)
    reconcile(withdrawal)
    kept = submit(withdrawal).venue_reference
    # The stalled send leaves at last, for the first attempt, and the venue accepts it.
    late = client_for(withdrawal.venue).submit(withdrawal_spec(withdrawal), quote=None)
    assert sandbox().count_withdrawals() == 2

    with no_tasks():
        services._attempt_finish(
            withdrawal.pk,
            first,
            services._Result(SubmissionAttempt.Outcome.ACCEPTED, reference=late.reference),
        )
    services.withdrawal_duplicates_cancel(withdrawal_id=withdrawal.pk)

    attempt = SubmissionAttempt.objects.get(withdrawal=withdrawal, number=first)
    assert attempt.reference == late.reference  # recorded, not dropped
    duplicate = DuplicatePayment.objects.get(withdrawal=withdrawal)
    assert duplicate.reference == late.reference
    assert duplicate.cancel_result == "cancel accepted"
    after = reload(withdrawal)
    assert after.venue_reference == kept
    states = {t.reference: t.state for t in client_for(after.venue).traces(withdrawal_spec(after))}
    assert states[late.reference] in {VenueState.CANCELLED, VenueState.PENDING}
    assert "withdrawal.late_receipt" in timeline(withdrawal)
    assert "withdrawal.duplicate_detected" in timeline(withdrawal)


@pytest.mark.parametrize("history_ids", ["present", "absent"])
def test_each_status_refresh_looks_for_a_second_withdrawal_with_our_request_id(
    alice, bob, fresh_code, history_ids
):
    """KuCoin carries our request id as the remark: a second send shows in its history. Where
    the history gives the item its id, the duplicate is cancelled at KuCoin; where it does not
    (KuCoin's own example has none), it is raised as one nobody can cancel from here."""
    sandbox_for("kucoin").set_mode("history_ids", history_ids)
    venue = VenueFactory(kind="kucoin")
    address = WhitelistedAddressFactory(venue=venue)
    withdrawal = submit(approved(create(alice, address), bob, fresh_code(bob)))
    assert withdrawal.state == State.SUBMITTED
    # A late duplicate whose answer never reached us: only the venue's history knows of it.
    late = client_for(venue).submit(withdrawal_spec(withdrawal), quote=None)
    SubmitAttempt.objects.filter(reference=late.reference).delete()

    with mock.patch.object(services, "_on_commit_enqueue") as enqueued:
        services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)

    duplicate = DuplicatePayment.objects.get(withdrawal=withdrawal)
    assert any(call.args[0].name.endswith("cancel_duplicates") for call in enqueued.mock_calls)
    cancelled = services.withdrawal_duplicates_cancel(withdrawal_id=withdrawal.pk)
    duplicate.refresh_from_db()
    if history_ids == "present":
        assert duplicate.reference == late.reference
        assert cancelled == [late.reference]
        assert duplicate.cancel_result == "cancel accepted"
    else:
        assert duplicate.reference == ""
        assert cancelled == []
        assert duplicate.cancel_result.startswith("not cancellable")
    assert reload(withdrawal).state == State.SUBMITTED
    assert reload(withdrawal).venue_reference != late.reference


# --- 3. Kraken Embed's re-submit is a guarded send ------------------------------------------


@pytest.fixture
def embed_address(db):
    return WhitelistedAddressFactory(venue=VenueFactory(kind="kraken_embed"))


def test_embed_reconciliation_never_pays_a_revoked_destination(
    alice, bob, embed_address, fresh_code
):
    withdrawal = unknown_after_timeout(
        approved(create(alice, embed_address), bob, fresh_code(bob)), "timeout_before_accept"
    )
    embed_address.state = AddressState.REVOKED
    embed_address.save()

    after = reconcile(withdrawal)

    assert sandbox_for("kraken_embed").count_withdrawals() == 0
    assert after.state == State.FAILED
    assert "revoked" in after.status_detail


def test_embed_reconciliation_resends_under_the_same_key_within_the_window(
    alice, bob, embed_address, fresh_code
):
    withdrawal = unknown_after_timeout(
        approved(create(alice, embed_address), bob, fresh_code(bob)), "timeout_before_accept"
    )

    after = reconcile(withdrawal)

    assert after.state == State.SUBMITTED
    assert sandbox_for("kraken_embed").count_withdrawals() == 1
    assert list(after.attempts.values_list("number", "resubmission")) == [(1, False), (2, True)]


def test_embed_outside_the_resend_window_goes_to_people(
    alice, bob, embed_address, fresh_code, settings
):
    settings.RESUBMIT_WINDOW_SECONDS = 0
    withdrawal = unknown_after_timeout(
        approved(create(alice, embed_address), bob, fresh_code(bob)), "timeout_before_accept"
    )

    after = reconcile(withdrawal)

    assert after.state == State.OUTCOME_UNKNOWN
    assert after.attention_since is not None
    assert sandbox_for("kraken_embed").count_withdrawals() == 0


# --- 4. the send re-checks what was approved ------------------------------------------------


@pytest.mark.parametrize("field", ["account", "base_url"])
def test_a_venue_account_changed_after_approval_voids_the_approvals(
    alice, bob, address, fresh_code, field
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    venue = address.venue
    setattr(venue, field, "sandbox://kraken/other" if field == "base_url" else "other-account")
    venue.save()

    after = submit(withdrawal)

    assert sandbox().count_withdrawals() == 0
    assert after.state == State.PENDING_APPROVAL
    assert not after.approvals.filter(voided=False).exists()
    assert "changed" in after.status_detail


@pytest.fixture
def kucoin_address(db):
    return WhitelistedAddressFactory(venue=VenueFactory(kind="kucoin"))


def test_kucoin_is_quoted_again_right_before_the_send(alice, bob, kucoin_address, fresh_code):
    withdrawal = approved(create(alice, kucoin_address), bob, fresh_code(bob))
    quotes_before = withdrawal.quotes.count()

    after = submit(withdrawal)

    assert after.state == State.SUBMITTED
    assert after.quotes.count() == quotes_before + 1  # the fee the send went out under


def test_kucoin_fee_above_the_cap_at_send_goes_back_to_the_requester(
    alice, bob, kucoin_address, fresh_code, monkeypatch
):
    withdrawal = approved(create(alice, kucoin_address), bob, fresh_code(bob))
    chain = next(
        key
        for key, value in kucoin_sandbox.CHAINS.items()
        if key.startswith(f"{kucoin_address.asset}:")
    )
    raised = {**kucoin_sandbox.CHAINS[chain]}
    raised["withdrawMinFee"] = str(Decimal(raised["withdrawMinFee"]) * 3)
    monkeypatch.setitem(kucoin_sandbox.CHAINS, chain, raised)

    after = submit(withdrawal)

    assert sandbox_for("kucoin").count_withdrawals() == 0
    assert after.state == State.PENDING_APPROVAL
    assert "above the approved cap" in after.status_detail


def test_an_expired_kraken_quote_is_never_used(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    confirmed = withdrawal.confirmed_quote
    confirmed.expires_at = timezone.now() - timedelta(seconds=1)
    confirmed.save()

    after = submit(withdrawal)

    assert after.state == State.SUBMITTED
    sent = after.attempts.get().sent_at
    assert after.quotes.filter(fetched_at__lte=sent).latest("fetched_at").pk != confirmed.pk


# --- 5. people settle what reconciliation cannot -------------------------------------------


@pytest.fixture
def unknown(alice, bob, address, fresh_code, settings):
    settings.RECONCILE_ATTENTION_SECONDS = 0
    withdrawal = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_before_accept"
    )
    sandbox().inject("error", path=sandbox().HISTORY_PATH, error="EAPI:Invalid key")
    return reconcile(withdrawal)


def propose(withdrawal, user, code, finding=Resolution.Finding.NEVER_SENT, reference=""):
    return services.withdrawal_resolution_propose(
        withdrawal_id=withdrawal.pk,
        actor=user,
        finding=finding,
        reference=reference,
        evidence="Checked the venue's withdrawal page for the last 24 hours.",
        code=code,
    )


def test_never_sent_needs_two_people_then_it_is_sent_once(unknown, bob, bianca, fresh_code):
    resolution = propose(unknown, bob, fresh_code(bob))
    assert reload(unknown).state == State.OUTCOME_UNKNOWN  # one person's word moves nothing
    assert sandbox().count_withdrawals() == 0

    with pytest.raises(WithdrawalError, match="second person"):
        services.withdrawal_resolution_confirm(
            resolution_id=resolution.pk, actor=bob, code=fresh_code(bob)
        )
    services.withdrawal_resolution_confirm(
        resolution_id=resolution.pk, actor=bianca, code=fresh_code(bianca)
    )

    assert reload(unknown).state == State.APPROVED
    after = submit(unknown)  # the next attempt (enqueued on commit) sends it
    assert after.state == State.SUBMITTED
    assert sandbox().count_withdrawals() == 1
    assert timeline(unknown).count("withdrawal.approved") == 1
    assert "withdrawal.resolution_confirmed" in timeline(unknown)
    event = AuditEvent.objects.get(action="withdrawal.resolution_confirmed")
    assert event.data["evidence"].startswith("Checked the venue")


def test_found_at_the_venue_is_booked_with_its_reference(unknown, bob, carol, fresh_code):
    late = client_for(unknown.venue).submit(withdrawal_spec(unknown), quote=None)
    resolution = propose(
        unknown, carol, fresh_code(carol), Resolution.Finding.FOUND, late.reference
    )
    with no_tasks():
        services.withdrawal_resolution_confirm(
            resolution_id=resolution.pk, actor=bob, code=fresh_code(bob)
        )

    after = reload(unknown)
    assert after.state == State.SUBMITTED
    assert after.venue_reference == late.reference
    assert sandbox().count_withdrawals() == 1


def test_the_requester_cannot_settle_her_own_withdrawal(unknown, fresh_code):
    """Even holding the approver role: settling "never sent" would let her send it again."""
    requester = unknown.requested_by
    requester.groups.add(Group.objects.get(name="approver"))
    with pytest.raises(WithdrawalError, match="requested"):
        propose(
            unknown,
            WithdrawalRequest.objects.get(pk=unknown.pk).requested_by,
            fresh_code(requester),
        )
    assert not Resolution.objects.exists()


def test_the_database_refuses_one_person_proposing_and_confirming(unknown, bob, fresh_code):
    resolution = propose(unknown, bob, fresh_code(bob))
    with pytest.raises(IntegrityError), transaction.atomic():
        Resolution.objects.filter(pk=resolution.pk).update(decided_by=bob)


def test_a_settled_withdrawal_cannot_be_settled_again(unknown, bob, bianca, fresh_code):
    resolution = propose(unknown, bob, fresh_code(bob))
    services.withdrawal_resolution_confirm(
        resolution_id=resolution.pk, actor=bianca, code=fresh_code(bianca)
    )
    with pytest.raises(WithdrawalError, match="nothing to settle"):
        propose(unknown, bianca, fresh_code(bianca))


def test_a_finding_without_evidence_or_reference_is_refused(unknown, bob, fresh_code):
    with pytest.raises(WithdrawalError) as refused:
        services.withdrawal_resolution_propose(
            withdrawal_id=unknown.pk,
            actor=bob,
            finding=Resolution.Finding.FOUND,
            reference="",
            evidence="seen",
            code=fresh_code(bob),
        )
    assert refused.value.field == "reference"
    assert not Resolution.objects.exists()


def test_two_candidates_at_the_venue_go_straight_to_people(alice, bob, address, fresh_code):
    withdrawal = unknown_after_timeout(
        approved(create(alice, address), bob, fresh_code(bob)), "timeout_before_accept"
    )
    with mock.patch(
        "venues.kraken.client.KrakenClient.find",
        side_effect=VenueAmbiguous("2 withdrawals match 0.0008 BTC"),
    ):
        after = reconcile(withdrawal)

    assert after.state == State.OUTCOME_UNKNOWN
    assert "2 withdrawals match" in after.attention_reason


# --- 7. the trail tells human approvals from system retries ----------------------------------


def test_rate_limited_retries_never_read_as_approvals(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    for _ in range(3):
        sandbox().inject("rate_limit", path=sandbox().SUBMIT_PATH, retry_after=1)
        assert submit(withdrawal).state == State.APPROVED
    assert submit(withdrawal).state == State.SUBMITTED

    events = timeline(withdrawal)
    assert events.count("withdrawal.approved") == 1
    assert events.count("withdrawal.retry_scheduled") == 3
    assert sandbox().count_withdrawals() == 1


def test_quorum_two_counts_two_approval_events_and_one_approved(
    alice, bob, bianca, address, fresh_code
):
    policy_install({"quorum": 2})
    withdrawal = create(alice, address)
    with no_tasks():
        approve(withdrawal, bob, fresh_code(bob))
        approve(withdrawal, bianca, fresh_code(bianca))
    assert timeline(withdrawal).count("withdrawal.approval_added") == 1
    assert timeline(withdrawal).count("withdrawal.approved") == 1
