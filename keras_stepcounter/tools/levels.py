"""The best fit of three levels to a series: what is left once level
shifts are taken out.

Both the comparison's interval (`confidence`) and the slowdown detector
(`slowdown`) need the noise of a series apart from its level shifts: a run
that slowed down halfway is not a noisy run, and the misfit of one level
is no noise.

Example:

    residuals = best_three_levels(np.log(rates))  # None under 3 values
"""

from __future__ import annotations

from typing import Final, Optional

import numpy as np

# At most this many candidate change points (a grid), so a fit costs
# O(GRID**2) however long the series.
GRID: Final = 160


def best_three_levels(series: np.ndarray) -> Optional[np.ndarray]:
    """The residuals of the best fit of three levels (two change points on
    a grid of at most `GRID` points); None under 3 records."""
    n = len(series)
    if n < 3:
        return None
    sums = np.concatenate([np.zeros(1), np.cumsum(series)])
    points = np.unique(np.linspace(1, n - 1, min(n - 1, GRID)).astype(np.int64))
    first, second = np.meshgrid(points, points, indexing="ij")
    keep = first < second
    first, second = first[keep], second[keep]
    if not len(first):
        return None
    explained = (
        sums[first] ** 2 / first
        + (sums[second] - sums[first]) ** 2 / (second - first)
        + (sums[n] - sums[second]) ** 2 / (n - second)
    )
    best = int(np.argmax(explained))
    k1, k2 = int(first[best]), int(second[best])
    fitted = np.concatenate([
        np.full(k1, series[:k1].mean()), np.full(k2 - k1, series[k1:k2].mean()),
        np.full(n - k2, series[k2:].mean()),
    ])
    return series - fitted


