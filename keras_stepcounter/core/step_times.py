"""Per-step times of one record interval, summarised as percentiles.

A steps/sec record is a mean; `StepTimes` keeps what it hides. The
recorder `add`s each batch call's seconds (the hot path), asks for
`summary()` at a record and `clear()`s for the next interval.

Percentiles are weighted nearest-rank: a call covering k steps in s seconds
counts as k steps of s/k, and `pN` is the smallest per-step time t such
that at least N% of the interval's steps took t or less (with 100 steps of
1, 2, ..., 100 s, p10 is 10 and p99 is 99).

Memory is bounded: past `capacity` calls in one interval, the buffer is
folded into blocks of B consecutive calls (B doubling as needed), each
keeping one call's per-step time, drawn from a generator seeded alike in
every interval (deterministic, yet a slow step every 64 is not aliased as
"always the first call" would alias it), weighted by the block's steps. At
most 2 x capacity samples are sorted; `step_time/max` stays exact.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import random
from typing import Dict, Iterable, List, Optional, Tuple

from keras_stepcounter.core.checks import check_positive_int
from keras_stepcounter.core.tags import MAX_TAG, STEP_TIME_PERCENTILES, STEP_TIME_TAGS

__all__ = ["STEP_TIME_TAGS", "StepTimes"]
_SEED = 20170  # Any fixed seed: the same input always gives the same sample.


class StepTimes:
    """The per-step times of the current record interval.

    Args:
        capacity: Batch calls kept exactly per interval (at least 2).
            Beyond it, the calls are folded into a sample of at most
            `capacity` blocks (see the module docstring): memory stays
            bounded and `step_time/max` exact.

    Example:

    ```python
    times = StepTimes()
    for seconds in (0.25, 0.25, 1.0):
        times.add(seconds)
    times.add(0.5, steps=2)  # One call covering 2 steps of 0.25 s.
    times.summary()
    # {'step_time/p10': 0.25, 'step_time/p50': 0.25, 'step_time/p90': 1.0,
    #  'step_time/p99': 1.0, 'step_time/max': 1.0}
    times.clear()
    ```
    """

    def __init__(self, capacity: int = 2048) -> None:
        capacity = check_positive_int("capacity", capacity)
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity!r}.")
        self.capacity = capacity
        # The interval's calls, in order: their seconds, and the steps of
        # those that did not cover `steps_per_call` (by index). The
        # recorder's hot path appends to `calls` itself (a C call, no
        # frame), and reads at least every `capacity` calls, whose `add`
        # folds the calls past `capacity`.
        self.calls: List[float] = []
        self.steps_per_call = 1
        self._other_steps: Dict[int, int] = {}
        # The folded sample: per-step seconds, and the steps each stands for.
        self._fold_values: List[float] = []
        self._fold_weights: List[int] = []
        self._block = 1  # Calls per folded sample (a power of two).
        self._dropped_max = -math.inf
        self._rng = random.Random(_SEED)

    def add(self, seconds: float, steps: Optional[int] = None) -> None:
        """Counts one batch call: `steps` steps (default `steps_per_call`)
        that took `seconds` in all."""
        if len(self.calls) >= self.capacity:
            self._fold()
        self.calls.append(seconds)
        if steps is not None and steps != self.steps_per_call:
            self._other_steps[len(self.calls) - 1] = steps

    def reweigh_last(self, steps: int) -> None:
        """The last call added covered `steps` steps, not the number it was
        added with (an epoch's short last call of `steps_per_execution`,
        known only once the step is read). Nothing after a fold."""
        if self.calls and steps > 0:
            self._other_steps[len(self.calls) - 1] = steps

    def clear(self) -> None:
        """Forgets the interval's steps (`calls` stays the same list)."""
        self.calls.clear()
        self._other_steps.clear()
        self._fold_values = []
        self._fold_weights = []
        self._block = 1
        self._dropped_max = -math.inf
        self._rng.seed(_SEED)

    def summary(self) -> Optional[Dict[str, float]]:
        """`step_time/p10`, `/p50`, `/p90`, `/p99`, `/max` in seconds per step.

        Over the steps added since the last `clear()`; `None` when there
        are none.
        """
        raw_values, raw_weights = self._raw()
        values = self._fold_values + raw_values
        weights = self._fold_weights + raw_weights
        if not values:
            return None
        scalars = _percentiles(values, weights)
        scalars[MAX_TAG] = max(max(values), self._dropped_max)
        return scalars

    def _raw(self) -> Tuple[List[float], List[int]]:
        """The buffer's (per-step seconds, steps)."""
        secs, steps = self._valid_calls()
        return list(map(operator.truediv, secs, steps)), steps

    def _valid_calls(self) -> Tuple[List[float], List[int]]:
        secs, steps = list(self.calls), [self.steps_per_call] * len(self.calls)
        for index, count in self._other_steps.items():
            steps[index] = count
        if steps and min(steps) <= 0:  # No weight, and no division.
            kept = [(s, k) for s, k in zip(secs, steps) if k > 0]
            secs, steps = [s for s, _ in kept], [k for _, k in kept]
        return secs, steps

    def _fold(self) -> None:
        """Moves the full buffer into the folded sample, in blocks.

        C-level list operations only, plus one Python step per block: the
        fold's cost spread over the calls that filled the buffer is a few
        tens of nanoseconds a call.
        """
        secs, steps = self._valid_calls()
        self.calls.clear()
        self._other_steps.clear()
        if secs:
            if steps.count(steps[0]) == len(steps):
                slowest = max(secs) / steps[0]  # Same floats as per call.
            else:
                slowest = max(map(operator.truediv, secs, steps))
            self._dropped_max = max(self._dropped_max, slowest)
            picks = self._block_picks(len(secs), self._block)
            self._fold_values += map(
                operator.truediv,
                map(secs.__getitem__, picks),
                map(steps.__getitem__, picks),
            )
            self._fold_weights += _block_weights(steps, self._block)
        while len(self._fold_values) > self.capacity:
            picks = self._block_picks(len(self._fold_values), 2)
            self._fold_values = list(map(self._fold_values.__getitem__, picks))
            self._fold_weights = _block_weights(self._fold_weights, 2)
            self._block *= 2

    def _block_picks(self, length: int, size: int) -> List[int]:
        """One index, at random, in each run of `size` (a power of two)."""
        starts = range(0, length, size)
        if size == 1:
            return list(starts)
        if size <= 256:  # Random bytes, each taken modulo size: C-level.
            offsets: Iterable[int] = self._rng.randbytes(len(starts)).translate(
                bytes(range(size)) * (256 // size)
            )
        else:
            offsets = [self._rng.randrange(size) for _ in starts]
        picks = list(map(operator.add, starts, offsets))
        if picks[-1] >= length:  # The last run is short: pick inside it.
            picks[-1] = starts[-1] + self._rng.randrange(length - starts[-1])
        return picks


def _block_weights(weights: List[int], size: int) -> List[int]:
    """The sum of each run of `size` weights."""
    if size == 1:
        return list(weights)
    full, rest = divmod(len(weights), size)
    if weights.count(weights[0]) == len(weights):
        return [weights[0] * size] * full + ([weights[0] * rest] if rest else [])
    cumulative = list(itertools.accumulate(weights))
    ends = cumulative[size - 1 :: size] + ([cumulative[-1]] if rest else [])
    return list(map(operator.sub, ends, [0] + ends[:-1]))


def _percentiles(values: List[float], weights: List[int]) -> Dict[str, float]:
    """Weighted nearest-rank p10, p50, p90, p99 (see the module docstring)."""
    if weights.count(weights[0]) == len(weights):
        # Equal weights (the usual case): ranks count samples; sort floats.
        ordered = sorted(values)
        total = len(ordered)
        return {
            tag: ordered[_rank(percent, total) - 1] for tag, percent in STEP_TIME_PERCENTILES
        }
    samples = sorted(zip(values, weights))
    ordered = [value for value, _ in samples]
    cumulative = list(itertools.accumulate(weight for _, weight in samples))
    total = cumulative[-1]
    return {
        tag: ordered[bisect.bisect_left(cumulative, _rank(percent, total))]
        for tag, percent in STEP_TIME_PERCENTILES
    }


def _rank(percent: int, total: int) -> int:
    """The nearest rank: ceil(percent% of total), at least 1, in integers."""
    return max(1, -(-percent * total // 100))
