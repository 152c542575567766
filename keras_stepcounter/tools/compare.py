"""Is it faster? Each run's rates against a baseline run's: `report --baseline`.

For every run other than the baseline and each rate tag (ending in `/sec`)
that both recorded: the ratio of the run's median rate to the baseline's,
with a 95% bootstrap interval (`stats`: circular blocks, seeded, so the
same files give the same figures), and a verdict:

* "slower" when the whole interval lies below `1 - MARGIN`,
* "faster" when it lies above `1 + MARGIN`,
* else "no difference" this data can resolve (also with fewer than
  `stats.MIN_RECORDS` records on either side: no interval).

The margin is there because the interval only knows the noise within each
run: two runs of one configuration also differ by what the machine did
meanwhile (other jobs, clocks, caches), which no interval shows, and a
difference that small is not worth a verdict.

Records compared: those whose interval is known and starts at `from_step`
or later (`stats.measured_from`: each run's first record is always out, it
holds the start-up), and not stalls (below `stats.STALL_FRACTION` of the
run's median: a single hang would otherwise count as speed).

The CI gate (`report --fail-slower PCT`) fails on a comparison whose whole
interval lies below `1 - PCT / 100`: slower by more than PCT percent with
95% confidence. Percentages are of throughput: a step time 1.25 times as
long is a rate 0.8 times as high, 20% slower.

Example:

    report = load_report("logs", baseline="main")
    for c in report.comparisons:
        print(c.run, c.tag, c.ratio, c.low, c.high, c.verdict)
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from keras_stepcounter.tools.events import ScalarRecord
from keras_stepcounter.tools.results import Comparison, TagSummary
from keras_stepcounter.tools.stats import (
    below,
    measured_from,
    median,
    median_ratio,
    verdict,
)
from keras_stepcounter.tools.tags import is_rate_tag, tag_order

# Differences within this fraction of the baseline's rate are not called.
MARGIN = 0.02


def compared_values(
    records: Sequence[ScalarRecord],
    stall_threshold: Optional[float],
    from_step: Optional[int] = None,
) -> List[float]:
    """The values a comparison uses: measured from `from_step` on, no stalls."""
    threshold = 0.0 if stall_threshold is None else stall_threshold
    return [r.value for r in measured_from(records, from_step) if r.value >= threshold]


def compare_runs(
    runs: Mapping[str, Mapping[str, Sequence[ScalarRecord]]],
    summaries: Sequence[TagSummary],
    baseline: str,
    from_step: Optional[int] = None,
) -> List[Comparison]:
    """Every other run's rate tags against `baseline`'s, in run then tag order.

    `summaries` give each run's stall threshold. Tags the baseline did not
    record are left out.
    """
    thresholds: Dict[Tuple[str, str], Optional[float]] = {
        (s.run, s.tag): s.stall_threshold for s in summaries
    }

    def values(run: str, tag: str) -> List[float]:
        return compared_values(runs[run][tag], thresholds.get((run, tag)), from_step)

    comparisons = []
    for run, scalars in runs.items():
        if run == baseline:
            continue
        shared = [t for t in scalars if is_rate_tag(t) and t in runs[baseline]]
        for tag in sorted(shared, key=tag_order):
            comparisons.append(
                compare(run, tag, values(run, tag), baseline, values(baseline, tag))
            )
    return comparisons


def compare(
    run: str, tag: str, found: Sequence[float], baseline: str, base: Sequence[float]
) -> Comparison:
    """One comparison of `found` (the run's values) with `base` (the baseline's)."""
    estimate = median_ratio(found, base) if found and base else None
    return Comparison(
        run=run,
        tag=tag,
        baseline=baseline,
        records=len(found),
        baseline_records=len(base),
        median=median(found),
        baseline_median=median(base),
        ratio=None if estimate is None else estimate.ratio,
        low=None if estimate is None else estimate.low,
        high=None if estimate is None else estimate.high,
        verdict=verdict(estimate, MARGIN),
    )


def slower_than(comparisons: Sequence[Comparison], percent: float) -> List[Comparison]:
    """The comparisons slower by more than `percent` with 95% confidence."""
    return [c for c in comparisons if below(c.high, percent / 100)]
