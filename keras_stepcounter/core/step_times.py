"""Per-step times of one record interval, summarised as percentiles.

A steps/sec record is a mean; `StepTimes` keeps what the mean hides: the
time of each step in the interval, so that a record can also say how slow
the slowest step, or one step in a hundred, was. The recorder adds the
seconds of each batch callback as it ends (`add`, on the hot path), asks
for `summary()` at a record and `clear()`s for the next interval.

Percentiles are weighted nearest-rank: a call covering k steps in s seconds
counts as k steps of s/k seconds each, and `pN` is the smallest per-step
time t such that at least N% of the interval's steps took t or less. With
100 steps of 1, 2, ..., 100 seconds, p50 is 50, p90 is 90 and p99 is 99.

Memory is bounded. When one interval brings more calls than `capacity`
(a long `every_n_secs`, fast steps), the full buffer is folded into a
sample of blocks: its calls are grouped in blocks of B consecutive calls
(B starts at 1), each block keeps one of its calls' per-step time,
weighted by all the block's steps, and while more than `capacity` blocks
are kept, neighbouring blocks pair up the same way and B doubles. So at
most 2 x capacity samples are kept and sorted, and the percentiles come
from about one call in B. The call a block keeps is drawn from a generator
seeded the same way in every interval: the result is deterministic, yet a
periodic pattern (a slow step every 64 steps) is not aliased the way
"always the first call" would alias it. `step_time/max` stays exact (the
maximum of the dropped times is kept).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Dict, List, Optional, Tuple

from keras_stepcounter.core.checks import check_positive_int

P50_TAG = "step_time/p50"
P90_TAG = "step_time/p90"
P99_TAG = "step_time/p99"
MAX_TAG = "step_time/max"
STEP_TIME_TAGS = (P50_TAG, P90_TAG, P99_TAG, MAX_TAG)
_PERCENTILES = ((P50_TAG, 50), (P90_TAG, 90), (P99_TAG, 99))
_SEED = 20170  # Any fixed seed: the same input always gives the same sample.

# (seconds per step, steps it stands for)
_Sample = Tuple[float, int]


class StepTimes:
    """The per-step times of the current record interval.

    Args:
        capacity: Batch calls kept exactly per interval (at least 2).
            Beyond it, older calls are folded into a systematic sample
            (see the module docstring); memory stays fixed either way.

    Example:

    ```python
    times = StepTimes()
    for seconds in (0.25, 0.25, 1.0):
        times.add(seconds)
    times.add(0.5, steps=2)  # One call covering 2 steps of 0.25 s.
    times.summary()
    # {'step_time/p50': 0.25, 'step_time/p90': 1.0,
    #  'step_time/p99': 1.0, 'step_time/max': 1.0}
    times.clear()
    ```
    """

    def __init__(self, capacity: int = 2048) -> None:
        capacity = check_positive_int("capacity", capacity)
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity!r}.")
        self._capacity = capacity
        # Allocated once: `add` only stores into them.
        self._secs: List[float] = [0.0] * capacity
        self._steps: List[int] = [0] * capacity
        self._n = 0
        self._folded: List[_Sample] = []
        self._block = 1
        self._dropped_max = -math.inf
        self._rng = random.Random(_SEED)

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, seconds: float, steps: int = 1) -> None:
        """Counts one batch call: `steps` steps that took `seconds` in all."""
        n = self._n
        try:
            self._secs[n] = seconds
            self._steps[n] = steps
        except IndexError:  # Full: rare, so no bound check on every call.
            self._fold()
            self._secs[0] = seconds
            self._steps[0] = steps
            n = 0
        self._n = n + 1

    def clear(self) -> None:
        """Forgets the interval's steps (the buffer is kept)."""
        self._n = 0
        self._folded = []
        self._block = 1
        self._dropped_max = -math.inf
        self._rng.seed(_SEED)

    def summary(self) -> Optional[Dict[str, float]]:
        """`step_time/p50`, `/p90`, `/p99`, `/max` in seconds per step.

        Over the steps added since the last `clear()`; `None` when there
        are none.
        """
        samples = sorted(self._folded + self._raw_samples())
        if not samples:
            return None
        values = [value for value, _ in samples]
        cumulative = list(itertools.accumulate(steps for _, steps in samples))
        total = cumulative[-1]
        scalars = {
            tag: values[bisect.bisect_left(cumulative, _rank(percent, total))]
            for tag, percent in _PERCENTILES
        }
        scalars[MAX_TAG] = max(values[-1], self._dropped_max)
        return scalars

    def _raw_samples(self) -> List[_Sample]:
        # Calls that cover no step carry no weight (and cannot divide).
        return [
            (seconds / steps, steps)
            for seconds, steps in zip(self._secs[: self._n], self._steps[: self._n])
            if steps > 0
        ]

    def _fold(self) -> None:
        """Moves the full buffer into the folded sample, in blocks."""
        self._folded.extend(self._blocks(self._raw_samples(), self._block))
        self._n = 0
        while len(self._folded) > self._capacity:
            self._folded = self._blocks(self._folded, 2)
            self._block *= 2

    def _blocks(self, samples: List[_Sample], size: int) -> List[_Sample]:
        """Each run of `size` samples as one of them, weighted by all."""
        blocks = []
        for start in range(0, len(samples), size):
            group = samples[start : start + size]
            kept = group[int(self._rng.random() * len(group))][0]
            self._dropped_max = max(self._dropped_max, max(v for v, _ in group))
            blocks.append((kept, sum(steps for _, steps in group)))
        return blocks


def _rank(percent: int, total: int) -> int:
    """The nearest rank: ceil(percent% of total), at least 1, in integers."""
    return max(1, -(-percent * total // 100))
