"""Exactly one venue withdrawal per approved request, on the real parts, under faults.

Alice requests; carl gives the first of two approvals; bob (or bob and bianca, racing) gives the
last one through gunicorn. A TOTP code proves presence once per 30-second step, so a test that
approves several withdrawals at once gives each its own pair of approvers. The worker submits
over loopback HTTP to the Kraken spot sandbox, and each test counts the withdrawals it holds.
"""

from __future__ import annotations

import threading
import time

import pytest

from audit.models import AuditEvent
from tests.factories import UserFactory, good_amount
from tests.integration.conftest import (
    pending_faults,
    post_concurrently,
    wait_until,
)
from venues.sandbox.registry import sandbox_for
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.integration


def _pending_last_approval(alice, carl, address, browser_for) -> WithdrawalRequest:
    """A withdrawal requested through the web, with one of its two approvals: the next approval
    is the last."""
    withdrawal = browser_for(alice).request(address, good_amount(address.venue))
    response = browser_for(carl).approve(withdrawal)
    assert response.status_code == 302, response.text
    withdrawal.refresh_from_db()
    assert withdrawal.state == State.PENDING_APPROVAL
    return withdrawal


def _state(withdrawal: WithdrawalRequest) -> str:
    withdrawal.refresh_from_db()
    return withdrawal.state


def _settles(withdrawal: WithdrawalRequest, final: str = State.COMPLETED, worker=None) -> None:
    def explain() -> str:
        withdrawal.refresh_from_db()
        found = f"it is {withdrawal.state}: {withdrawal.status_detail}"
        return found + (f"\n{worker.tail()}" if worker is not None else "")

    wait_until(
        f"withdrawal #{withdrawal.pk} to reach {final}",
        lambda: _state(withdrawal) == final,
        log=explain,
    )


def test_fifty_approvers_each_with_a_valid_code_race_for_the_last_approval(
    stack, alice, carl, loopback_address, browser_for
):
    """Fifty different approvers, each with a fresh code of their own, so every request passes
    the role, TOTP and payload checks: only the withdrawal's row lock decides who reaches the
    quorum, and only one submission (one venue withdrawal) follows. On KuCoin: fifty approver
    quotes within a minute are more than Kraken's starter tier allows any key."""
    sandbox = sandbox_for("kucoin")
    withdrawal = _pending_last_approval(alice, carl, loopback_address("kucoin"), browser_for)
    racers = [UserFactory(username=f"racer{i}", roles=["approver"]) for i in range(50)]
    browsers = [browser_for(racer) for racer in racers]
    forms = [browser.approve_form(withdrawal) for browser in browsers]
    path = f"/withdrawals/{withdrawal.pk}/approve/"

    responses = post_concurrently(
        [
            (lambda b=browser, f=form: b.post(path, f))
            for browser, form in zip(browsers, forms, strict=True)
        ]
    )

    # Winner and losers alike are sent back to the withdrawal's page (a loser's panel would be
    # stale: the withdrawal moved on); the database says who won.
    assert {r.status_code for r in responses} == {302}, [r.status_code for r in responses]
    winners = set(
        withdrawal.approvals.filter(voided=False, approver__in=racers).values_list(
            "approver_id", flat=True
        )
    )
    assert len(winners) == 1
    # Every loser is told why on the page: the withdrawal moved on while they approved.
    losers = [
        (browser, response)
        for browser, response in zip(browsers, responses, strict=True)
        if browser.user.pk not in winners
    ]
    assert len(losers) == 49
    assert all("not pending approval" in b.follow(r).text for b, r in losers[:5])
    _settles(withdrawal)
    assert sandbox.count_withdrawals() == 1
    assert withdrawal.approvals.filter(voided=False).count() == 2
    assert withdrawal.attempts.count() == 1
    assert withdrawal_actions(withdrawal).count("withdrawal.approved") == 1


def test_two_approvers_racing_on_the_last_approval_one_wins(
    stack, alice, bob, bianca, carl, live_address, sandbox, browser_for
):
    withdrawal = _pending_last_approval(alice, carl, live_address, browser_for)
    bob_browser, bianca_browser = browser_for(bob), browser_for(bianca)
    path = f"/withdrawals/{withdrawal.pk}/approve/"
    bob_form = browser_for(bob).approve_form(withdrawal)
    bianca_form = browser_for(bianca).approve_form(withdrawal)

    responses = post_concurrently(
        [lambda: bob_browser.post(path, bob_form), lambda: bianca_browser.post(path, bianca_form)]
    )

    assert [r.status_code for r in responses] == [302, 302]
    (winner,) = withdrawal.approvals.filter(voided=False, approver__in=[bob, bianca])
    loser_browser, loser = (
        (bianca_browser, responses[1])
        if winner.approver_id == bob.pk
        else (bob_browser, responses[0])
    )
    assert "not pending approval" in loser_browser.follow(loser).text
    _settles(withdrawal)
    assert sandbox.count_withdrawals() == 1
    assert withdrawal.approvals.filter(voided=False).count() == 2


def test_venue_accepts_then_times_out_reconciles_to_one_withdrawal(
    stack, alice, bob, carl, live_address, sandbox, browser_for
):
    withdrawal = _pending_last_approval(alice, carl, live_address, browser_for)
    form = browser_for(bob).approve_form(withdrawal)
    # Kraken records the withdrawal, then the answer never arrives (within VENUE_HTTP_TIMEOUT).
    # Injected after the quote: the fault's path also matches WithdrawInfo.
    sandbox.inject("timeout_after_accept", path=sandbox.SUBMIT_PATH)

    assert browser_for(bob).post(f"/withdrawals/{withdrawal.pk}/approve/", form).status_code == 302

    wait_until("outcome_unknown", lambda: _state(withdrawal) == State.OUTCOME_UNKNOWN)
    _settles(withdrawal)
    assert sandbox.count_withdrawals() == 1
    actions = list(withdrawal_actions(withdrawal))
    assert actions.index("withdrawal.outcome_unknown") < actions.index("withdrawal.submitted")
    assert withdrawal.venue_reference == sandbox.all_withdrawals()[0]["reference"]


def test_worker_killed_mid_submission_submits_once_after_restart(
    stack, alice, bob, carl, live_address, sandbox, browser_for
):
    worker = stack["worker"]
    withdrawal = _pending_last_approval(alice, carl, live_address, browser_for)
    form = browser_for(bob).approve_form(withdrawal)
    # The venue takes 3 s to answer: the worker is killed while its request is in flight, and
    # the venue still records the withdrawal after the connection is gone.
    sandbox.inject("latency", path=sandbox.SUBMIT_PATH, seconds=3)

    assert browser_for(bob).post(f"/withdrawals/{withdrawal.pk}/approve/", form).status_code == 302
    # The venue takes the fault off its queue when the request arrives: then it is in flight.
    wait_until("the submission to reach the venue", lambda: not pending_faults(sandbox))
    assert _state(withdrawal) == State.SUBMITTING
    worker.kill()
    assert not worker.alive()
    worker.start()

    _settles(withdrawal)
    assert sandbox.count_withdrawals() == 1
    # The killed worker never recorded an outcome: reconciliation found the venue's record.
    actions = withdrawal_actions(withdrawal)
    assert actions.count("withdrawal.submitting") == 1
    assert "withdrawal.outcome_unknown" in actions
    assert withdrawal.venue_reference == sandbox.all_withdrawals()[0]["reference"]


def test_redis_down_while_approving_loses_nothing_and_submits_each_once(
    stack, alice, live_address, sandbox, browser_for, redis_control
):
    firsts = [UserFactory(username=f"first{i}", roles=["approver"]) for i in range(3)]
    lasts = [UserFactory(username=f"last{i}", roles=["approver"]) for i in range(3)]
    pending = [_pending_last_approval(alice, f, live_address, browser_for) for f in firsts]
    forms = [browser_for(last).approve_form(w) for w, last in zip(pending, lasts, strict=True)]
    redis_control("redis-stop")
    try:
        for withdrawal, form, last in zip(pending, forms, lasts, strict=True):
            response = browser_for(last).post(f"/withdrawals/{withdrawal.pk}/approve/", form)
            # The approval commits with its outbox row; the failed publish is only logged.
            assert response.status_code == 302, response.text
            assert _state(withdrawal) == State.APPROVED
        assert sandbox.count_withdrawals() == 0
    finally:
        redis_control("redis-start")

    for withdrawal in pending:
        _settles(withdrawal, worker=stack["worker"])
    assert sandbox.count_withdrawals() == 3
    assert len({w.venue_reference for w in pending}) == 3


def withdrawal_actions(withdrawal: WithdrawalRequest) -> list[str]:
    return list(
        AuditEvent.objects.filter(
            object_type="withdrawalrequest",
            object_id=str(withdrawal.pk),
            action__startswith="withdrawal.",
        )
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_a_submission_goes_out_within_one_budget_refill_while_polls_and_typing_go_on(
    stack, alice, bob, live_address, sandbox, browser_for, settings
):
    """Kraken's counter on at the starter tier (15 units, 0.33 decay a second). Three submitted
    withdrawals stay pending (status polls) and a requester keeps typing amounts (previews):
    an approved withdrawal still reaches the venue within one refill of the budget."""
    settings.VENUE_SANDBOX_SETTLE_SECONDS = 3600.0  # the sandbox answers from this process
    # A code proves presence once per step: each first approval has its own approver.
    firsts = [UserFactory(username=f"first-poll{i}", roles=["approver"]) for i in range(4)]
    polled = [_pending_last_approval(alice, f, live_address, browser_for) for f in firsts[:3]]
    lasts = [UserFactory(username=f"poll{i}", roles=["approver"]) for i in range(3)]
    for withdrawal, last in zip(polled, lasts, strict=True):
        assert browser_for(last).approve(withdrawal).status_code == 302
    for withdrawal in polled:
        wait_until("submitted", lambda w=withdrawal: _state(w) == State.SUBMITTED)
    withdrawal = _pending_last_approval(alice, firsts[3], live_address, browser_for)
    form = browser_for(bob).approve_form(withdrawal)

    typist = browser_for(alice)
    typing = threading.Event()
    previews: list[str] = []

    def type_amounts() -> None:
        n = 0
        while not typing.is_set():
            n += 1  # a new amount each time: nothing comes from the preview cache
            data = {"venue": live_address.venue_id, "address": live_address.pk}
            data |= {"amount": f"0.00{1000 + n}", "typing": "1"}
            previews.append(typist.post("/withdrawals/new/preview/", data).text)
            time.sleep(0.3)

    thread = threading.Thread(target=type_amounts)
    thread.start()
    try:
        time.sleep(5)  # typing and polling fill the counter first
        approved_at = time.monotonic()
        assert (
            browser_for(bob).post(f"/withdrawals/{withdrawal.pk}/approve/", form).status_code == 302
        )
        wait_until(
            "the approved withdrawal to reach the venue",
            lambda: _state(withdrawal) in {State.SUBMITTED, State.COMPLETED},
        )
        took = time.monotonic() - approved_at
    finally:
        typing.set()
        thread.join(30)
    one_refill = 15 / 0.33
    assert took < one_refill, f"{took:.1f} s from approval to the venue"
    assert sandbox.count_withdrawals() == 4
    # Typing was held back for the submission, and the page said so.
    assert any("call budget" in text for text in previews), previews[-3:]
