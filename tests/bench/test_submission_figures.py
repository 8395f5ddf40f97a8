"""The bench's approve and pipeline figures at a tiny scale, on their real parts (PostgreSQL,
Redis, a prefork Celery worker, gunicorn), so they cannot rot. No timings are asserted; what is
asserted is what the figures stand on: every withdrawal went out, exactly once, as counted in
the sandbox's own records, and every approval went through."""

from __future__ import annotations

import pytest

from bench import approvals, pipeline, seed
from tests.integration.conftest import _other_sessions_ended, wait_until
from withdrawals.models import State, WithdrawalRequest

pytestmark = [pytest.mark.integration, pytest.mark.urls("bench.urls")]


@pytest.fixture
def seeded(transactional_db):
    yield seed.seed(scale=0.0002, quiet=True)
    # The stopped workers' and gunicorn's sessions may end a moment late: end them, or the
    # test database cannot be dropped.
    wait_until("other database sessions to end", _other_sessions_ended, 30)


def test_the_pipeline_sends_each_approved_withdrawal_exactly_once(seeded):
    run = pipeline.run_pipeline(
        count=12,
        accounts=4,
        concurrency=2,
        requester=seeded.requester,
        approver=seeded.approver,
        quiet=True,
    )

    assert run.submitted == 12
    assert run.duplicates == 0
    assert run.venue_withdrawals == 12
    assert run.worker_cpu_ms > 0
    # The status poll each send enqueues is measured too, after the last send.
    assert run.polled == 12
    assert run.worker_cpu_with_poll_ms > run.worker_cpu_ms


def test_twenty_approvers_each_approve_their_own_withdrawal_at_once_and_within_a_second(
    seeded, monkeypatch
):
    monkeypatch.setenv("BENCH_APPROVE_ROUNDS", "1")
    before = WithdrawalRequest.objects.filter(state=State.APPROVED).count()

    at_once, within_a_second = approvals.measure_approvals(seeded, quiet=True)

    assert at_once.name.endswith("20 approvers at once")
    assert within_a_second.name.endswith("20 approvers within one second")
    assert all("p95" in r.measured and "CPU" in r.measured for r in (at_once, within_a_second))
    # The warm-up round and one measured round of each: 20 approvers each.
    assert WithdrawalRequest.objects.filter(state=State.APPROVED).count() == before + 60
