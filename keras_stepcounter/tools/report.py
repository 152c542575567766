"""Summaries of recorded rates: what `python -m keras_stepcounter report` prints.

Which tags are reported:

* every tag ending in `/sec`: `global_step/sec` (`StepCounter`,
  `GraphStepCounter`), the v1 hook's `<global step op name>/sec` (e.g.
  `global_step/sec` or `bar/foo/sec`), `examples/sec`, and any custom
  `tag=` that follows the convention;
* `time_to_first_step` and `mfu`, where present.

Other scalars in the same run (Keras's `epoch_loss`, say) are left out, and
a run directory with none of the tags above is not listed.

For each run and tag: the number of records, the first and last step, the
median, 10th and 90th percentile and minimum value, and the stalls. The
percentiles are numpy's default "linear" method (`numpy.percentile`): the
p-th percentile of n sorted values lies at position `p / 100 * (n - 1)`,
interpolated linearly between neighbours, so the median of an even number
of values is the mean of the middle two.

A stall is a record of a rate tag (ending in `/sec`) whose value is below
half the median of that run and tag. Each record covers the interval from
the previous record's step to its own step (the recorders measure from
the previous record), so a stall is reported as that step interval; the
first record's interval starts at the baseline step, which is not written
down, so its `from_step` is None. `time_to_first_step` (a duration) and
`mfu` (proportional to `global_step/sec`, so its stalls are the same) get
no stall check.

Example:

    report = load_report("logs")
    print(report.table())
    data = report.to_json_dict()
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence, TextIO

import numpy as np

from keras_stepcounter.tools.events import ScalarRecord, read_runs

RATE_SUFFIX = "/sec"
EXTRA_TAGS = ("time_to_first_step", "mfu")
STALL_FRACTION = 0.5
PERCENTILE_METHOD = "linear"


class ReportError(ValueError):
    """LOGDIR cannot be reported on: missing, or no rate records in it."""


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
class TagSummary:
    """Statistics of one tag in one run. `stalls` is None where not checked."""

    run: str
    tag: str
    records: int
    first_step: int
    last_step: int
    median: float
    p10: float
    p90: float
    min: float
    stall_threshold: Optional[float]
    stalls: Optional[List[Stall]]


def is_rate_tag(tag: str) -> bool:
    return tag.endswith(RATE_SUFFIX)


def is_reported_tag(tag: str) -> bool:
    return is_rate_tag(tag) or tag in EXTRA_TAGS


def _tag_order(tag: str):
    # global_step/sec first, then the other rates, then the extras.
    if tag == "global_step/sec":
        return (0, tag)
    return (1, tag) if is_rate_tag(tag) else (2, tag)


def summarize_tag(run: str, tag: str, records: Sequence[ScalarRecord]) -> TagSummary:
    """Statistics of one run's records of `tag` (at least one record)."""
    values = np.array([r.value for r in records], dtype=np.float64)
    steps = [r.step for r in records]
    p10, median, p90 = np.percentile(values, [10, 50, 90], method=PERCENTILE_METHOD)
    threshold = stalls = None
    if is_rate_tag(tag):
        threshold = STALL_FRACTION * float(median)
        stalls = _stalls(records, threshold)
    return TagSummary(
        run=run,
        tag=tag,
        records=len(records),
        first_step=min(steps),
        last_step=max(steps),
        median=float(median),
        p10=float(p10),
        p90=float(p90),
        min=float(values.min()),
        stall_threshold=threshold,
        stalls=stalls,
    )


def _stalls(records: Sequence[ScalarRecord], threshold: float) -> List[Stall]:
    stalls = []
    previous_step = None
    for record in records:
        if record.value < threshold:
            # A step that went backwards means a new run in the same
            # directory: its interval's start is unknown, as for a first record.
            known = previous_step is not None and previous_step < record.step
            stalls.append(
                Stall(previous_step if known else None, record.step, record.value)
            )
        previous_step = record.step
    return stalls


def summarize_runs(
    runs: Mapping[str, Mapping[str, Sequence[ScalarRecord]]],
) -> List[TagSummary]:
    """Summaries of the reported tags of `runs` (as `events.read_runs` gives).

    Ordered by run name, then `global_step/sec`, other rates, extras.
    """
    summaries = []
    for run in sorted(runs):
        tags = sorted((t for t in runs[run] if is_reported_tag(t)), key=_tag_order)
        for tag in tags:
            if runs[run][tag]:
                summaries.append(summarize_tag(run, tag, runs[run][tag]))
    return summaries


@dataclass(frozen=True)
class Report:
    """What was read from a LOGDIR: its runs' records and their summaries."""

    logdir: str
    runs: Mapping[str, Mapping[str, Sequence[ScalarRecord]]]
    summaries: List[TagSummary]

    def table(self) -> str:
        return format_table(self.summaries)

    def to_json_dict(self) -> Dict:
        return to_json_dict(self.summaries, self.logdir)


def load_report(logdir: str) -> Report:
    """Reads every run under `logdir` (via `events.read_runs`) and summarises it.

    Raises:
        ReportError: `logdir` is not a directory, or holds no records of a
            reported tag.
    """
    if not os.path.exists(logdir):
        raise ReportError(f"LOGDIR {logdir!r} does not exist.")
    if not os.path.isdir(logdir):
        raise ReportError(f"LOGDIR {logdir!r} is not a directory.")
    runs = read_runs(logdir)
    summaries = summarize_runs(runs)
    if not summaries:
        found = sorted({tag for scalars in runs.values() for tag in scalars})
        detail = f" (scalars found: {', '.join(found)})" if found else ""
        raise ReportError(
            f"no rate records under {logdir!r}: no event file has a tag ending "
            f"in '{RATE_SUFFIX}' or named {' or '.join(EXTRA_TAGS)}{detail}."
        )
    return Report(logdir, runs, summaries)


def format_number(value: float) -> str:
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _steps_text(stall: Stall) -> str:
    if stall.from_step is None:
        return f"up to step {stall.step}"
    return f"steps {stall.from_step}-{stall.step}"


def format_table(summaries: Sequence[TagSummary]) -> str:
    """A text table, one row per run and tag, then the stalls."""
    header = ["run", "tag", "records", "steps", "median", "p10", "p90", "min", "stalls"]
    rows = [header]
    for s in summaries:
        rows.append(
            [
                s.run,
                s.tag,
                str(s.records),
                f"{s.first_step}-{s.last_step}",
                *(format_number(v) for v in (s.median, s.p10, s.p90, s.min)),
                "-" if s.stalls is None else str(len(s.stalls)),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    stalled = [s for s in summaries if s.stalls]
    if stalled:
        lines.append("")
        lines.append(f"Stalls (records below {STALL_FRACTION:g} x the median):")
        for s in stalled:
            for stall in s.stalls:
                lines.append(
                    f"  {s.run}  {s.tag}  {_steps_text(stall)}: "
                    f"{format_number(stall.value)} "
                    f"(median {format_number(s.median)})"
                )
    return "\n".join(lines)


def to_json_dict(summaries: Sequence[TagSummary], logdir: str) -> Dict:
    """The JSON form: `{"logdir", "percentile_method", "stall_fraction",
    "runs": {run: {tag: {records, first_step, last_step, median, p10, p90,
    min, stall_threshold, stalls: [{from_step, step, value}] or null}}}}`.
    """
    runs: Dict[str, Dict[str, Dict]] = {}
    for s in summaries:
        fields = asdict(s)
        del fields["run"], fields["tag"]
        runs.setdefault(s.run, {})[s.tag] = fields
    return {
        "logdir": logdir,
        "percentile_method": PERCENTILE_METHOD,
        "stall_fraction": STALL_FRACTION,
        "runs": runs,
    }


def print_report(logdir: str, file: Optional[TextIO] = None) -> Report:
    """Prints the text report of `logdir` (to stdout by default) and returns it.

    Raises:
        ReportError: as `load_report`.
    """
    report = load_report(logdir)
    print(report.table(), file=file)
    return report
