"""The export streams: memory stays flat from 10,000 to 100,000 rows (no timing asserted)."""

import tracemalloc

import pytest

from bench import seed
from oversight import exports
from withdrawals.models import WithdrawalRequest

pytestmark = pytest.mark.postgresql


def _peak_bytes(limit: int, fmt: str) -> int:
    columns = exports.DATASETS["withdrawals"]
    # Ids go on from earlier tests' rolled-back rows: count from the first of this test's.
    first = WithdrawalRequest.objects.order_by("id").values_list("id", flat=True)[0]
    qs = WithdrawalRequest.objects.filter(id__lt=first + limit)
    stream = exports.csv_stream if fmt == "csv" else exports.json_stream
    tracemalloc.start()
    try:
        rows = sum(piece.count("\n") for piece in stream(exports.export_rows(qs, columns), columns))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows >= limit
    return peak


def test_export_memory_stays_flat_over_100k_rows(db):
    seeded = seed.seed(scale=0, quiet=True, withdrawals=100_000, audit_events=1000)
    assert seeded.withdrawals == 100_000
    for fmt in ("csv", "json"):
        small, large = _peak_bytes(10_000, fmt), _peak_bytes(100_000, fmt)
        # Ten times the rows, about the same memory: a chunk of rows and a piece at a time.
        assert large < small * 1.5, fmt
        assert large < 32 * 1024 * 1024, fmt
