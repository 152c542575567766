"""Where a run's rate dropped and stayed down: the report's slowdown section.

A slow drift (a memory leak, thermal throttling, a growing shuffle buffer)
or a step change (a co-located job, a degraded link) looks flat at
TensorBoard's zoom. For each run and rate tag, the records after warm-up
(`compare.after_warm_up`: from `from_step` on, else all but the first) with
a finite positive rate are looked at in three steps, on the log rate with
single outliers clipped (to `CLIP` robust standard deviations of the
median: a lone slow record neither makes nor hides a slowdown).

1. Where: the ramp that fits best. The model is a level, then a straight
   line from record `a` to record `b`, then a level (`y = alpha + beta *
   clip(i, a, b)`), least squares over every pair `a < b` (a step change
   is `b = a + 1`; a drift to the run's end is `b` its last record). Each
   pair's fit costs O(1) from prefix sums; beyond `_FULL_SEARCH` records a
   coarse grid picks where to look closely. A ramp that fits hardly
   better than a step change within it (by less than BIC's price of its
   second knot) is taken as that step.
2. Whether it is more than noise: a one-sided CUSUM score, the largest
   excess of the running sum of the log rate over its share of the total,
   in units of `sqrt(n)` long-run standard deviations. The long-run
   variance comes from the residuals around the fitted ramp, or around the
   best three levels where they fit better (so the drift or a partial
   recovery does not inflate it, as an autocorrelation taken around the
   median would), and their autocorrelation, raised conservatively
   (`confidence.conservative_phi`). For a steady run the score is the
   maximum of a Brownian bridge, above `x` with probability `exp(-2 x**2)`;
   it must exceed `THRESHOLD`.
3. Whether it matters: the rate after is below `1 - MARGIN` of the rate
   before (the fitted levels), and the rate stayed down: the median of the
   run's last records (a third of those after the ramp, at least
   `MIN_TAIL`) is nearer the rate after than the rate before. A dip that
   recovers is not a slowdown.

False alarms and power, measured in the fixed-seed simulation of
tests/test_report_drift.py, are quoted in docs/report-and-tensorboard.md.

Example:

    for s in find_slowdowns(report.runs):
        print(s.run, s.tag, s.from_step, s.step, s.ratio)
"""

from __future__ import annotations

import math
from typing import Final, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_stepcounter.tools.compare import after_warm_up
from keras_stepcounter.tools.confidence import conservative_phi
from keras_stepcounter.tools.scalar_columns import ScalarRecord
from keras_stepcounter.tools.levels import best_three_levels
from keras_stepcounter.tools.results import Slowdown
from keras_stepcounter.tools.tags import is_rate_tag, tag_order
from keras_stepcounter.tools.throughput import baseline_steps, measured_intervals

# Fewer records than this after warm-up: no slowdown is looked for.
MIN_RECORDS: Final = 10
MIN_TAIL: Final = 5
MARGIN: Final = 0.05
# exp(-2 x**2) = 0.002: a steady run's chance to score above it.
THRESHOLD: Final = 1.76
CLIP: Final = 5.0
_WINDOW: Final = 5
# Above this many records, a coarse grid of this many points comes first.
_FULL_SEARCH: Final = 160
# Running medians computed at a time (`clipped`).
_MEDIAN_ROWS: Final = 1 << 16


def find_slowdowns(
    runs: Mapping[str, Mapping[str, Sequence[ScalarRecord]]],
    from_step: Optional[int] = None,
) -> List[Slowdown]:
    """The slowdown of each run and rate tag that has one, in run then tag order."""
    found = []
    for run, scalars in runs.items():
        baselines = baseline_steps(scalars)
        for tag in sorted((t for t in scalars if is_rate_tag(t)), key=tag_order):
            slowdown = find_slowdown(run, tag, scalars[tag], from_step, baselines)
            if slowdown is not None:
                found.append(slowdown)
    return found


def find_slowdown(
    run: str,
    tag: str,
    records: Sequence[ScalarRecord],
    from_step: Optional[int] = None,
    baselines: Optional[Sequence[int]] = None,
) -> Optional[Slowdown]:
    """Where `records` (one run's, of one rate tag) dropped and stayed down.

    Args:
        run, tag: Named in the result.
        records: The run's records of `tag`, in the order written.
        from_step: Leave out records measuring steps before it (warm-up).
        baselines: The run's `baseline_step` steps, if recorded.
    """
    intervals = after_warm_up(measured_intervals(records, baselines), from_step)
    rates = intervals.rates
    used = intervals.steps_at[np.isfinite(rates) & (rates > 0)]
    if len(used) < MIN_RECORDS:
        return None
    logs = clipped(np.log(rates[np.isfinite(rates) & (rates > 0)]))
    ramp = best_ramp(logs)
    if ramp is None:
        return None
    a, b, fitted = ramp
    before, after = float(fitted[0]), float(fitted[-1])
    score = drop_score(logs, noise_around(logs, fitted))
    tail = logs[-max(MIN_TAIL, (len(logs) - b) // 3):]
    stayed_down = float(np.median(tail)) < (before + after) / 2
    ratio = math.exp(after - before)
    if not (score > THRESHOLD and ratio < 1 - MARGIN and stayed_down):
        return None
    return Slowdown(
        run=run,
        tag=tag,
        from_step=int(used[a]),
        step=int(used[b]),
        rate_before=math.exp(before),
        rate_after=math.exp(after),
        ratio=ratio,
        score=score,
        records_before=a + 1,
        records_during=b - a - 1,
        records_after=len(used) - b,
    )


def clipped(logs: np.ndarray) -> np.ndarray:
    """`logs` with lone outliers pulled in: each value kept within `CLIP`
    robust standard deviations (1.4826 MAD of the differences from it) of
    the running median of `_WINDOW` records around it. A running median
    keeps a step change where it is (a plain median of a run that spent
    most of its time at one rate would clip the other rate away)."""
    if len(logs) < _WINDOW:
        return logs
    half = _WINDOW // 2
    padded = np.concatenate([np.full(half, logs[0]), logs, np.full(half, logs[-1])])
    windows = np.lib.stride_tricks.sliding_window_view(padded, _WINDOW)
    # A block of windows at a time, and in place after: the median copies
    # what it sorts (all windows at once: five copies of a million records).
    local = np.empty_like(logs)
    for begin in range(0, len(windows), _MEDIAN_ROWS):
        local[begin:begin + _MEDIAN_ROWS] = np.median(
            windows[begin:begin + _MEDIAN_ROWS], axis=1)
    del windows, padded
    away = logs - local
    np.abs(away, out=away)
    spread = 1.4826 * float(np.median(away, overwrite_input=True))
    del away
    if spread == 0:
        return logs
    low = local - CLIP * spread
    high = np.add(local, CLIP * spread, out=local)
    return np.clip(logs, low, high)


def noise_around(logs: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """The residuals of `logs` around the ramp `fitted` or around the best
    three levels, whichever fits better: a drop that recovers in part is
    no ramp, and its misfit is no noise."""
    residuals = logs - fitted
    levels = best_three_levels(logs)
    if levels is not None and np.dot(levels, levels) < np.dot(residuals, residuals):
        return levels
    return residuals


def drop_score(logs: np.ndarray, residuals: np.ndarray) -> float:
    """The one-sided CUSUM score of a drop in `logs`, in long-run standard
    deviations (from `residuals`, the misfit of the best ramp) times sqrt(n)."""
    n = len(logs)
    centred = residuals - residuals.mean()
    phi = conservative_phi(centred)
    variance = float(np.dot(centred, centred)) / max(n - 3, 1)
    long_run = variance * (1 + phi) / (1 - phi)
    if long_run <= 0:
        return math.inf if np.ptp(logs) > 0 else 0.0
    excess = np.cumsum(logs - logs.mean())[:-1]
    return float(excess.max(initial=0.0)) / math.sqrt(n * long_run)


class _Sums:
    """Prefix sums of `y`, `i * y`, `i` and `i * i` for O(1) ramp fits."""

    def __init__(self, y: np.ndarray) -> None:
        index = np.arange(len(y), dtype=np.float64)
        zero = np.zeros(1)
        self.n = len(y)
        self.logs = y
        self.y = np.concatenate([zero, np.cumsum(y)])
        self.iy = np.concatenate([zero, np.cumsum(index * y)])
        self.i = np.concatenate([zero, np.cumsum(index)])
        self.ii = np.concatenate([zero, np.cumsum(index * index)])
        self.yy = float(np.dot(y, y))

    def fits(
        self, a: np.ndarray, b: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ramps from `a` to `b` (arrays, a < b): slope, intercept and
        the sum of squared residuals."""
        n = self.n
        a_f, b_f = a.astype(np.float64), b.astype(np.float64)
        low, high = a + 1, b
        sx = a_f * (a_f + 1) + (self.i[high] - self.i[low]) + b_f * (n - b_f)
        sxx = (a_f**2 * (a_f + 1) + (self.ii[high] - self.ii[low])
               + b_f**2 * (n - b_f))
        sxy = (a_f * self.y[low] + (self.iy[high] - self.iy[low])
               + b_f * (self.y[n] - self.y[high]))
        sy = self.y[n]
        cross = sxy - sx * sy / n
        spread = sxx - sx * sx / n
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(spread > 0, cross / spread, 0.0)
        intercept = (sy - slope * sx) / n
        misfit = self.yy - sy * sy / n - slope * cross
        return slope, intercept, misfit


def best_ramp(logs: np.ndarray) -> Optional[Tuple[int, int, np.ndarray]]:
    """The falling ramp (a, b) that fits `logs` best, with its fitted
    values; None where no ramp falls."""
    sums = _Sums(logs)
    n = len(logs)
    points = np.unique(np.linspace(0, n - 1, min(n, _FULL_SEARCH)).astype(np.int64))
    found = _best_pair(sums, points, points)
    stride = int(np.max(np.diff(points))) if len(points) > 1 else 1
    while found is not None and stride > 1:
        a, b = found
        stride = max(1, stride // 8)
        near_a = _around(a, stride * 8, stride, n)
        near_b = _around(b, stride * 8, stride, n)
        found = _best_pair(sums, near_a, near_b) or found
    if found is None:
        return None
    a, b = _step_if_as_good(sums, *found)
    slope, intercept, _ = sums.fits(np.array([a]), np.array([b]))
    fitted = intercept[0] + slope[0] * np.clip(np.arange(n), a, b)
    return a, b, fitted


def _step_if_as_good(sums: _Sums, a: int, b: int) -> Tuple[int, int]:
    """The best step change within the ramp (a, b) where it fits about as
    well: unless the ramp's misfit is lower by more than `log(n)` residual
    variances (BIC's price of its second knot; long-run variances, as
    autocorrelated noise favours a ramp), a step it is."""
    if b - a <= 1:
        return a, b
    _, _, ramp_misfit = sums.fits(np.array([a]), np.array([b]))
    starts = np.arange(a, b)
    slope, _, misfit = sums.fits(starts, starts + 1)
    misfit = np.where(slope < 0, misfit, np.inf)
    best = int(np.argmin(misfit))
    variance = float(ramp_misfit[0]) / max(sums.n - 4, 1) * _widening(sums, a, b)
    if float(misfit[best]) - float(ramp_misfit[0]) <= math.log(sums.n) * variance:
        return int(starts[best]), int(starts[best]) + 1
    return a, b


def _widening(sums: _Sums, a: int, b: int) -> float:
    """(1 + phi) / (1 - phi) of the residuals around the ramp (a, b)."""
    slope, intercept, _ = sums.fits(np.array([a]), np.array([b]))
    residuals = sums.logs - (intercept[0] + slope[0] * np.clip(
        np.arange(sums.n), a, b))
    spread = float(np.dot(residuals, residuals))
    phi = float(np.dot(residuals[:-1], residuals[1:])) / spread if spread else 0.0
    phi = min(max(phi, 0.0), 0.9)
    return (1 + phi) / (1 - phi)


def _around(center: int, reach: int, stride: int, n: int) -> np.ndarray:
    return np.unique(np.clip(np.arange(center - reach, center + reach + 1, stride),
                             0, n - 1))


def _best_pair(
    sums: _Sums, starts: np.ndarray, ends: np.ndarray
) -> Optional[Tuple[int, int]]:
    a, b = np.meshgrid(starts, ends, indexing="ij")
    keep = a < b
    a, b = a[keep], b[keep]
    if not len(a):
        return None
    slope, _, misfit = sums.fits(a, b)
    misfit = np.where(slope < 0, misfit, np.inf)
    best = int(np.argmin(misfit))
    if not math.isfinite(float(misfit[best])):
        return None
    return int(a[best]), int(b[best])
