"""A 95% interval for the ratio of two runs' throughputs that keeps its
coverage when records are autocorrelated (as rates on a busy machine are:
a slow minute spans several records).

A run's throughput over its records is `T = sum(steps) / sum(secs)`. Its
log has the delta-method variance `var(sum(z)) / sum(secs)**2`, with
`z_i = secs_i - steps_i / T` (each record's seconds less what the run's
throughput would give it). Records are not independent, so `var(sum(z))`
is not `sum(z**2)`: for an AR(1) series with lag-one autocorrelation `phi`
it is `n / n_eff` times larger, where `n_eff = n (1 - phi) / (1 + phi)` is
the effective record count.

`phi` is estimated from the records (the lag-one autocorrelation of `z`),
and, since that estimate is biased low for short series and itself
uncertain, raised conservatively: the bias `(1 + 3 phi) / n` is added back,
then `PHI_MARGIN` standard errors `sqrt((1 - phi**2) / n)`. Where a run's
time per step shifted level for sure (it slowed down halfway), `z` is
taken around its levels instead (`noise_of`): a level shift is no noise.
From that conservative `n_eff`:

* `var(log T) = sum(z**2) / (n_eff - 1) * n / sum(secs)**2` (the `- 1`
  allows for the mean estimated from the same records),
* the ratio's interval is `log(Ta / Tb) +/- t * sqrt(Va + Vb)`, with `t`
  Student's quantile at the Welch-Satterthwaite degrees of freedom,
* with fewer than `MIN_EFFECTIVE` effective records in either run there is
  no interval: 30 records at phi 0.9 hold about two independent records'
  worth of information, and the honest answer is "cannot tell".

An analytic method (no resampling): a report on a million records stays
fast, and the same records always give the same interval. Its coverage,
measured in a fixed-seed simulation (tests/test_report_coverage.py), is
quoted in docs/report-and-tensorboard.md.

Example:

    estimate = throughput_ratio(steps_a, secs_a, steps_b, secs_b)
    print(estimate.ratio, estimate.low, estimate.high)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Optional

import numpy as np

from keras_stepcounter.tools.levels import best_three_levels

CONFIDENCE: Final = 0.95
# The normal quantile of CONFIDENCE, two-sided.
_Z: Final = 1.959963984540054
# Standard errors added to the estimated autocorrelation: with 1.0, every
# cell of the simulation the guide quotes covers at least 94% (the promise
# is 93%); 1.645 declined far more often for no more coverage.
PHI_MARGIN: Final = 1.0
MAX_PHI: Final = 0.99
# A CUSUM score above this: the run's time per step shifted level.
SHIFT_SCORE: Final = 1.9
# Fewer effective records than this in either run: no interval.
MIN_EFFECTIVE: Final = 10.0


@dataclass(frozen=True)
class RunSpread:
    """One run's throughput, the variance of its log, and its effective
    record count (conservative)."""

    throughput: float
    log_variance: float
    effective: float
    records: int


@dataclass(frozen=True)
class RatioEstimate:
    """A throughput ratio and its 95% interval (None: declined, too few
    effective records)."""

    ratio: float
    low: Optional[float]
    high: Optional[float]
    effective: float


def conservative_phi(series: np.ndarray) -> float:
    """The lag-one autocorrelation of `series` (mean 0), raised for its
    small-sample bias and by `PHI_MARGIN` standard errors, in [0, MAX_PHI]."""
    n = len(series)
    spread = float(np.dot(series, series))
    if n < 3 or spread == 0:
        return 0.0 if spread == 0 and n >= 3 else MAX_PHI
    phi = float(np.dot(series[:-1], series[1:])) / spread
    phi += (1 + 3 * max(phi, 0.0)) / n
    phi = min(max(phi, 0.0), MAX_PHI)
    phi += PHI_MARGIN * math.sqrt((1 - phi * phi) / n)
    return min(max(phi, 0.0), MAX_PHI)


def effective_records(n: int, phi: float) -> float:
    """`n (1 - phi) / (1 + phi)`: independent records' worth of `n` AR(1) ones."""
    return n * (1 - phi) / (1 + phi)


def run_spread(steps: np.ndarray, secs: np.ndarray) -> Optional[RunSpread]:
    """A run's throughput and the variance of its log; None without records.

    Args:
        steps: Each record's steps (positive).
        secs: Each record's training seconds (positive), in record order.
    """
    n = len(secs)
    total_secs = float(secs.sum())
    if n == 0 or total_secs <= 0:
        return None
    throughput = float(steps.sum()) / total_secs
    noise = noise_of(steps, secs)
    effective = effective_records(n, conservative_phi(noise))
    if effective <= 1:
        return RunSpread(throughput, math.inf, effective, n)
    variance = float(np.dot(noise, noise)) * n / (effective - 1)
    return RunSpread(throughput, variance / total_secs**2, effective, n)


def noise_of(steps: np.ndarray, secs: np.ndarray) -> np.ndarray:
    """Each record's seconds less what its steps would take at the run's
    throughput; or, where the run's time per step shifted level for sure,
    less what they would take at its stretch's time per step.

    A run that slowed down halfway is not a noisy run: around one level its
    records look strongly autocorrelated, which would hide what it lost.
    "For sure": the shift's CUSUM score (`shift_score`) is above
    `SHIFT_SCORE`, which a steady run exceeds about 1.5 times in 1000
    (`2 exp(-2 x**2)`).
    Otherwise the plain residuals: fitting levels to a steady run would take
    its slow wander for shifts and narrow the interval.
    """
    plain = secs - steps * (secs.sum() / steps.sum())
    per_step = secs / steps
    around = best_three_levels(per_step)
    if around is None or shift_score(per_step, around) <= SHIFT_SCORE:
        return plain
    return around * steps


def shift_score(series: np.ndarray, around: np.ndarray) -> float:
    """The largest excursion of the running sum of `series` from its mean,
    in units of sqrt(n) long-run standard deviations of `around` (the
    residuals around its levels). A steady series's score is the maximum of
    a Brownian bridge's absolute value."""
    n = len(series)
    phi = conservative_phi(around - around.mean())
    variance = float(np.dot(around, around)) / max(n - 3, 1) * (1 + phi) / (1 - phi)
    if variance <= 0:
        return 0.0
    excursion = np.abs(np.cumsum(series - series.mean())).max()
    return float(excursion) / math.sqrt(n * variance)


# Student's t 97.5% quantiles for 1 to 10 degrees of freedom.
_T_TABLE: Final = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_quantile(dof: float) -> float:
    """Student's t two-sided `CONFIDENCE` quantile: from a table up to 10
    degrees of freedom (linear in 1 / dof between its entries, the lower
    entry's below 1), a Cornish-Fisher series above (within 0.01%)."""
    z = _Z
    if not math.isfinite(dof):
        return z
    if dof <= 1:
        return _T_TABLE[0]
    if dof < 10:
        low = int(dof)
        weight = (1 / low - 1 / dof) / (1 / low - 1 / (low + 1))
        return _T_TABLE[low - 1] + weight * (_T_TABLE[low] - _T_TABLE[low - 1])
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def ratio_of(run: RunSpread, baseline: RunSpread) -> RatioEstimate:
    """`run`'s throughput over `baseline`'s, with its interval (or none)."""
    ratio = run.throughput / baseline.throughput
    effective = min(run.effective, baseline.effective)
    if effective < MIN_EFFECTIVE:
        return RatioEstimate(ratio, None, None, effective)
    total = run.log_variance + baseline.log_variance
    dof = total**2 / (
        run.log_variance**2 / (run.effective - 1)
        + baseline.log_variance**2 / (baseline.effective - 1)
    ) if total > 0 else math.inf
    half = t_quantile(dof) * math.sqrt(total)
    return RatioEstimate(
        ratio, ratio * math.exp(-half), ratio * math.exp(half), effective
    )


def throughput_ratio(
    steps: np.ndarray, secs: np.ndarray, base_steps: np.ndarray, base_secs: np.ndarray
) -> Optional[RatioEstimate]:
    """The throughput of (`steps`, `secs`) over (`base_steps`, `base_secs`),
    with its 95% interval; None where either has no records."""
    run, baseline = run_spread(steps, secs), run_spread(base_steps, base_secs)
    if run is None or baseline is None:
        return None
    return ratio_of(run, baseline)
