"""The bench's one percentile: nearest rank, whichever table reports it."""

import pytest

from bench.stats import percentile


def test_p95_of_twenty_is_the_nineteenth_not_the_slowest():
    samples = [float(n) for n in range(20, 0, -1)]
    assert percentile(samples, 0.95) == 19.0
    assert percentile(samples, 1.0) == 20.0


def test_median_is_a_measured_sample():
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([7.5], 0.95) == 7.5


def test_no_samples_is_an_error_not_a_zero():
    with pytest.raises(ValueError):
        percentile([], 0.95)
