"""The report's percentile rule, and which values count.

Percentiles are numpy's default "linear" method (`numpy.percentile`): the
p-th percentile of n sorted values lies at position `p / 100 * (n - 1)`,
interpolated linearly between neighbours, so the median of an even number
of values is the mean of the middle two.

Records whose value is NaN or infinite (a diverged run, a zero-length
interval) are counted but left out of every statistic; where no finite
value is left, a statistic is None.

The comparison's interval is in `confidence`; what a record's steps and
seconds are, in `throughput`.

Example:

    p10, p90 = percentiles([1.0, 2.0, 3.0], [10, 90])
"""

from __future__ import annotations

import math
from typing import Final, List, Optional, Sequence, Union

import numpy as np

PERCENTILE_METHOD: Final = "linear"
# A rate record below this fraction of its run's median is a low record.
LOW_FRACTION: Final = 0.5

Values = Union[Sequence[float], np.ndarray]


def finite(values: Sequence[float]) -> List[float]:
    return [v for v in values if math.isfinite(v)]


def percentiles(values: Values, qs: Sequence[float]) -> List[Optional[float]]:
    """The `qs` percentiles of the finite `values`; Nones if there are none."""
    array = np.asarray(values, dtype=np.float64)
    kept = array[np.isfinite(array)]
    if not kept.size:
        return [None] * len(qs)
    found = np.percentile(kept, list(qs), method=PERCENTILE_METHOD)
    return [float(v) for v in found]


def median(values: Values) -> Optional[float]:
    return percentiles(values, [50])[0]


def number_text(value: float) -> str:
    """A non-finite value as JSON-safe text: "nan", "inf" or "-inf"."""
    return str(float(value))
