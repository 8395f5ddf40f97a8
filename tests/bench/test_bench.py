"""The bench's machinery at a tiny scale, so `make bench` cannot rot. No timings are asserted:
the figures are only meaningful at scale, on a quiet machine (docs/bench.md)."""

import pytest

from bench import measure, seed

pytestmark = [pytest.mark.postgresql, pytest.mark.urls("bench.urls")]


@pytest.fixture
def seeded(db, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    return seed.seed(scale=0.0002, quiet=True)


def test_bench_seeds_every_state_and_measures_every_page_and_export(seeded):
    from withdrawals.models import State, WithdrawalRequest

    assert WithdrawalRequest.objects.count() == seeded.withdrawals
    assert set(WithdrawalRequest.objects.values_list("state", flat=True)) == set(State.values)

    pages = measure.measure_pages(seeded, rounds=1, quiet=True)
    assert len(pages) == len(measure.figures(seeded))
    assert all(" SQL" in r.measured for r in pages)
    assert all(r.peer != "-" for r in pages if r.ratio != "-")

    exports = measure.measure_exports(seeded, in_process=True)
    assert [r.name.rsplit(" ", 1)[-1] for r in exports] == ["CSV", "JSON"]
