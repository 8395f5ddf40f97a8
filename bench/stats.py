"""The percentile every table of the bench reports."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest sample with at least ``q`` of all the samples at or below it,
    so a p95 of twenty is the 19th and never an average of two that were not measured."""
    if not samples:
        raise ValueError("a percentile of no samples")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
