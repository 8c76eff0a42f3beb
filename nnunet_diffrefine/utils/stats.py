"""The percentile bootstrap interval of a mean, shared by the refiners' gate and the benchmarks.

Written with numpy (a dozen lines) rather than scipy.stats.bootstrap, whose BCa default and
degenerate-sample warnings differ between scipy versions; the same seed gives the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], num_resamples: int = 10000, seed: int = 0, level: float = 0.95
) -> list[float]:
    """``[low, high]`` percentile bootstrap interval of the mean of ``values`` (NaN for no values)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(num_resamples, values.size))].mean(1)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]
