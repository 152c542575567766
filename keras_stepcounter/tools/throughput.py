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

import math
from dataclasses import dataclass
from typing import Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from keras_stepcounter.tools.scalar_columns import ScalarRecord, columns_of
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


@dataclass(frozen=True)
class Intervals:
    """One tag's records as columns: where each interval starts (NaN where
    not known), the record's step and its rate. Iterating gives `Interval`s.
    """

    starts: np.ndarray
    steps_at: np.ndarray
    rates: np.ndarray

    def __len__(self) -> int:
        return len(self.rates)

    def __iter__(self) -> Iterator[Interval]:
        for start, step, rate in zip(
            self.starts.tolist(), self.steps_at.tolist(), self.rates.tolist()
        ):
            yield Interval(None if math.isnan(start) else int(start), step, rate)

    def select(self, keep: Union[np.ndarray, slice]) -> "Intervals":
        return Intervals(self.starts[keep], self.steps_at[keep], self.rates[keep])

    @property
    def covered(self) -> np.ndarray:
        """Steps each covers; NaN where not known or not positive."""
        with np.errstate(invalid="ignore"):
            covered = self.steps_at - self.starts
        return np.where(covered > 0, covered, np.nan)

    @property
    def secs(self) -> np.ndarray:
        """Training seconds each took; NaN without steps or a finite
        positive rate."""
        usable = np.isfinite(self.rates) & (self.rates > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(usable, self.covered / np.where(usable, self.rates, 1.0),
                            np.nan)

    @property
    def counted(self) -> np.ndarray:
        """Whether each has both steps and seconds (counts in throughput)."""
        return ~np.isnan(self.secs)


def measured_intervals(
    records: Sequence[ScalarRecord], baselines: Optional[Sequence[int]]
) -> Intervals:
    """Each record of one run's rate tag with where its interval starts.

    Args:
        records: One run's records of one rate tag, in the order written.
        baselines: The run's `baseline_step` steps, or None where it has no
            such record (the fallback: the gap to the previous record).

    Example:

        [i.steps for i in measured_intervals(records, [1])]
    """
    columns = columns_of(records)
    steps = columns.steps.astype(np.float64)
    # In place where it can be: a million records' column is 8 MB, and the
    # report's peak memory is a sum of such columns.
    starts = np.empty_like(steps)  # The previous record's step, at first.
    starts[:1] = np.nan
    starts[1:] = steps[:-1]
    if baselines is not None:
        ordered = np.sort(np.asarray(baselines, dtype=np.float64))
        found = np.searchsorted(ordered, steps, side="left")
        known = found > 0
        np.subtract(found, 1, out=found, where=known)
        base = ordered[found] if len(ordered) else np.full(len(steps), np.nan)
        del found
        base[~known] = np.nan
        with np.errstate(invalid="ignore"):
            went_back = starts >= steps  # Only a baseline tells.
        del steps
        np.fmax(starts, base, out=starts)
        np.copyto(starts, base, where=went_back)
    return Intervals(starts, columns.steps, columns.values)


def baseline_steps(scalars: Mapping[str, Sequence[ScalarRecord]]) -> Optional[List[int]]:
    """The run's `baseline_step` steps, or None where none is recorded."""
    records = scalars.get(BASELINE_STEP_TAG)
    if not records:
        return None
    return columns_of(records).steps.tolist()


def fallback_notice(run: str) -> str:
    """The one line a run without `baseline_step` records gets."""
    return (
        f"{run}: no {BASELINE_STEP_TAG} records (files written by an older "
        "version, the v1 hook or GraphStepCounter): each rate record's steps "
        "are taken as the gap to the record before, and the run's first record "
        "(its start unknown) is left out of throughput"
    )


def steps_and_secs(intervals: Intervals) -> Tuple[np.ndarray, np.ndarray]:
    """The steps and seconds of the intervals that have both, as arrays."""
    secs = intervals.secs
    counted = ~np.isnan(secs)
    return intervals.covered[counted], secs[counted]


def throughput(intervals: Intervals) -> Optional[float]:
    """Steps over training seconds of the intervals that have both; None if none."""
    steps, secs = steps_and_secs(intervals)
    total = float(secs.sum())
    return float(steps.sum()) / total if total > 0 else None
