"""A worker that stalls after winning ``approved -> submitting`` (a VM or GC pause, SIGSTOP)
for longer than its lease, on the production stack and the production clocks.

Worker A takes the submission and is paused while its last check before the send waits for
the venue. A second worker (B, with its own beat) lets the lease run out, reconciles (the venue
has no trace) and sends. Then A wakes up: its attempt is superseded and past its deadline, so
it sends nothing. The venue ends with exactly one withdrawal.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import pending_faults, start_worker, wait_until
from tests.integration.test_money_invariants import _approve_form, _pending_last_approval, _state
from venues.registry import sandbox_for
from withdrawals.models import State, SubmissionAttempt

pytestmark = pytest.mark.integration

# The read each venue's attempt makes right before its send: Kraken spot checks the saved
# address key; KuCoin, which takes no fee cap, is quoted again.
LAST_READ = {"kraken": "/0/private/WithdrawAddresses", "kucoin": "/api/v1/withdrawals/quotas"}


@pytest.mark.parametrize("kind", sorted(LAST_READ))
def test_a_worker_paused_past_its_lease_never_sends(
    stack, stack_env, alice, carl, bob, loopback_address, browser_for, kind
):
    worker_a = stack["worker"]
    sandbox = sandbox_for(kind)
    withdrawal = _pending_last_approval(alice, carl, loopback_address(kind), browser_for)
    form = _approve_form(withdrawal, bob)
    sandbox.inject("latency", path=LAST_READ[kind], seconds=3)

    assert browser_for(bob).post(f"/withdrawals/{withdrawal.pk}/approve/", form).status_code == 302
    wait_until(
        "the last read before the send to reach the venue", lambda: not pending_faults(sandbox)
    )
    assert _state(withdrawal) == State.SUBMITTING
    worker_a.pause()
    worker_b = start_worker(stack_env, f"worker-b-{kind}")
    try:
        wait_until(
            "the second worker to send after the lease ran out",
            lambda: _state(withdrawal) in {State.SUBMITTED, State.COMPLETED},
            log=worker_b.tail,
        )
        assert sandbox.count_withdrawals() == 1
    finally:
        worker_a.resume()
    try:
        first = SubmissionAttempt.objects.filter(withdrawal=withdrawal, number=1)
        # A wakes: it either finishes its attempt (superseded, nothing sent) or is ended by
        # its hard time limit. Either way, nothing more reaches the venue.
        wait_until(
            "the paused attempt to end",
            lambda: (
                first.filter(finished_at__isnull=False).exists()
                or "Hard time limit" in worker_a.tail()
            ),
            log=worker_a.tail,
        )
        wait_until("completion", lambda: _state(withdrawal) == State.COMPLETED)
        assert sandbox.count_withdrawals() == 1
        attempt = first.get()
        assert attempt.superseded
        assert attempt.sent_at is None
        assert withdrawal.attempts.get(number=2).sent_at is not None
    finally:
        worker_b.stop()
