"""The export streams: memory stays flat from 20,000 to 100,000 rows (no timing asserted), on
both paths: COPY (PostgreSQL, in chunks on two connections) and the Python formatter (SQLite's,
run here on the same rows)."""

import functools
import tracemalloc

import pytest

from bench import seed
from oversight import exports
from withdrawals.models import WithdrawalRequest

# Committed rows: the COPY's second connection reads only what is committed.
pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def _peak_bytes(limit: int, fmt: str, stream) -> int:
    # Ids go on from earlier tests' rows: count from the first of this test's.
    first = WithdrawalRequest.objects.order_by("id").values_list("id", flat=True)[0]
    qs = WithdrawalRequest.objects.filter(id__lt=first + limit)
    tracemalloc.start()
    try:
        pieces = stream(dataset=exports.WITHDRAWALS, fmt=fmt, qs=qs)
        rows = sum(piece.count(b"\n") for piece in pieces)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows >= limit
    return peak


@pytest.mark.parametrize(
    "stream",
    [
        # Chunks of 5,000 keys: both sizes span several, so the worker's buffer is in both.
        pytest.param(functools.partial(exports.copy_stream, width=5000), id="copy"),
        pytest.param(exports.python_stream, id="python"),
    ],
)
def test_export_memory_stays_flat_over_100k_rows(stream):
    seeded = seed.seed(scale=0, quiet=True, withdrawals=100_000, audit_events=1000)
    assert seeded.withdrawals == 100_000
    for fmt in ("csv", "json"):
        small, large = _peak_bytes(20_000, fmt, stream), _peak_bytes(100_000, fmt, stream)
        # Five times the rows, about the same memory: a chunk of rows and a piece at a time.
        assert large < small * 1.5 + 1024 * 1024, fmt
        assert large < 32 * 1024 * 1024, fmt
