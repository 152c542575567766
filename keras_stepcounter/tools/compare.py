"""Is it faster? Each run's throughput against a baseline run's: `report --baseline`.

For every run other than the baseline and each rate tag (ending in `/sec`)
the baseline recorded: the ratio of the run's throughput to the
baseline's, throughput being steps over training seconds (each record's
steps over its rate, `throughput`) of the records compared, with a 95%
interval that keeps its coverage under autocorrelated records
(`confidence`), and a verdict:

* "slower" when the whole interval lies below `1 - MARGIN`,
* "faster" when it lies above `1 + MARGIN`,
* "cannot tell" when there is no interval: fewer than
  `confidence.MIN_EFFECTIVE` effective records on either side (or none),
* else "no difference" this data can resolve.

The margin is there because the interval only knows the noise within each
run: two runs of one configuration also differ by what the machine did
meanwhile (other jobs, clocks, caches), which no interval shows.

Records compared: after warm-up (from `from_step` on: those whose interval
starts at it or later; without it, all but each run's first record), with
known steps and a finite positive rate. Nothing else is dropped: slow
records count, as they cost the user time; `left_out` counts those that
could not be counted. The watchdog's stalls in the window are given with
the share of training seconds they cost. The ratio of median rates
(steady speed) stands beside it.

Example:

    report = load_report("logs", baseline="main")
    for c in report.comparisons:
        print(c.run, c.tag, c.ratio, c.low, c.high, c.verdict)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_stepcounter.tools.confidence import RatioEstimate, throughput_ratio
from keras_stepcounter.tools.scalar_columns import ScalarRecord
from keras_stepcounter.tools.results import Comparison
from keras_stepcounter.tools.stats import median
from keras_stepcounter.tools.tags import STALL_SECS_TAG, is_rate_tag, tag_order
from keras_stepcounter.tools.throughput import (
    Intervals,
    baseline_steps,
    measured_intervals,
    steps_and_secs,
)

# Differences within this fraction of the baseline's throughput are not called.
MARGIN: Final = 0.02

FASTER: Final = "faster"
SLOWER: Final = "slower"
NO_DIFFERENCE: Final = "no difference"
CANNOT_TELL: Final = "cannot tell"


@dataclass(frozen=True)
class Window:
    """One run's records of one tag after warm-up: those counted, and how
    many could not be."""

    intervals: Intervals
    left_out: int
    stall_secs: float

    def arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        """The steps and seconds of the counted records."""
        return steps_and_secs(self.intervals)

    @property
    def secs(self) -> float:
        return float(self.arrays()[1].sum())


def after_warm_up(intervals: Intervals, from_step: Optional[int]) -> Intervals:
    """The intervals starting at `from_step` or later; without it, all but
    the first (it holds the start-up)."""
    if from_step is None:
        return intervals.select(slice(1, None))
    with np.errstate(invalid="ignore"):
        return intervals.select(intervals.starts >= from_step)  # NaN: unknown.


def compared_window(
    scalars: Mapping[str, Sequence[ScalarRecord]], tag: str, from_step: Optional[int]
) -> Window:
    """The records of `tag` in one run's `scalars` that a comparison counts."""
    intervals = measured_intervals(scalars.get(tag, []), baseline_steps(scalars))
    later = after_warm_up(intervals, from_step)
    counted = later.select(later.counted)
    stall_secs = 0.0
    if len(counted):
        first, last = float(np.min(counted.starts)), int(np.max(counted.steps_at))
        stall_secs = sum(
            r.value for r in scalars.get(STALL_SECS_TAG, [])
            if first < r.step <= last and math.isfinite(r.value)
        )
    return Window(counted, len(later) - len(counted), stall_secs)


def compare_runs(
    runs: Mapping[str, Mapping[str, Sequence[ScalarRecord]]],
    baseline: str,
    from_step: Optional[int] = None,
) -> List[Comparison]:
    """Every other run's rate tags against `baseline`'s, in run then tag order.

    Only tags both recorded are compared; a run that shares none has no
    comparison (the gate calls that undecided).
    """
    comparisons = []
    for run, scalars in runs.items():
        if run == baseline:
            continue
        shared = [t for t in scalars if is_rate_tag(t) and t in runs[baseline]]
        for tag in sorted(shared, key=tag_order):
            comparisons.append(compare(
                run, tag, compared_window(scalars, tag, from_step),
                baseline, compared_window(runs[baseline], tag, from_step),
            ))
    return comparisons


def _share(stall_secs: float, window: Window) -> Optional[float]:
    secs = window.secs
    return stall_secs / secs if secs > 0 else None


def compare(
    run: str, tag: str, found: Window, baseline: str, base: Window
) -> Comparison:
    """One comparison of the run's window `found` with the baseline's `base`."""
    steps, secs = found.arrays()
    base_steps, base_secs = base.arrays()
    estimate = throughput_ratio(steps, secs, base_steps, base_secs)
    run_median = median(found.intervals.rates)
    base_median = median(base.intervals.rates)
    steady = run_median / base_median if run_median and base_median else None
    return Comparison(
        run=run,
        tag=tag,
        baseline=baseline,
        records=len(found.intervals),
        baseline_records=len(base.intervals),
        left_out=found.left_out,
        baseline_left_out=base.left_out,
        throughput=_throughput(steps, secs),
        baseline_throughput=_throughput(base_steps, base_secs),
        ratio=None if estimate is None else estimate.ratio,
        low=None if estimate is None else estimate.low,
        high=None if estimate is None else estimate.high,
        effective=None if estimate is None else estimate.effective,
        steady_ratio=steady,
        stall_secs=found.stall_secs,
        stall_share=_share(found.stall_secs, found),
        baseline_stall_secs=base.stall_secs,
        baseline_stall_share=_share(base.stall_secs, base),
        verdict=verdict(estimate, MARGIN),
    )


def _throughput(steps: np.ndarray, secs: np.ndarray) -> Optional[float]:
    total = float(secs.sum())
    return float(steps.sum()) / total if total > 0 else None


def verdict(estimate: Optional[RatioEstimate], margin: float) -> str:
    """SLOWER or FASTER when the whole interval lies beyond 1 -/+ `margin`;
    CANNOT_TELL without an interval."""
    if estimate is None or estimate.low is None or estimate.high is None:
        return CANNOT_TELL
    if estimate.high < 1 - margin:
        return SLOWER
    if estimate.low > 1 + margin:
        return FASTER
    return NO_DIFFERENCE
