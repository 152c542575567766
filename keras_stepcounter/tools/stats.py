"""The report's one percentile rule, and how it treats NaN and inf.

Percentiles are numpy's default "linear" method (`numpy.percentile`): the
p-th percentile of n sorted values lies at position `p / 100 * (n - 1)`,
interpolated linearly between neighbours, so the median of an even number
of values is the mean of the middle two.

Records whose value is NaN or infinite (a diverged run, a zero-length
interval) are counted but left out of every statistic; where no finite
value is left, a statistic is None.
"""

from __future__ import annotations

import math
from typing import Final, List, Optional, Sequence

import numpy as np

PERCENTILE_METHOD: Final = "linear"
# A rate record below this fraction of its run's median is a stall.
STALL_FRACTION = 0.5


def finite(values: Sequence[float]) -> List[float]:
    return [v for v in values if math.isfinite(v)]


def percentiles(values: Sequence[float], qs: Sequence[float]) -> List[Optional[float]]:
    """The `qs` percentiles of the finite `values`; Nones if there are none."""
    kept = finite(values)
    if not kept:
        return [None] * len(qs)
    found = np.percentile(
        np.asarray(kept, dtype=np.float64), list(qs), method=PERCENTILE_METHOD
    )
    return [float(v) for v in found]


def median(values: Sequence[float]) -> Optional[float]:
    return percentiles(values, [50])[0]


def number_text(value: float) -> str:
    """A non-finite value as JSON-safe text: "nan", "inf" or "-inf"."""
    return str(float(value))
