"""What the report found, as data: one home for the classes that `report`
builds and `formatting` and `plot` print.

Nothing here computes; `report`, `compare` and `slowdown` fill these in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

from keras_stepcounter.tools.scalar_columns import ScalarRecord
from keras_stepcounter.tools.runs import Run
from keras_stepcounter.tools.sections import Sections


@dataclass(frozen=True)
class LowRecord:
    """A rate record below `LOW_FRACTION` of its run's median: slow, but
    not a stall (only the watchdog measures stalls).

    The rate `value` was measured over the steps `from_step` to `step`
    (`from_step` is None where the start is not known).
    """

    from_step: Optional[int]
    step: int
    value: float


@dataclass(frozen=True)
class NonFinite:
    """A NaN or infinite record, left out of the statistics."""

    step: int
    value: float


@dataclass(frozen=True)
class TagSummary:
    """Statistics of one tag in one run (of its finite values: None if none).

    `throughput` is steps over training seconds of the records whose steps
    are known (`throughput.measured_intervals`), rates only.
    `low_records` and `low_threshold` are None where not checked.
    """

    run: str
    tag: str
    records: int
    first_step: int
    last_step: int
    throughput: Optional[float]
    median: Optional[float]
    p10: Optional[float]
    p90: Optional[float]
    min: Optional[float]
    low_threshold: Optional[float]
    low_records: Optional[List[LowRecord]]
    non_finite: List[NonFinite] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """One run's rate tag against the baseline's.

    `ratio` is the run's throughput over the baseline's (steps / training
    seconds of the records compared: `records` and `baseline_records`;
    `left_out` and `baseline_left_out` count the records after warm-up
    that could not be counted: no known steps or no finite positive rate).
    `low` and `high` bound its 95% interval (`confidence`), None where
    declined: fewer than `confidence.MIN_EFFECTIVE` effective records
    (`effective`, the lesser of the two runs'). `steady_ratio` is the ratio
    of median rates (steady speed, stalls and slow records hardly count).
    `stall_secs` is the watchdog's stalls in the compared window and
    `stall_share` their share of its training seconds (the throughput they
    cost). `verdict` is "faster", "slower", "no difference" or
    "cannot tell".
    """

    run: str
    tag: str
    baseline: str
    records: int
    baseline_records: int
    left_out: int
    baseline_left_out: int
    throughput: Optional[float]
    baseline_throughput: Optional[float]
    ratio: Optional[float]
    low: Optional[float]
    high: Optional[float]
    effective: Optional[float]
    steady_ratio: Optional[float]
    stall_secs: float
    stall_share: Optional[float]
    baseline_stall_secs: float
    baseline_stall_share: Optional[float]
    verdict: str


@dataclass(frozen=True)
class Slowdown:
    """Where a run's rate dropped and stayed down: a step or a drift.

    The drop began after the record at `from_step` (the last one at the old
    rate) and is complete at the record at `step` (the first at the new
    rate; the next record after `from_step` for a step change). `ratio` is
    the rate after over the rate before (the fitted levels), with
    `records_before`, `records_during` and `records_after` records before,
    on and after the ramp; `score` is the drop's CUSUM score (above
    `slowdown.THRESHOLD`).
    """

    run: str
    tag: str
    from_step: int
    step: int
    rate_before: float
    rate_after: float
    ratio: float
    score: float
    records_before: int
    records_during: int
    records_after: int


@dataclass(frozen=True)
class RunInputShare:
    """The share of a run's training seconds spent waiting for input
    (`time_frac/input`, each record weighted by its rate record's seconds)."""

    run: str
    share: float
    records: int


@dataclass
class ReportData:
    """What was read from a LOGDIR: runs, summaries, sections and notices.

    `runs` maps each run's name to its scalars by tag; `sources` to the
    `runs.Run` (directory and event files) it came from. `notices` are the
    one-line messages about what could not be read, or was split.
    `baseline` and `comparisons` are set when runs are compared with one
    (`report --baseline`); `slowdowns` holds where runs slowed down.
    `from_step` is the first step both take into account (None: all).
    """

    logdir: str
    runs: Mapping[str, Mapping[str, Sequence[ScalarRecord]]]
    summaries: List[TagSummary]
    sections: Sections
    sources: Dict[str, Run]
    notices: List[str]
    baseline: Optional[str] = None
    from_step: Optional[int] = None
    comparisons: List[Comparison] = field(default_factory=list)
    slowdowns: List[Slowdown] = field(default_factory=list)
    input_shares: List[RunInputShare] = field(default_factory=list)
