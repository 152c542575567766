"""The report's sections beyond the rates, where recorded.

* Step time: the `step_time/p50|p90|p99|max` records (each over one rate
  record's interval, in seconds) summarised per run: the median over
  records of p50, p90 and p99, and the largest max with its step.
* Watchdog stalls: each `stall_secs` record, i.e. the step where training
  resumed and how long no step had ended, in seconds.
* Goodput ledger: the `goodput/<bucket>` records written at a fit's last
  step, one set per fit, grouped by step; per run, the buckets summed over
  its fits with their share of the total, and `goodput/rerun_steps`.
* Time in named blocks: `time_frac/<name>` (the share of a record's
  interval spent in that block), median and p90 over records.

NaN and inf values are left out of medians and sums (the `stats` rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from keras_stepcounter.tools.scalar_columns import ScalarRecord, columns_of
from keras_stepcounter.tools.runs import Run
from keras_stepcounter.tools.stats import finite, median, percentiles
from keras_stepcounter.core.tags import (
    BUCKET_TAGS,
    FRACTION_TAG,
    INPUT_TAG,
    STEP_TAG,
    TOTAL_TAG,
)
from keras_stepcounter.tools.tags import (
    GOODPUT_PREFIX,
    RERUN_STEPS_TAG,
    STALL_SECS_TAG,
    STEP_TIME_PREFIX,
    STEP_TIME_STATS,
    TIME_FRAC_PREFIX,
)


def _goodput_name(tag: str) -> str:
    return tag[len(GOODPUT_PREFIX):]


# The ledger's buckets in the order of a fit; together they make the total.
# Input wait (`input_stats=True`) is split off step time: shown right after it.
_FIT_BUCKETS = [_goodput_name(tag) for tag in BUCKET_TAGS]
if _goodput_name(INPUT_TAG) not in _FIT_BUCKETS:
    _FIT_BUCKETS.insert(_FIT_BUCKETS.index(_goodput_name(STEP_TAG)) + 1,
                        _goodput_name(INPUT_TAG))
BUCKETS = tuple(_FIT_BUCKETS)
TOTAL, FRACTION = _goodput_name(TOTAL_TAG), _goodput_name(FRACTION_TAG)


@dataclass(frozen=True)
class StepTimeSummary:
    run: str
    records: int
    first_step: int
    last_step: int
    p50: Optional[float]
    p90: Optional[float]
    p99: Optional[float]
    max: Optional[float]
    max_step: Optional[int]


@dataclass(frozen=True)
class RecordedStall:
    """A `stall_secs` record: training resumed at `step` after `secs`."""

    run: str
    step: int
    secs: float


@dataclass(frozen=True)
class FitLedger:
    """One fit's goodput records, written at its last step."""

    step: int
    buckets: Dict[str, float]
    total_secs: Optional[float]
    fraction: Optional[float]


@dataclass(frozen=True)
class RerunSteps:
    """`goodput/rerun_steps`: `steps` computed again, recorded at `step`."""

    step: int
    steps: Union[int, float]


@dataclass(frozen=True)
class GoodputLedger:
    """A run's ledger: its fits, and their buckets summed."""

    run: str
    fits: List[FitLedger]
    buckets: Dict[str, float]
    total_secs: Optional[float]
    fraction: Optional[float]
    rerun_steps: List[RerunSteps]


@dataclass(frozen=True)
class TimeFracSummary:
    run: str
    name: str
    records: int
    median: Optional[float]
    p90: Optional[float]


@dataclass
class Sections:
    step_times: List[StepTimeSummary] = field(default_factory=list)
    recorded_stalls: List[RecordedStall] = field(default_factory=list)
    ledgers: List[GoodputLedger] = field(default_factory=list)
    time_fracs: List[TimeFracSummary] = field(default_factory=list)


def summarize_sections(runs: Sequence[Run]) -> Sections:
    """Every section's summaries for `runs`, in run order."""
    found = Sections()
    for run in runs:
        step_time = summarize_step_time(run.name, run.scalars)
        if step_time is not None:
            found.step_times.append(step_time)
        found.recorded_stalls.extend(
            RecordedStall(run.name, r.step, r.value)
            for r in run.scalars.get(STALL_SECS_TAG, [])
        )
        ledger = summarize_goodput(run.name, run.scalars)
        if ledger is not None:
            found.ledgers.append(ledger)
        found.time_fracs.extend(summarize_time_fracs(run.name, run.scalars))
    return found


def summarize_step_time(
    run: str, scalars: Mapping[str, Sequence[ScalarRecord]]
) -> Optional[StepTimeSummary]:
    """The run's step times, or None where no `step_time/*` is recorded."""
    # Columns, not records: a long run holds a million of each statistic.
    stat_records = {
        stat: columns_of(scalars.get(STEP_TIME_PREFIX + stat, []))
        for stat in STEP_TIME_STATS
    }
    recorded = [c.steps for c in stat_records.values() if len(c)]
    if not recorded:
        return None
    largest = stat_records["max"]
    (kept,) = np.nonzero(np.isfinite(largest.values))
    # The first record of the largest value, as `max` picks it.
    top = largest[int(kept[np.argmax(largest.values[kept])])] if len(kept) else None
    return StepTimeSummary(
        run=run,
        records=max(len(records) for records in stat_records.values()),
        first_step=min(int(steps.min()) for steps in recorded),
        last_step=max(int(steps.max()) for steps in recorded),
        p50=median(stat_records["p50"].values),
        p90=median(stat_records["p90"].values),
        p99=median(stat_records["p99"].values),
        max=top.value if top else None,
        max_step=top.step if top else None,
    )


def summarize_goodput(
    run: str, scalars: Mapping[str, Sequence[ScalarRecord]]
) -> Optional[GoodputLedger]:
    """The run's ledger, or None where no `goodput/*` is recorded."""
    by_step: Dict[int, Dict[str, float]] = {}
    for tag, records in scalars.items():
        name = _goodput_name(tag)
        if tag.startswith(GOODPUT_PREFIX) and tag != RERUN_STEPS_TAG:
            for record in records:
                by_step.setdefault(record.step, {})[name] = record.value
    reruns = [
        RerunSteps(r.step, int(r.value) if float(r.value).is_integer() else r.value)
        for r in scalars.get(RERUN_STEPS_TAG, [])
    ]
    if not by_step and not reruns:
        return None
    fits = [_fit_ledger(step, by_step[step]) for step in sorted(by_step)]
    names = _bucket_names(fits)
    buckets = {
        name: sum(finite([f.buckets.get(name, math.nan) for f in fits]))
        for name in names
    }
    totals = finite([f.total_secs for f in fits if f.total_secs is not None])
    total = sum(totals) if totals else None
    step_secs = buckets.get("step_secs")
    fraction = step_secs / total if total and step_secs is not None else None
    return GoodputLedger(run, fits, buckets, total, fraction, reruns)


def _fit_ledger(step: int, values: Dict[str, float]) -> FitLedger:
    names = [n for n in values if n.endswith("_secs") and n != TOTAL]
    buckets = {n: values[n] for n in sorted(names, key=_bucket_order)}
    return FitLedger(step, buckets, values.get(TOTAL), values.get(FRACTION))


def _bucket_order(name: str) -> Tuple[int, str]:
    """The known buckets in the order of a fit, then any other, by name."""
    return (BUCKETS.index(name), "") if name in BUCKETS else (len(BUCKETS), name)


def _bucket_names(fits: Sequence[FitLedger]) -> List[str]:
    return sorted({name for fit in fits for name in fit.buckets}, key=_bucket_order)


def summarize_time_fracs(
    run: str, scalars: Mapping[str, Sequence[ScalarRecord]]
) -> List[TimeFracSummary]:
    """One summary per `time_frac/<name>` of the run, by name."""
    summaries = []
    for tag in sorted(t for t in scalars if t.startswith(TIME_FRAC_PREFIX)):
        values = columns_of(scalars[tag]).values
        middle, p90 = percentiles(values, [50, 90])
        summaries.append(
            TimeFracSummary(run, tag[len(TIME_FRAC_PREFIX):], len(values), middle, p90)
        )
    return summaries
