"""Where a run's rate dropped and stayed down: the report's slowdown section.

A slow drift (a memory leak, thermal throttling, a growing shuffle buffer)
or a step change (a co-located job, a degraded link) looks flat at
TensorBoard's zoom. For each run and rate tag, the records measured from
`from_step` on (`stats.measured_from`; the first record is always out) are
looked at in three steps.

1. Where: the split (each side holding at least `MIN_SEGMENT` records)
   where a two-segment median fit of the log rate fits best (the least sum
   of absolute deviations from each segment's median), among the splits
   where the rate went down. A median fit, so single stalls neither make
   nor hide a split.
2. Whether it is more than noise: the records before the split must rank
   above those after it (a Mann-Whitney rank sum, in standard deviations)
   by more than the best split of the same number of records in random
   order does in 99 of 100 orders (`steady_score`). The best of many
   splits of a steady noisy run always shows some difference; this asks
   whether it is more than such a run shows. Rates on a busy machine are
   autocorrelated (a slow minute spans several records), which makes
   long stretches above or below the median common, so the score is first
   divided by the factor the records' lag-one autocorrelation (around
   their two levels) widens it by.
3. Whether it matters: the ratio of the median after the split to the
   median before it has a 95% bootstrap interval (`stats.median_ratio`)
   wholly below `1 - MARGIN`, and the rate stayed down: the median of the
   run's last records (the last third of those after the split, at least
   `MIN_SEGMENT`) is nearer the rate after than the rate before. A dip
   that recovers is not a slowdown; single slow records are the report's
   stalls.

Few records show little: under about 20 after the first, only a clear
drop passes step 2.

Example:

    for s in find_slowdowns(report.runs):
        print(s.run, s.tag, s.from_step, s.ratio)
"""

from __future__ import annotations

import functools
from typing import List, Mapping, Optional, Sequence

import numpy as np

from keras_stepcounter.tools.events import ScalarRecord
from keras_stepcounter.tools.results import Slowdown
from keras_stepcounter.tools.stats import (
    SEED,
    below,
    chunks,
    measured_from,
    median_ratio,
)
from keras_stepcounter.tools.tags import is_rate_tag, tag_order

MIN_SEGMENT = 5
MARGIN = 0.05
# The share of random orders whose best score a split must beat.
STEADY_QUANTILE = 0.99
STEADY_ORDERS = 1000
# Autocorrelation above this is taken as this (a run that only wanders).
MAX_AUTOCORRELATION = 0.9
# Above this many splits to try, a coarse pass picks where to look closely.
_FULL_SEARCH = 400


def find_slowdowns(
    runs: Mapping[str, Mapping[str, Sequence[ScalarRecord]]],
    from_step: Optional[int] = None,
) -> List[Slowdown]:
    """The slowdown of each run and rate tag that has one, in run then tag order."""
    found = []
    for run, scalars in runs.items():
        for tag in sorted((t for t in scalars if is_rate_tag(t)), key=tag_order):
            slowdown = find_slowdown(run, tag, scalars[tag], from_step)
            if slowdown is not None:
                found.append(slowdown)
    return found


def find_slowdown(
    run: str,
    tag: str,
    records: Sequence[ScalarRecord],
    from_step: Optional[int] = None,
) -> Optional[Slowdown]:
    """Where `records` (one run's, of one rate tag) dropped and stayed down."""
    used = measured_from(records, from_step)
    values = np.asarray([r.value for r in used], dtype=np.float64)
    split = best_drop(values)
    if split is None or not beats_steady(values, split):
        return None
    before, after = values[:split], values[split:]
    estimate = median_ratio(after, before)
    if estimate.low is None or estimate.high is None:
        return None
    tail = after[-max(MIN_SEGMENT, len(after) // 3):]
    # Nearer the rate after than the rate before, on a log scale.
    stayed_down = np.median(tail) ** 2 < np.median(before) * np.median(after)
    if not (below(estimate.high, MARGIN) and stayed_down):
        return None
    return Slowdown(
        run=run,
        tag=tag,
        from_step=used[split - 1].step,
        step=used[split].step,
        median_before=float(np.median(before)),
        median_after=float(np.median(after)),
        ratio=estimate.ratio,
        low=estimate.low,
        high=estimate.high,
        records_before=len(before),
        records_after=len(after),
    )


def best_drop(values: np.ndarray) -> Optional[int]:
    """The split (the index of the first record after it) of the best
    two-median fit of log(`values`) where the rate went down; None if none.

    Beyond `_FULL_SEARCH` splits, every k-th is tried first, then those
    around the best of them.
    """
    logs = np.log(values)
    splits = range(MIN_SEGMENT, len(values) - MIN_SEGMENT + 1)
    stride = max(1, len(splits) // _FULL_SEARCH)
    best = _best_fit(logs, splits[::stride])
    if best is not None and stride > 1:
        best = _best_fit(logs, range(max(splits[0], best - stride),
                                     min(splits[-1], best + stride) + 1))
    return best


def _best_fit(logs: np.ndarray, splits: Sequence[int]) -> Optional[int]:
    best, best_cost = None, np.inf
    for split in splits:
        before, after = logs[:split], logs[split:]
        level_before, level_after = np.median(before), np.median(after)
        if level_after >= level_before:
            continue
        cost = np.abs(before - level_before).sum() + np.abs(after - level_after).sum()
        if cost < best_cost:
            best, best_cost = split, cost
    return best


def beats_steady(values: np.ndarray, split: int) -> bool:
    """Whether the records before `split` rank above those after it by more
    than noise: the score, less what autocorrelation adds, over `steady_score`."""
    ranks = rank_rows(values[None, :])[0]
    score = drop_scores(ranks[None, :])[0][split - MIN_SEGMENT]
    around = np.concatenate(
        [ranks[:split] - ranks[:split].mean(), ranks[split:] - ranks[split:].mean()]
    )
    spread = float(np.dot(around, around))
    rho = float(np.dot(around[:-1], around[1:])) / spread if spread else 0.0
    rho = min(max(rho, 0.0), MAX_AUTOCORRELATION)
    return bool(score / np.sqrt((1 + rho) / (1 - rho)) > steady_score(len(values)))


@functools.lru_cache(maxsize=64)
def steady_score(n: int) -> float:
    """The `STEADY_QUANTILE` of the best score over all splits of `n` records
    in random order (seeded: the same for every run of `n` records)."""
    rng = np.random.default_rng(SEED)
    ranks = np.arange(n, dtype=np.float64)
    best = [
        drop_scores(rng.permuted(np.tile(ranks, (k, 1)), axis=1)).max(axis=1)
        for k in chunks(STEADY_ORDERS, n)
    ]
    return float(np.quantile(np.concatenate(best), STEADY_QUANTILE))


def drop_scores(ranks: np.ndarray) -> np.ndarray:
    """For each row of `ranks` (from 0) and each split k (`MIN_SEGMENT` to
    n - `MIN_SEGMENT`), the sum of the first k ranks, in standard
    deviations above its mean were the order random (ties allowed for)."""
    n = ranks.shape[1]
    k = np.arange(MIN_SEGMENT, n - MIN_SEGMENT + 1)
    sums = np.cumsum(ranks, axis=1)[:, k - 1]
    spread = ranks.var(axis=1, keepdims=True)  # (n * n - 1) / 12 without ties
    variance = k * (n - k) / (n - 1) * spread
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (sums - k * (n - 1) / 2) / np.sqrt(variance)
    return np.nan_to_num(scores, nan=0.0)  # All values equal: no order.


def rank_rows(series: np.ndarray) -> np.ndarray:
    """Each row's ranks from 0, equal values sharing the mean of theirs."""
    n = series.shape[1]
    order = np.argsort(series, axis=1, kind="stable")
    ordered = np.take_along_axis(series, order, axis=1)
    position = np.arange(n)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, position, n - 1)[:, ::-1], axis=1)
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, (first + last[:, ::-1]) / 2, axis=1)
    return ranks
