"""The withdrawal lifecycle through its services, against the venue's sandbox.

Personas: alice requests, bob (and bianca) approve, frank is another requester, dave audits,
ada holds both requester and approver roles.
"""

from __future__ import annotations

import itertools
import re
import threading
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.services import TotpRefused
from audit.models import AuditEvent
from tests.factories import (
    VENUE_KIND,
    UserFactory,
    VenueFactory,
    WhitelistedAddressFactory,
    destination_of,
    good_amount,
    policy_install,
)
from venues.refusals import refusal_explain
from venues.sandbox.registry import sandbox_for
from whitelist.models import AddressState, WhitelistedAddress
from withdrawals import services
from withdrawals.forms import WithdrawalForm
from withdrawals.models import Approval, Quote, State, WithdrawalRequest
from withdrawals.services import WithdrawalError

pytestmark = pytest.mark.django_db


# --- helpers --------------------------------------------------------------------------------


def sandbox():
    return sandbox_for(VENUE_KIND)


def rows() -> tuple[int, int, int]:
    return (WithdrawalRequest.objects.count(), Quote.objects.count(), AuditEvent.objects.count())


def create(requester, address, amount=None, **kwargs) -> WithdrawalRequest:
    return services.withdrawal_create(
        requester=requester,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue) if amount is None else amount,
        ip="198.51.100.7",
        **kwargs,
    )


def approve(withdrawal, approver, code, *, quote=None) -> WithdrawalRequest:
    if quote is None:
        quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=approver)
    return services.withdrawal_approve(
        withdrawal_id=withdrawal.pk,
        approver=approver,
        code=code,
        quote_id=quote.pk,
        ip="203.0.113.9",
    )


@contextmanager
def no_tasks():
    """Approve or reconcile without the on-commit task running, to drive submission by hand."""
    with mock.patch.object(services, "_on_commit_enqueue"):
        yield


def approved(withdrawal, approver, code) -> WithdrawalRequest:
    with no_tasks():
        result = approve(withdrawal, approver, code)
    assert result.state == State.APPROVED
    return result


def timeline(withdrawal) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="withdrawalrequest", object_id=str(withdrawal.pk))
        .order_by("seq")
        .values_list("action", flat=True)
    )


def reload(withdrawal) -> WithdrawalRequest:
    return WithdrawalRequest.objects.get(pk=withdrawal.pk)


@pytest.fixture
def ada(db):
    """Holds both requester and approver: still may not approve her own withdrawal."""
    return UserFactory(username="ada", roles=["requester", "approver"])


@pytest.fixture
def slow_settle(settings):
    """Sandbox withdrawals stay pending, so ``submitted`` is observable."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0


# --- create -------------------------------------------------------------------------------


def test_alice_creates_a_withdrawal_pending_approval_with_the_venue_fee_as_cap(alice, address):
    amount = good_amount(address.venue)
    withdrawal = create(alice, address, amount, note="payroll float")
    assert withdrawal.state == State.PENDING_APPROVAL
    assert withdrawal.amount == amount and isinstance(withdrawal.amount, Decimal)
    assert withdrawal.address == address.address and withdrawal.asset == address.asset
    assert withdrawal.fee_cap is not None and withdrawal.fee_cap >= 0
    assert withdrawal.payload_hash == withdrawal.compute_payload_hash()
    assert withdrawal.quotes.count() == 1
    assert timeline(withdrawal) == ["withdrawal.requested"]
    event = AuditEvent.objects.get(action="withdrawal.requested")
    assert event.actor == alice and event.ip == "198.51.100.7"
    assert sandbox().count_withdrawals() == 0  # nothing is sent before approval


def _over_precise(address) -> Decimal:
    dest = destination_of(address.venue)
    return good_amount(address.venue) + Decimal(1).scaleb(-(dest["precision"] + 1))


@pytest.mark.parametrize(
    ("label", "amount_of", "message"),
    [
        ("zero", lambda a: Decimal("0"), "greater than zero"),
        ("negative", lambda a: Decimal("-1"), "greater than zero"),
        ("not a number", lambda a: Decimal("NaN"), "greater than zero"),
        ("over-precise", _over_precise, "decimal places"),
        (
            "below minimum",
            lambda a: destination_of(a.venue)["minimum"] / 2,
            "minimum|Invalid amount",
        ),
    ],
)
def test_alice_bad_amounts_are_refused_and_nothing_is_saved(
    alice, address, label, amount_of, message
):
    before = rows()
    with pytest.raises(WithdrawalError) as refused:
        create(alice, address, amount_of(address))
    assert refused.value.field == "amount"
    assert re.search(message, refused.value.message), refused.value.message
    assert rows() == before


def test_alice_amount_above_the_venue_limit_is_refused_and_nothing_is_saved(alice, address):
    preview = services.withdrawal_preview(
        user=alice,
        venue_id=address.venue_id,
        address_id=address.pk,
        amount=good_amount(address.venue),
    )
    assert preview.quote.limit is not None
    before = rows()
    with pytest.raises(WithdrawalError) as refused:
        create(alice, address, preview.quote.limit + 1)
    assert refused.value.field == "amount" and "Above" in refused.value.message
    assert rows() == before


@pytest.mark.parametrize(
    "raw", ["abc", "1e3", "1,5", "-0.5", "0", "0x10", " ", "NaN", "Infinity", "٣"]
)
def test_non_numeric_amounts_are_refused_by_the_form(alice, address, raw):
    form = WithdrawalForm(
        data={"venue": address.venue_id, "address": address.pk, "amount": raw, "note": ""}
    )
    assert not form.is_valid()
    assert "amount" in form.errors


def test_a_plain_amount_passes_the_form_as_an_exact_decimal(address):
    form = WithdrawalForm(data={"venue": address.venue_id, "address": address.pk, "amount": "0.1"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == Decimal("0.1")
    assert isinstance(form.cleaned_data["amount"], Decimal)


@pytest.mark.parametrize("tampered", [999_999, "abc", None, "1 OR 1=1"])
def test_alice_tampered_address_id_is_refused(alice, address, tampered):
    before = rows()
    with pytest.raises(WithdrawalError) as refused:
        services.withdrawal_create(
            requester=alice,
            venue_id=address.venue_id,
            address_id=tampered,
            amount=good_amount(address.venue),
        )
    assert refused.value.field == "address"
    assert rows() == before


def test_alice_address_of_another_venue_is_refused(alice, address):
    other = WhitelistedAddressFactory(venue=VenueFactory(name="Other sandbox"))
    before = rows()
    with pytest.raises(WithdrawalError) as refused:
        services.withdrawal_create(
            requester=alice,
            venue_id=address.venue_id,
            address_id=other.pk,
            amount=good_amount(address.venue),
        )
    assert refused.value.field == "address" and "another venue" in refused.value.message
    assert rows() == before


@pytest.mark.parametrize(
    "state", [AddressState.PROPOSED, AddressState.REVOKED, AddressState.COOLING_OFF]
)
def test_alice_inactive_address_is_refused(alice, venue, state):
    inactive = WhitelistedAddressFactory(venue=venue, state=state)
    before = rows()
    with pytest.raises(WithdrawalError) as refused:
        create(alice, inactive)
    assert refused.value.field == "address" and "not active" in refused.value.message
    assert rows() == before


def test_bob_without_requester_role_cannot_create(bob, address):
    before = rows()
    with pytest.raises(PermissionDenied):
        create(bob, address)
    assert rows() == before


def test_disabled_venue_is_refused(alice, address):
    address.venue.enabled = False
    address.venue.save()
    before = rows()
    with pytest.raises(WithdrawalError) as refused:
        create(alice, address)
    assert refused.value.field == "venue"
    assert rows() == before


# --- approve --------------------------------------------------------------------------------


def test_bob_approves_and_it_goes_through_to_completed(
    alice, bob, address, fresh_code, django_capture_on_commit_callbacks
):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    assert quote.shown_to == bob and quote.withdrawal_id == withdrawal.pk
    with django_capture_on_commit_callbacks(execute=True):
        approve(withdrawal, bob, fresh_code(bob), quote=quote)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.COMPLETED
    assert withdrawal.confirmed_quote_id == quote.pk
    assert withdrawal.venue_reference
    assert withdrawal.finished_at is not None
    assert sandbox().count_withdrawals() == 1
    approval = withdrawal.approvals.get()
    assert approval.approver == bob and approval.requester == alice
    assert approval.payload_hash == withdrawal.payload_hash and approval.ip == "203.0.113.9"
    assert timeline(withdrawal) == [
        "withdrawal.requested",
        "withdrawal.approved",
        "withdrawal.submitting",
        "withdrawal.submitted",
        "withdrawal.completed",
    ]
    sent = sandbox().all_withdrawals()[0]
    assert Decimal(sent["amount_sent"]) == withdrawal.amount


def test_bob_approval_stops_at_approved_then_submitted_then_completed(
    alice, bob, address, fresh_code
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    assert reload(withdrawal).state == State.APPROVED
    assert withdrawal.intent.done_at is None  # the outbox row is written with the approval
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.SUBMITTED
    services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.COMPLETED
    assert sandbox().count_withdrawals() == 1


def test_alice_self_approval_is_refused_by_the_service(ada, address, fresh_code):
    withdrawal = create(ada, address)
    before = (rows(), Approval.objects.count())
    with pytest.raises(WithdrawalError, match="you requested"):
        approve(withdrawal, ada, fresh_code(ada))
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert (rows()[0], Approval.objects.count()) == (before[0][0], before[1])


def test_self_approval_is_refused_by_the_database_constraint(alice, address):
    withdrawal = create(alice, address)
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            withdrawal=withdrawal,
            approver=alice,
            requester=alice,
            payload_hash=withdrawal.payload_hash,
            totp_step=1,
        )
    assert Approval.objects.count() == 0


def test_alice_without_approver_role_cannot_approve_someone_elses(
    alice, frank, address, fresh_code
):
    withdrawal = create(frank, address)
    with pytest.raises(PermissionDenied):
        services.withdrawal_approve(
            withdrawal_id=withdrawal.pk, approver=alice, code=fresh_code(alice), quote_id=None
        )
    assert reload(withdrawal).state == State.PENDING_APPROVAL


def test_bob_wrong_totp_changes_nothing(alice, bob, address, fresh_code):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    good = fresh_code(bob)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    snapshot = list(WithdrawalRequest.objects.values())
    events = AuditEvent.objects.count()
    with pytest.raises(TotpRefused, match="wrong"):
        approve(withdrawal, bob, wrong, quote=quote)
    assert list(WithdrawalRequest.objects.values()) == snapshot
    assert Approval.objects.count() == 0
    # The only trace is the refusal itself, on bob's record.
    new = list(AuditEvent.objects.filter(seq__gt=events).values_list("action", "actor"))
    assert new == [("totp.refused", bob.pk)]
    assert sandbox().count_withdrawals() == 0


@pytest.mark.parametrize("garbage", ["", "12345", "1234567", "abcdef", "12 456"])
def test_bob_malformed_totp_is_refused(alice, bob, address, garbage):
    withdrawal = create(alice, address)
    with pytest.raises(TotpRefused):
        approve(withdrawal, bob, garbage)
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert Approval.objects.count() == 0


def test_bob_replayed_totp_is_refused(alice, bob, address, fresh_code):
    first = create(alice, address)
    second = create(alice, address)
    code = fresh_code(bob)
    approved(first, bob, code)
    with pytest.raises(TotpRefused, match="already used"):
        approve(second, bob, code)
    assert reload(second).state == State.PENDING_APPROVAL
    assert Approval.objects.filter(withdrawal=second).count() == 0
    # A fresh step works again once the back-off of the refused attempt has passed.
    TOTPDevice.objects.filter(user=bob).update(
        throttling_failure_timestamp=timezone.now() - timedelta(minutes=5)
    )
    approved(second, bob, fresh_code(bob))


def test_bob_code_used_for_login_cannot_approve(alice, bob, address, code_now, fresh_code):
    from accounts.services import totp_code_verify

    withdrawal = create(alice, address)
    code = code_now(bob)
    totp_code_verify(user=bob, code=code, purpose="login")
    with pytest.raises(TotpRefused):
        approve(withdrawal, bob, code)
    assert reload(withdrawal).state == State.PENDING_APPROVAL


def test_the_same_totp_step_cannot_back_two_approvals_in_the_database(
    alice, bob, address, fresh_code
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    step = withdrawal.approvals.get().totp_step
    other = create(alice, address)
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            withdrawal=other,
            approver=bob,
            requester=alice,
            payload_hash=other.payload_hash,
            totp_step=step,
        )


@pytest.mark.django_db(transaction=True)
def test_bob_throttled_after_wrong_codes_and_the_throttle_survives_the_failed_approve(
    alice, bob, address, fresh_code
):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    good = fresh_code(bob)
    wrong = f"{(int(good) + 3) % 1_000_000:06d}"
    with pytest.raises(TotpRefused):
        approve(withdrawal, bob, wrong, quote=quote)
    # Committed in its own transaction even though approve raised.
    device = TOTPDevice.objects.get(user=bob)
    assert device.throttling_failure_count == 1
    for _ in range(3):
        with pytest.raises(TotpRefused, match="Too many wrong codes"):
            approve(withdrawal, bob, wrong, quote=quote)
    # Even the right code is refused while throttled.
    with pytest.raises(TotpRefused, match="Too many wrong codes"):
        approve(withdrawal, bob, good, quote=quote)
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert Approval.objects.count() == 0
    refusals = AuditEvent.objects.filter(action="totp.refused", actor=bob)
    assert refusals.count() == 5
    # Once the back-off has passed, the right code works.
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(minutes=5)
    )
    with no_tasks():
        assert approve(withdrawal, bob, good, quote=quote).state == State.APPROVED


@pytest.mark.django_db(transaction=True)
def test_bob_code_is_consumed_even_when_the_business_check_rolls_back(
    alice, bob, address, fresh_code
):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    # Revoked between the quote and the confirm: only the check under the row lock sees it.
    WhitelistedAddress.objects.filter(pk=address.pk).update(state=AddressState.REVOKED)
    code = fresh_code(bob)
    with pytest.raises(WithdrawalError, match="no longer active"):
        approve(withdrawal, bob, code, quote=quote)
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert TOTPDevice.objects.get(user=bob).last_t >= 0  # the step is marked used
    with pytest.raises(TotpRefused, match="already used"):
        approve(withdrawal, bob, code, quote=quote)


def test_bob_code_stays_usable_when_his_quote_expired(alice, bob, address, fresh_code):
    """The expiry is checked before the code: a quote that ran out must not cost the code."""
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    Quote.objects.filter(pk=quote.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    code = fresh_code(bob)
    with pytest.raises(WithdrawalError, match="your code was not used"):
        approve(withdrawal, bob, code, quote=quote)
    assert TOTPDevice.objects.get(user=bob).last_t == -1
    assert approve(withdrawal, bob, code).approvals.filter(approver=bob).exists()


def test_bob_expired_quote_is_refused(alice, bob, address, fresh_code):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    Quote.objects.filter(pk=quote.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(WithdrawalError, match="expired"):
        approve(withdrawal, bob, fresh_code(bob), quote=quote)
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert Approval.objects.count() == 0


def test_bob_quote_above_the_fee_cap_is_refused(alice, bob, address, fresh_code):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    Quote.objects.filter(pk=quote.pk).update(fee=withdrawal.fee_cap + Decimal("0.001"))
    with pytest.raises(WithdrawalError, match="above the cap"):
        approve(withdrawal, bob, fresh_code(bob), quote=quote)
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert Approval.objects.count() == 0


def test_bob_cannot_confirm_a_quote_of_another_withdrawal(alice, bob, address, fresh_code):
    first = create(alice, address)
    second = create(alice, address)
    foreign = services.withdrawal_quote_fresh(withdrawal_id=second.pk, user=bob)
    with pytest.raises(WithdrawalError, match="fresh quote"):
        approve(first, bob, fresh_code(bob), quote=foreign)
    assert reload(first).state == State.PENDING_APPROVAL


def test_bob_cannot_approve_twice(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    with pytest.raises(WithdrawalError, match="not pending"):
        services.withdrawal_approve(
            withdrawal_id=withdrawal.pk, approver=bob, code=fresh_code(bob), quote_id=None
        )
    assert Approval.objects.count() == 1


def test_the_same_approver_cannot_give_two_of_a_quorum(alice, bob, address, fresh_code):
    policy_install({"quorum": 2})
    withdrawal = create(alice, address)
    approve(withdrawal, bob, fresh_code(bob))
    with pytest.raises(WithdrawalError, match="already approved"):
        approve(withdrawal, bob, fresh_code(bob))
    assert Approval.objects.count() == 1
    assert reload(withdrawal).state == State.PENDING_APPROVAL


def test_an_approver_confirms_only_a_quote_he_was_shown(alice, bob, bianca, address, fresh_code):
    withdrawal = create(alice, address)
    shown_to_bianca = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bianca)
    with pytest.raises(WithdrawalError, match="fresh quote"):
        approve(withdrawal, bob, fresh_code(bob), quote=shown_to_bianca)
    assert Approval.objects.count() == 0


def test_a_payload_changed_behind_the_approvers_back_is_refused(alice, bob, address, fresh_code):
    withdrawal = create(alice, address)
    WithdrawalRequest.objects.filter(pk=withdrawal.pk).update(amount=withdrawal.amount * 10)
    with pytest.raises(WithdrawalError, match="changed"):
        approve(withdrawal, bob, fresh_code(bob))
    assert Approval.objects.count() == 0


# --- reject, cancel, requote ------------------------------------------------------------------


def test_bob_rejects_with_a_reason(alice, bob, address):
    withdrawal = create(alice, address)
    with pytest.raises(WithdrawalError):
        services.withdrawal_reject(withdrawal_id=withdrawal.pk, approver=bob, reason="   ")
    services.withdrawal_reject(withdrawal_id=withdrawal.pk, approver=bob, reason="Wrong wallet")
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.REJECTED and withdrawal.reason == "Wrong wallet"
    assert timeline(withdrawal) == ["withdrawal.requested", "withdrawal.rejected"]
    with pytest.raises(WithdrawalError):
        services.withdrawal_reject(withdrawal_id=withdrawal.pk, approver=bob, reason="again")


def test_alice_cancels_her_own_before_approval(alice, address):
    withdrawal = create(alice, address)
    services.withdrawal_cancel(withdrawal_id=withdrawal.pk, requester=alice)
    assert reload(withdrawal).state == State.CANCELLED
    assert timeline(withdrawal) == ["withdrawal.requested", "withdrawal.cancelled"]


@pytest.mark.parametrize("who", ["frank", "bob", "dave"])
def test_others_cannot_cancel_alices_withdrawal(alice, frank, bob, dave, address, who):
    withdrawal = create(alice, address)
    with pytest.raises(PermissionDenied):
        services.withdrawal_cancel(
            withdrawal_id=withdrawal.pk, requester={"frank": frank, "bob": bob, "dave": dave}[who]
        )
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert timeline(withdrawal) == ["withdrawal.requested"]


def test_alice_cannot_cancel_once_sent(alice, bob, address, fresh_code, slow_settle):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    with pytest.raises(WithdrawalError, match="too late"):
        services.withdrawal_cancel(withdrawal_id=withdrawal.pk, requester=alice)
    assert reload(withdrawal).state == State.SUBMITTED


def test_a_cancelled_approved_withdrawal_is_never_submitted(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    services.withdrawal_cancel(withdrawal_id=withdrawal.pk, requester=alice)
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.CANCELLED
    assert sandbox().count_withdrawals() == 0


def test_alice_requote_voids_approvals(alice, bob, bianca, address, fresh_code):
    policy_install({"quorum": 2})
    withdrawal = create(alice, address)
    approve(withdrawal, bob, fresh_code(bob))
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    assert withdrawal.approvals.filter(voided=False).count() == 1
    services.withdrawal_requote(withdrawal_id=withdrawal.pk, requester=alice)
    assert withdrawal.approvals.filter(voided=False).count() == 0
    assert withdrawal.approvals.get().voided
    # bianca's approval alone is no longer a quorum: bob's was voided.
    approve(withdrawal, bianca, fresh_code(bianca))
    assert reload(withdrawal).state == State.PENDING_APPROVAL
    with no_tasks():
        approve(withdrawal, bob, fresh_code(bob))
    assert reload(withdrawal).state == State.APPROVED
    assert timeline(withdrawal) == [
        "withdrawal.requested",
        "withdrawal.approval_added",
        "withdrawal.requoted",
        "withdrawal.approval_added",
        "withdrawal.approved",
    ]


def test_bob_cannot_requote_alices_withdrawal(alice, bob, address):
    withdrawal = create(alice, address)
    with pytest.raises(PermissionDenied):
        services.withdrawal_requote(withdrawal_id=withdrawal.pk, requester=bob)


# --- submission guard -----------------------------------------------------------------------


def test_submit_twice_gives_one_venue_withdrawal(alice, bob, address, fresh_code, slow_settle):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert sandbox().count_withdrawals() == 1
    assert reload(withdrawal).state == State.SUBMITTED
    assert timeline(withdrawal).count("withdrawal.submitting") == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_give_exactly_one_venue_withdrawal(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            services.withdrawal_submit(withdrawal_id=withdrawal.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sandbox().count_withdrawals() == 1
    withdrawal = reload(withdrawal)
    assert withdrawal.state in {State.SUBMITTED, State.COMPLETED}
    assert timeline(withdrawal).count("withdrawal.submitting") == 1
    assert timeline(withdrawal).count("withdrawal.submitted") == 1


@pytest.mark.django_db(transaction=True)
def test_double_confirm_by_two_approvers_gives_one_venue_withdrawal(
    alice, bob, bianca, address, fresh_code
):
    withdrawal = create(alice, address)
    quotes = {
        u.pk: services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=u)
        for u in (bob, bianca)
    }
    codes = {bob.pk: fresh_code(bob), bianca.pk: fresh_code(bianca)}
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def worker(user) -> None:
        try:
            barrier.wait()
            approve(withdrawal, user, codes[user.pk], quote=quotes[user.pk])
            outcomes.append("ok")
        except WithdrawalError as exc:
            outcomes.append(exc.message)
        except BaseException as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(u,)) for u in (bob, bianca)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("ok") == 1, outcomes
    assert all(isinstance(o, str) for o in outcomes), outcomes
    assert Approval.objects.count() == 1
    assert sandbox().count_withdrawals() == 1


# --- venue outcomes -------------------------------------------------------------------------


def test_venue_unavailable_goes_back_to_approved_then_submits_on_retry(
    alice, bob, address, fresh_code, slow_settle
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    sandbox().inject("rate_limit", path=sandbox().SUBMIT_PATH, retry_after=2)
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    after = reload(withdrawal)
    assert after.state == State.APPROVED
    assert "unavailable" in after.status_detail
    assert sandbox().count_withdrawals() == 0
    assert after.intent.not_before is not None
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.SUBMITTED
    assert sandbox().count_withdrawals() == 1
    assert timeline(withdrawal) == [
        "withdrawal.requested",
        "withdrawal.approved",
        "withdrawal.submitting",
        "withdrawal.retry_scheduled",
        "withdrawal.submitting",
        "withdrawal.submitted",
    ]
    # A system retry never reads as a second human approval on the trail.
    assert timeline(withdrawal).count("withdrawal.approved") == 1


def test_timeout_after_accept_is_outcome_unknown_then_reconciled_to_submitted(
    alice, bob, address, fresh_code, slow_settle
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    sandbox().inject("timeout_after_accept", path=sandbox().SUBMIT_PATH)
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.OUTCOME_UNKNOWN
    assert sandbox().count_withdrawals() == 1  # the venue did take it
    # Never retried blindly: a submit call does nothing now.
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert sandbox().count_withdrawals() == 1
    with no_tasks():
        services.withdrawal_reconcile(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.SUBMITTED
    assert withdrawal.venue_reference
    assert sandbox().count_withdrawals() == 1
    assert timeline(withdrawal)[-3:] == [
        "withdrawal.submitting",
        "withdrawal.outcome_unknown",
        "withdrawal.submitted",
    ]


def test_timeout_before_accept_reconciles_to_approved_and_submits_once(
    alice, bob, address, fresh_code, slow_settle
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    sandbox().inject("timeout_before_accept", path=sandbox().SUBMIT_PATH)
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.OUTCOME_UNKNOWN
    assert sandbox().count_withdrawals() == 0
    with no_tasks():
        services.withdrawal_reconcile(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.APPROVED
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.SUBMITTED
    assert sandbox().count_withdrawals() == 1
    assert timeline(withdrawal)[-4:] == [
        "withdrawal.outcome_unknown",
        "withdrawal.returned_for_resend",
        "withdrawal.submitting",
        "withdrawal.submitted",
    ]


def test_reconcile_waits_out_the_grace_period_before_trusting_the_venue_history(
    alice, bob, address, fresh_code, slow_settle, settings
):
    """A request that timed out may still be on its way: "not found" is not yet proof."""
    settings.RECONCILE_GRACE_SECONDS = 3600
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    sandbox().inject("timeout_before_accept", path=sandbox().SUBMIT_PATH)
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
        services.withdrawal_reconcile(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.OUTCOME_UNKNOWN
    assert timeline(withdrawal)[-1] == "withdrawal.outcome_unknown"
    settings.RECONCILE_GRACE_SECONDS = 0
    with no_tasks():
        services.withdrawal_reconcile(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.APPROVED


def test_reconcile_runs_through_eager_tasks_to_one_withdrawal(
    alice, bob, address, fresh_code, django_capture_on_commit_callbacks
):
    withdrawal = create(alice, address)
    quote = services.withdrawal_quote_fresh(withdrawal_id=withdrawal.pk, user=bob)
    # Injected after the quotes: on some venues the submit path is a prefix of the quote path.
    sandbox().inject("timeout_before_accept", path=sandbox().SUBMIT_PATH)
    with django_capture_on_commit_callbacks(execute=True):
        approve(withdrawal, bob, fresh_code(bob), quote=quote)
    assert reload(withdrawal).state == State.COMPLETED
    assert sandbox().count_withdrawals() == 1


def _rejecting_error() -> str:
    errors = type(sandbox()).DOCUMENTED_ERRORS
    return next(
        e for e, outcome in errors.items() if outcome == "VenueRejected" and "fee" not in e.lower()
    )


def test_venue_rejects_and_the_withdrawal_fails_with_the_venues_message(
    alice, bob, address, fresh_code
):
    error = _rejecting_error()
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    sandbox().inject("error", path=sandbox().SUBMIT_PATH, error=error)
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.FAILED
    # The venue's own code is kept verbatim; the detail says it in words (venues.refusals).
    assert withdrawal.venue_error_code == error
    refusal = refusal_explain(kind=withdrawal.venue.kind, code=error)
    assert withdrawal.status_detail == f"Venue refused: {refusal.message}"
    assert error in withdrawal.attempts.get().detail
    assert sandbox().count_withdrawals() == 0
    assert timeline(withdrawal)[-1] == "withdrawal.failed"
    # A failed withdrawal is final: nothing sends it again.
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert sandbox().count_withdrawals() == 0


def test_status_refresh_to_completed(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.SUBMITTED
    services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.COMPLETED
    assert withdrawal.venue_status
    assert timeline(withdrawal)[-1] == "withdrawal.completed"


def test_status_refresh_to_failed(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    sandbox().inject("settle_failure")
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.FAILED
    assert timeline(withdrawal)[-1] == "withdrawal.failed"
    assert sandbox().count_withdrawals() == 1


def test_status_refresh_while_pending_changes_no_state(
    alice, bob, address, fresh_code, slow_settle
):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    events = timeline(withdrawal)
    services.withdrawal_status_refresh(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.SUBMITTED and withdrawal.last_checked_at is not None
    assert timeline(withdrawal) == events


def test_revoked_destination_after_approval_fails_without_sending(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    address.state = AddressState.REVOKED
    address.save()
    services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    assert reload(withdrawal).state == State.FAILED
    assert sandbox().count_withdrawals() == 0


# --- audit in the same transaction ----------------------------------------------------------


def test_state_change_rolls_back_when_its_audit_event_cannot_be_written(alice, address):
    withdrawal = create(alice, address)
    with (
        mock.patch.object(services, "audit_event_record", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        services.withdrawal_cancel(withdrawal_id=withdrawal.pk, requester=alice)
    assert reload(withdrawal).state == State.PENDING_APPROVAL


def test_create_is_undone_when_its_audit_event_cannot_be_written(alice, address):
    before = rows()
    with (
        mock.patch.object(services, "audit_event_record", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        create(alice, address)
    assert rows() == before


def test_every_event_names_actor_and_ip_and_chains(alice, bob, address, fresh_code):
    withdrawal = approved(create(alice, address), bob, fresh_code(bob))
    events = list(
        AuditEvent.objects.filter(object_type="withdrawalrequest", object_id=str(withdrawal.pk))
    )
    assert [(e.action, e.actor_id, e.ip) for e in events] == [
        ("withdrawal.requested", alice.pk, "198.51.100.7"),
        ("withdrawal.approved", bob.pk, "203.0.113.9"),
    ]
    every = list(AuditEvent.objects.order_by("seq"))
    for prev, nxt in itertools.pairwise(every):
        assert nxt.prev_hash == prev.hash and nxt.seq == prev.seq + 1


def test_kraken_max_fee_travels_and_a_fee_above_it_sends_the_withdrawal_back(
    alice, bob, fresh_code
):
    """Kraken spot: the confirmed quote's fee goes out as ``max_fee``; the venue refuses when
    its fee is higher, and the withdrawal returns for a new quote with its approvals void."""
    kraken_address = WhitelistedAddressFactory(venue=VenueFactory(kind="kraken", name="Kraken"))
    withdrawal = approved(create(alice, kraken_address), bob, fresh_code(bob))
    Quote.objects.filter(pk=withdrawal.confirmed_quote_id).update(fee=Decimal("0.00000001"))
    with no_tasks():
        services.withdrawal_submit(withdrawal_id=withdrawal.pk)
    withdrawal = reload(withdrawal)
    assert withdrawal.state == State.PENDING_APPROVAL
    assert withdrawal.confirmed_quote_id is None
    assert not withdrawal.approvals.filter(voided=False).exists()
    assert sandbox_for("kraken").count_withdrawals() == 0
    assert timeline(withdrawal)[-1] == "withdrawal.sent_back"
