"""Real concurrent approvers on PostgreSQL against one velocity limit: each passes every other
check (a distinct approver, a fresh code, a quote they were shown, a pending withdrawal that
fits the limit on its own), and exactly as many withdrawals as the limit allows get through.

The approval locks its withdrawal's row alone (not its venue or destination), so the scope
lock is all that stands between them.

Runs in the PostgreSQL pass (marker ``postgresql``); SQLite has no row locks to test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from tests.factories import UserFactory, good_amount, policy_install, totp_code
from tests.withdrawals.test_services import create, no_tasks
from withdrawals import policy, services
from withdrawals.models import Approval, State, WithdrawalRequest
from withdrawals.services import WithdrawalError

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

REQUESTS = 8
ALLOWED = 3


@pytest.fixture(autouse=True)
def on_postgresql():
    assert connection.vendor == "postgresql", "run with DATABASE_URL (make test's second pass)"


@pytest.fixture(autouse=True)
def slow_count(monkeypatch):
    """Hold every approver a moment between counting the window and writing ``approved``: without
    the scope lock, all of them would count the same empty window and all get through."""
    count = policy._uses

    def counted_slowly(*args, **kwargs):
        uses = count(*args, **kwargs)
        time.sleep(0.2)
        return uses

    monkeypatch.setattr(policy, "_uses", counted_slowly)


def together(calls: list[Callable[[], object]]) -> list[BaseException]:
    """Run each call on its own thread (its own connection), released at once."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            barrier.wait()
            call()
        except BaseException as exc:  # collected and asserted on below, never swallowed
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


@pytest.mark.parametrize(
    "limit",
    [
        {"daily_count": ALLOWED},
        {"destination_daily_count": ALLOWED},
        {"daily_amount": "amount"},
    ],
    ids=["count per venue and asset", "count per destination", "amount per venue and asset"],
)
def test_concurrent_final_approvals_pass_exactly_as_many_as_the_limit_allows(
    alice, address, totp_clock, limit
):
    amount = good_amount(address.venue)
    if "daily_amount" in limit:
        limit = {"daily_amount": amount * ALLOWED + amount / 2}
    policy_install(
        {"asset": address.asset, **limit},
        business_hours_start=0,
        business_hours_end=24,
        weekdays_only=False,
    )
    withdrawals = [create(alice, address, amount) for _ in range(REQUESTS)]
    approvers = [UserFactory(roles=["approver"]) for _ in range(REQUESTS)]
    quotes = [
        services.withdrawal_quote_fresh(withdrawal_id=w.pk, user=a)
        for w, a in zip(withdrawals, approvers, strict=True)
    ]
    totp_clock.advance()

    def approval(index: int) -> Callable[[], object]:
        return lambda: services.withdrawal_approve(
            withdrawal_id=withdrawals[index].pk,
            approver=approvers[index],
            code=totp_code(approvers[index], at=totp_clock.now),
            quote_id=quotes[index].pk,
        )

    with no_tasks():
        errors = together([approval(i) for i in range(REQUESTS)])

    states = list(
        WithdrawalRequest.objects.filter(pk__in=[w.pk for w in withdrawals]).values_list(
            "state", flat=True
        )
    )
    assert states.count(State.APPROVED) == ALLOWED
    assert states.count(State.PENDING_APPROVAL) == REQUESTS - ALLOWED
    assert len(errors) == REQUESTS - ALLOWED
    assert all(isinstance(e, WithdrawalError) and "24 h" in e.message for e in errors), errors
    assert Approval.objects.count() == ALLOWED
    assert (
        sum(
            WithdrawalRequest.objects.filter(state=State.APPROVED).values_list("amount", flat=True),
            Decimal(0),
        )
        == amount * ALLOWED
    )
