"""What the report found, as data: one home for the classes that `report`
builds and `formatting` and `plot` print.

Nothing here computes; `report`, `compare` and `slowdown` fill these in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from keras_stepcounter.tools.events import ScalarRecord
from keras_stepcounter.tools.runs import Run
from keras_stepcounter.tools.sections import Sections


@dataclass(frozen=True)
class Stall:
    """A record below `STALL_FRACTION` of its run's median.

    The rate `value` was measured over the steps `from_step` to `step`
    (`from_step` is None for a run's first record).
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

    `stalls` and `stall_threshold` are None where not checked.
    """

    run: str
    tag: str
    records: int
    first_step: int
    last_step: int
    median: Optional[float]
    p10: Optional[float]
    p90: Optional[float]
    min: Optional[float]
    stall_threshold: Optional[float]
    stalls: Optional[List[Stall]]
    non_finite: List[NonFinite] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    """One run's rate against the baseline's, for one tag.

    `ratio` is the run's median over the baseline's, of the records both
    compare (`records`, `baseline_records`); `low` and `high` bound its 95%
    bootstrap interval (None with too few records). `verdict` is
    "faster", "slower" or "no difference".
    """

    run: str
    tag: str
    baseline: str
    records: int
    baseline_records: int
    median: Optional[float]
    baseline_median: Optional[float]
    ratio: Optional[float]
    low: Optional[float]
    high: Optional[float]
    verdict: str


@dataclass(frozen=True)
class Slowdown:
    """Where a run's rate dropped and stayed down.

    The drop began after the record at `from_step` (the last one at the old
    rate) and shows fully from the record at `step`. `ratio` is the median
    after over the median before, `low` and `high` its 95% bootstrap
    interval, over `records_before` and `records_after` records.
    """

    run: str
    tag: str
    from_step: int
    step: int
    median_before: float
    median_after: float
    ratio: float
    low: float
    high: float
    records_before: int
    records_after: int


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
    runs: Dict[str, Dict[str, List[ScalarRecord]]]
    summaries: List[TagSummary]
    sections: Sections
    sources: Dict[str, Run]
    notices: List[str]
    baseline: Optional[str] = None
    from_step: Optional[int] = None
    comparisons: List[Comparison] = field(default_factory=list)
    slowdowns: List[Slowdown] = field(default_factory=list)
