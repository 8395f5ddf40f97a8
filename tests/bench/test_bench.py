"""The bench's machinery at a tiny scale, so `make bench` cannot rot. No timings are asserted:
the figures are only meaningful at scale, on a quiet machine (docs/bench.md)."""

from collections import Counter

import pytest

from bench import measure, seed
from withdrawals.models import State, WithdrawalRequest

pytestmark = [pytest.mark.postgresql, pytest.mark.urls("bench.urls")]


@pytest.fixture
def seeded(db, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    return seed.seed(scale=0.0002, quiet=True)


def test_bench_seeds_every_state_and_measures_every_page_and_export(seeded, monkeypatch):
    assert WithdrawalRequest.objects.count() == seeded.withdrawals
    assert set(WithdrawalRequest.objects.values_list("state", flat=True)) == set(State.values)

    asked: Counter[str] = Counter()
    real = measure._get_ms

    def counted(client, url):
        asked[url] += 1
        return real(client, url)

    monkeypatch.setattr(measure, "_get_ms", counted)
    pages = measure.measure_pages(seeded, rounds=2, samples=3, quiet=True)
    assert len(pages) == len(measure.figures(seeded))
    for figure in measure.figures(seeded):
        # Each page as often as asked and its peer once a round, besides one untimed warm-up
        # and one request counting statements.
        assert asked[figure.url] == 1 + 2 * 3 + 1
        if figure.peer_url:
            assert asked[figure.peer_url] == 1 + 2 + 1
    assert all(" SQL" in r.measured for r in pages)
    assert all(r.peer != "-" for r in pages if r.ratio != "-")

    exports = measure.measure_exports(seeded, in_process=True)
    assert [r.name.rsplit(" ", 1)[-1] for r in exports] == ["CSV", "JSON"]
