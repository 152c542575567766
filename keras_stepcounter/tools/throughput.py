"""How many steps each rate record covers, and so its training seconds.

A rate record at step `s` measured the steps since the start of its
interval at the rate it holds, so its training seconds are `steps / rate`,
and a run's throughput over some records is their steps over their
seconds: what the user got, slow records included.

Where an interval starts: at the later of the previous record's step and
the latest `baseline_step` record below `s`. The counter writes
`baseline_step` (value: that step) wherever its rate takes a new baseline:
each fit's first step end, and where the step went back. Files without it
(written before it existed, by the v1 hook or by `GraphStepCounter`) fall
back to the gap to the previous record; then a run's first record has no
known start (its baseline was never written) and is left out of
throughput, and a second fit's first record is taken as starting at the
first fit's last record. The report says so once per run
(`fallback_notice`).

Example:

    intervals = measured_intervals(records, baselines=[1, 101])
    print(throughput(intervals))
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from keras_stepcounter.tools.events import ScalarRecord
from keras_stepcounter.tools.tags import BASELINE_STEP_TAG


@dataclass(frozen=True)
class Interval:
    """One rate record and the steps it covers: `from_step` (exclusive) to
    `step`; `from_step` is None where the start is not known."""

    from_step: Optional[int]
    step: int
    rate: float

    @property
    def steps(self) -> Optional[int]:
        """Steps covered; None where the start is not known or not below `step`."""
        if self.from_step is None or self.from_step >= self.step:
            return None
        return self.step - self.from_step

    @property
    def secs(self) -> Optional[float]:
        """Training seconds (`steps / rate`); None without steps or a
        positive finite rate."""
        steps = self.steps
        if steps is None or not (math.isfinite(self.rate) and self.rate > 0):
            return None
        return steps / self.rate


def measured_intervals(
    records: Sequence[ScalarRecord], baselines: Optional[Sequence[int]]
) -> List[Interval]:
    """Each record of one run's rate tag with where its interval starts.

    Args:
        records: One run's records of one rate tag, in the order written.
        baselines: The run's `baseline_step` steps, or None where it has no
            such record (the fallback: the gap to the previous record).

    Example:

        [i.steps for i in measured_intervals(records, [1])]
    """
    ordered = sorted(baselines) if baselines is not None else None
    intervals = []
    previous: Optional[int] = None
    for record in records:
        start = previous
        if ordered is not None:
            found = bisect.bisect_left(ordered, record.step)
            baseline = ordered[found - 1] if found else None
            if baseline is not None and (start is None or baseline > start):
                start = baseline
            if previous is not None and previous >= record.step:
                start = baseline  # The step went back: only a baseline tells.
        intervals.append(Interval(start, record.step, record.value))
        previous = record.step
    return intervals


def baseline_steps(scalars: dict) -> Optional[List[int]]:
    """The run's `baseline_step` steps, or None where none is recorded."""
    records = scalars.get(BASELINE_STEP_TAG)
    if not records:
        return None
    return [r.step for r in records]


def fallback_notice(run: str) -> str:
    """The one line a run without `baseline_step` records gets."""
    return (
        f"{run}: no {BASELINE_STEP_TAG} records (files written by an older "
        "version, the v1 hook or GraphStepCounter): each rate record's steps "
        "are taken as the gap to the record before, and the run's first record "
        "(its start unknown) is left out of throughput"
    )


def steps_and_secs(intervals: Sequence[Interval]) -> Tuple[np.ndarray, np.ndarray]:
    """The steps and seconds of the intervals that have both, as arrays."""
    pairs = [(i.steps, i.secs) for i in intervals if i.secs is not None]
    steps = np.asarray([p[0] for p in pairs], dtype=np.float64)
    secs = np.asarray([p[1] for p in pairs], dtype=np.float64)
    return steps, secs


def throughput(intervals: Sequence[Interval]) -> Optional[float]:
    """Steps over training seconds of the intervals that have both; None if none."""
    steps, secs = steps_and_secs(intervals)
    total = float(secs.sum())
    return float(steps.sum()) / total if total > 0 else None
