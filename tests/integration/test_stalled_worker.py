"""A worker that stalls after winning ``approved -> submitting`` (a VM or GC pause, SIGSTOP)
for longer than its lease, on the production stack and the production clocks.

Worker A takes the submission and is paused while its last read before the send waits for the
venue. A second worker (B, with its own beat) lets the lease run out, reconciles (the venue has
no trace) and sends. Then A wakes up: its attempt is superseded and past its deadline, so it
sends nothing. The venue ends with exactly one withdrawal.

With Celery's prefork pool the task's hard time limit may end A as it wakes; with the solo pool
there is no time limit at all, so there only the attempt's own guards (the deadline its venue
client enforces, the fence under the row lock) stand between A and a second payment.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import pending_faults, start_worker, wait_until
from tests.integration.test_money_invariants import _pending_last_approval, _state
from venues.sandbox.registry import sandbox_for
from withdrawals.models import State, SubmissionAttempt

pytestmark = pytest.mark.integration

# The read each venue's attempt makes right before its send: Kraken spot checks the saved
# address key; KuCoin, which takes no fee cap, is quoted again.
LAST_READ = {"kraken": "/0/private/WithdrawAddresses", "kucoin": "/api/v1/withdrawals/quotas"}


@pytest.mark.parametrize(("kind", "pool"), [("kraken", "solo"), ("kucoin", "prefork")])
def test_a_worker_paused_past_its_lease_never_sends(
    stack, stack_env, alice, carl, bob, loopback_address, browser_for, kind, pool
):
    sandbox = sandbox_for(kind)
    withdrawal = _pending_last_approval(alice, carl, loopback_address(kind), browser_for)
    form = browser_for(bob).approve_form(withdrawal)
    shared = stack["worker"]
    if pool == "prefork":
        worker_a = shared
    else:
        # Only A may take the submission. (A paused worker would not do: its pending read
        # of the queue still takes the next message.)
        shared.stop()
        worker_a = start_worker(stack_env, f"worker-a-{kind}", pool=pool, beat=False)
    sandbox.inject("latency", path=LAST_READ[kind], seconds=3)

    try:
        response = browser_for(bob).post(f"/withdrawals/{withdrawal.pk}/approve/", form)
        assert response.status_code == 302
        wait_until(
            "the last read before the send to reach the venue",
            lambda: not pending_faults(sandbox),
            log=worker_a.tail,
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
            woke_at = worker_a.log_size()
            worker_a.resume()
            first = SubmissionAttempt.objects.filter(withdrawal=withdrawal, number=1)
            # A wakes: it finishes its attempt (superseded, nothing sent), or (prefork) its
            # hard time limit ends it. Either way nothing more reaches the venue.
            wait_until(
                "the paused attempt to end",
                lambda: (
                    first.filter(finished_at__isnull=False).exists()
                    or "Hard time limit" in worker_a.logged_since(woke_at)
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
    finally:
        worker_a.resume()
        if worker_a is not shared:
            worker_a.stop()
            shared.start()
