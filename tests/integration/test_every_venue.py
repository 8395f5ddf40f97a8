"""Every venue kind on the real parts (gunicorn, a Celery worker with beat, PostgreSQL, Redis),
with the production clocks, against its sandbox served over loopback HTTP.

All five run side by side in one test, as they would in production, so the lease, the grace
period and the polling intervals are paid once, not five times. Each withdrawal has its own
pair of approvers: a TOTP code proves presence once per step.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import UserFactory, good_amount
from tests.integration.conftest import wait_until
from tests.integration.test_money_invariants import withdrawal_actions
from venues.sandbox.registry import sandbox_for
from withdrawals.models import State, WithdrawalRequest

pytestmark = pytest.mark.integration

KINDS = ("kraken", "kraken_embed", "kucoin", "onekonto", "nordpay")


def _requested_with_first_approval(alice, loopback_address, browser_for) -> list[Any]:
    pending = []
    for kind in KINDS:
        address = loopback_address(kind)
        withdrawal = browser_for(alice).request(address, good_amount(address.venue))
        first, last = (UserFactory(username=f"{kind}-{n}", roles=["approver"]) for n in (1, 2))
        response = browser_for(first).approve(withdrawal)
        assert response.status_code == 302, (kind, response.text)
        pending.append((kind, withdrawal, browser_for(last)))
    return pending


def _all_reach(withdrawals: list[WithdrawalRequest], state: str) -> None:
    def states() -> dict[int, str]:
        return {
            w.pk: WithdrawalRequest.objects.values_list("state", "status_detail").get(pk=w.pk)
            for w in withdrawals
        }

    wait_until(
        f"every venue's withdrawal to reach {state}",
        lambda: all(s == state for s, _ in states().values()),
        log=lambda: str(states()),
    )


def test_every_venue_submits_and_completes_once(stack, alice, loopback_address, browser_for):
    pending = _requested_with_first_approval(alice, loopback_address, browser_for)

    for kind, withdrawal, last in pending:
        response = last.approve(withdrawal)
        assert response.status_code == 302, (kind, response.text)

    _all_reach([w for _, w, _ in pending], State.COMPLETED)
    for kind, withdrawal, _ in pending:
        assert sandbox_for(kind).count_withdrawals() == 1, kind
        withdrawal.refresh_from_db()
        assert withdrawal.venue_reference == sandbox_for(kind).all_withdrawals()[0]["reference"]


def test_every_venue_reconciles_an_accepted_but_unanswered_submission_to_one_withdrawal(
    stack, alice, loopback_address, browser_for
):
    """Each venue records the withdrawal, then its answer never comes: the worker books an
    unknown outcome, and reconciliation finds it in the venue's own history after the grace
    period. Nothing is sent twice."""
    pending = _requested_with_first_approval(alice, loopback_address, browser_for)

    for kind, withdrawal, last in pending:
        form = last.approve_form(withdrawal)
        venue_sandbox = sandbox_for(kind)
        venue_sandbox.inject("timeout_after_accept", path=venue_sandbox.SUBMIT_PATH, method="POST")
        response = last.post(f"/withdrawals/{withdrawal.pk}/approve/", form)
        assert response.status_code == 302, (kind, response.text)

    _all_reach([w for _, w, _ in pending], State.COMPLETED)
    for kind, withdrawal, _ in pending:
        assert sandbox_for(kind).count_withdrawals() == 1, kind
        actions = withdrawal_actions(withdrawal)
        assert "withdrawal.outcome_unknown" in actions, (kind, actions)
        assert actions.count("withdrawal.submitting") == 1, (kind, actions)
