"""The report's statistics: one percentile rule, which records a comparison
uses, and one bootstrap for the ratio of two medians.

Percentiles are numpy's default "linear" method (`numpy.percentile`): the
p-th percentile of n sorted values lies at position `p / 100 * (n - 1)`,
interpolated linearly between neighbours, so the median of an even number
of values is the mean of the middle two.

Records whose value is NaN or infinite (a diverged run, a zero-length
interval) are counted but left out of every statistic; where no finite
value is left, a statistic is None.

Ratios of medians (a run against a baseline, a run after a slowdown against
before it) get a 95% interval from a circular block bootstrap: each series
of records is resampled as blocks of `block_length(n)` consecutive records
(so a slow minute, which spans several records, stays together as it did
in the run), `RESAMPLES` times, from a generator seeded with `SEED`, so the
same records always give the same interval. The interval is the 2.5th and
97.5th percentile of the resampled ratios. Under `MIN_RECORDS` records in
either series there is no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Iterator, List, Optional, Sequence, Union

import numpy as np

from keras_stepcounter.tools.events import ScalarRecord

PERCENTILE_METHOD: Final = "linear"
# A rate record below this fraction of its run's median is a stall.
STALL_FRACTION = 0.5

CONFIDENCE: Final = 0.95
RESAMPLES: Final = 2000
SEED: Final = 0
# Fewer records than this in either series: a ratio, but no interval.
MIN_RECORDS: Final = 5
# The fewest blocks a series is cut into for resampling.
MIN_BLOCKS: Final = 6
# Resampled values held at once (8 bytes each): bounds the memory used.
_CHUNK = 1_000_000

FASTER: Final = "faster"
SLOWER: Final = "slower"
NO_DIFFERENCE: Final = "no difference"


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


def measured_from(
    records: Sequence[ScalarRecord], from_step: Optional[int] = None
) -> List[ScalarRecord]:
    """The rate records whose interval is known and starts at `from_step` or later.

    A record measures the steps since the record before it, so the first
    record (its start, the baseline step, is not written down) is left out,
    and so is every record whose previous one is below `from_step`.
    """
    start = -math.inf if from_step is None else from_step
    return [
        record
        for previous, record in zip(records, records[1:])
        if previous.step >= start and math.isfinite(record.value) and record.value > 0
    ]


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio of two medians and its bootstrap interval (None: too few records)."""

    ratio: float
    low: Optional[float]
    high: Optional[float]


def block_length(n: int) -> int:
    """The bootstrap's block for `n` records: the smallest length whose
    square is at least `n` (7 records of 49, 100 of 10,000), but short
    enough for `MIN_BLOCKS` blocks (2 of 12), so resamples can differ."""
    root = math.isqrt(n - 1) + 1 if n > 1 else 1
    return max(1, min(root, n // MIN_BLOCKS))


def chunks(count: int, n: int) -> Iterator[int]:
    """Sizes adding up to `count`, of rows of `n` values each held at once:
    at most `_CHUNK` values a chunk (one at least), so memory stays bounded."""
    rows = max(1, _CHUNK // max(n, 1))
    for done in range(0, count, rows):
        yield min(rows, count - done)


def block_resamples(
    n: int, count: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """`count` circular block resamples of positions `0..n-1`, a chunk
    (`chunks`) at a time, as arrays of shape (rows, n)."""
    length = block_length(n)
    blocks = -(-n // length)
    for k in chunks(count, n):
        starts = rng.integers(0, n, size=(k, blocks))
        index = (starts[:, :, None] + np.arange(length)) % n
        yield index.reshape(k, -1)[:, :n]


def bootstrap_medians(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`RESAMPLES` medians of circular block resamples of `values`."""
    return np.concatenate([
        np.median(values[index], axis=1)
        for index in block_resamples(len(values), RESAMPLES, rng)
    ])


Values = Union[Sequence[float], np.ndarray]


def median_ratio(numerator: Values, denominator: Values) -> RatioEstimate:
    """median(numerator) / median(denominator), with its 95% interval.

    Both hold positive finite values, at least one each.
    """
    top = np.asarray(numerator, dtype=np.float64)
    bottom = np.asarray(denominator, dtype=np.float64)
    ratio = float(np.median(top) / np.median(bottom))
    if min(len(top), len(bottom)) < MIN_RECORDS:
        return RatioEstimate(ratio, None, None)
    rng = np.random.default_rng(SEED)
    resampled = bootstrap_medians(top, rng) / bootstrap_medians(bottom, rng)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail], method=PERCENTILE_METHOD)
    return RatioEstimate(ratio, float(low), float(high))


def below(high: Optional[float], margin: float) -> bool:
    """Whether an interval whose top is `high` lies wholly below 1 - `margin`:
    slower by more than `margin` with 95% confidence."""
    return high is not None and high < 1 - margin


def verdict(estimate: Optional[RatioEstimate], margin: float) -> str:
    """SLOWER or FASTER when the whole interval lies beyond 1 -/+ `margin`."""
    if estimate is None or estimate.low is None:
        return NO_DIFFERENCE
    if below(estimate.high, margin):
        return SLOWER
    if estimate.low > 1 + margin:
        return FASTER
    return NO_DIFFERENCE
