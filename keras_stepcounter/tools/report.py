"""Summaries of recorded rates: what `python -m keras_stepcounter report` prints.

Which tags are in the main table:

* every tag ending in `/sec`: `global_step/sec` (`StepCounter`,
  `GraphStepCounter`), the v1 hook's `<global step op name>/sec` (e.g.
  `global_step/sec` or `bar/foo/sec`), `examples/sec`, and any custom
  `tag=` that follows the convention;
* `time_to_first_step` and `mfu`, where present.

The step-time, watchdog-stall, goodput and `time_frac/<name>` records get
sections of their own (`sections`); so do the comparison of every run's
rates with a baseline run's (`compare`, when one is named) and the points
where a run's rate dropped and stayed down (`slowdown`). Other scalars in
the same run (Keras's `epoch_loss`, say) are left out, and a run with none
of these tags is not listed. How runs are found, and split where one
directory holds two: `runs`.

For each run and tag: the number of records, the first and last step, the
throughput (rates only: steps over training seconds of the records whose
steps are known, `throughput`), the median, 10th and 90th percentile and
minimum value (the rule: `stats`; NaN and inf records are counted in
`records`, listed, and left out of the statistics), and the low records.

A low record is a record of a rate tag (ending in `/sec`) whose value is
below `LOW_FRACTION` of the median of that run and tag: a slow interval,
reported with the steps it covers. It is not called a stall: only the
watchdog measures stalls (`stall_secs`, in their own section). Low records
count in the throughput and in comparisons like any other record.
`time_to_first_step` (a duration) and `mfu` (proportional to
`global_step/sec`) get no such check.

Where a run recorded `time_frac/input`, its input share: the share of its
training seconds spent waiting for input, each record weighted by the
seconds of the rate record at its step.

Example:

    report = load_report("logs", baseline="main")
    print(report.table())
    data = report.to_json_dict()
"""

from __future__ import annotations

import sys
from typing import Dict, List, Optional, Sequence, TextIO

import numpy as np

from keras_stepcounter.tools import formatting, sections
from keras_stepcounter.tools.compare import compare_runs
from keras_stepcounter.tools.scalar_columns import ScalarRecord, columns_of
from keras_stepcounter.tools.results import (
    Comparison,
    RunInputShare,
    LowRecord,
    NonFinite,
    ReportData,
    Slowdown,
    TagSummary,
)
from keras_stepcounter.tools.runs import Run, logdir_problem, read_logdir
from keras_stepcounter.tools.slowdown import find_slowdowns
from keras_stepcounter.tools.throughput import (
    Intervals,
    baseline_steps,
    fallback_notice,
    measured_intervals,
    throughput,
)
from keras_stepcounter.tools.stats import LOW_FRACTION, percentiles
from keras_stepcounter.tools.tags import (
    EXTRA_TAGS,
    INPUT_FRAC_TAG,
    RATE_SUFFIX,
    is_rate_tag,
    is_recorder_tag,
    is_reported_tag,
    tag_order,
)

__all__ = [
    "Comparison",
    "RunInputShare",
    "LowRecord",
    "NonFinite",
    "Report",
    "ReportError",
    "Slowdown",
    "TagSummary",
    "load_report",
    "print_notices",
    "print_report",
    "summarize_runs",
    "summarize_tag",
]


class ReportError(ValueError):
    """LOGDIR cannot be reported on: missing, unreadable, or no records in
    it; or a baseline that is not one of its runs.

    `notices` names what under it could not be read, if anything.
    """

    def __init__(self, message: str, notices: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.notices = list(notices)


def summarize_tag(
    run: str,
    tag: str,
    records: Sequence[ScalarRecord],
    baselines: Optional[Sequence[int]] = None,
) -> TagSummary:
    """Statistics of one run's records of `tag` (at least one record).

    `baselines`: the run's `baseline_step` steps, None where it has none.
    """
    found = columns_of(records)
    p10, median, p90, minimum = percentiles(found.values, [10, 50, 90, 0])
    threshold = low = rate = None
    if is_rate_tag(tag):
        intervals = measured_intervals(found, baselines)
        rate = throughput(intervals)
        if median is not None:
            threshold = LOW_FRACTION * median
            low = low_records(intervals, threshold)
    bad = ~np.isfinite(found.values)
    return TagSummary(
        run=run,
        tag=tag,
        records=len(found),
        first_step=int(found.steps.min()),
        last_step=int(found.steps.max()),
        throughput=rate,
        median=median,
        p10=p10,
        p90=p90,
        min=minimum,
        low_threshold=threshold,
        low_records=low,
        non_finite=[
            NonFinite(step, value) for step, value in zip(
                found.steps[bad].tolist(), found.values[bad].tolist())
        ],
    )


def low_records(intervals: Intervals, threshold: float) -> List[LowRecord]:
    """The records below `threshold`, with the steps they cover."""
    with np.errstate(invalid="ignore"):
        low = intervals.select(intervals.rates < threshold)  # False for NaN.
    return [
        LowRecord(i.from_step if i.steps is not None else None, i.step, i.rate)
        for i in low
    ]


def summarize_runs(runs: Sequence[Run]) -> List[TagSummary]:
    """Summaries of the main-table tags of `runs`, in run order, then
    `global_step/sec`, other rates, extras."""
    summaries: List[TagSummary] = []
    for run in runs:
        baselines = baseline_steps(run.scalars)
        tags = sorted((t for t in run.scalars if is_reported_tag(t)), key=tag_order)
        summaries.extend(
            summarize_tag(run.name, t, run.scalars[t], baselines) for t in tags
        )
    return summaries


def input_share(run: Run) -> Optional[RunInputShare]:
    """The run's input share (`time_frac/input` weighted by each record's
    training seconds), or None where not recorded.

    The weights come from the rate records at the same steps (of
    `global_step/sec`, else the first rate tag); records without one count
    with equal weight where none has one.
    """
    recorded = columns_of(run.scalars.get(INPUT_FRAC_TAG, []))
    kept = np.isfinite(recorded.values)
    fracs, frac_steps = recorded.values[kept], recorded.steps[kept]
    if not len(fracs):
        return None
    rate_tags = sorted((t for t in run.scalars if is_rate_tag(t)), key=tag_order)
    if rate_tags:
        intervals = measured_intervals(
            run.scalars[rate_tags[0]], baseline_steps(run.scalars)
        )
        counted = intervals.select(intervals.counted)
        weights = _secs_at(counted.steps_at, counted.secs, frac_steps)
        weighted = ~np.isnan(weights)
        if weighted.any():
            # Python's sums, in record order: the same digits as ever.
            products = (fracs[weighted] * weights[weighted]).tolist()
            share = sum(products) / sum(weights[weighted].tolist())
            return RunInputShare(run.name, share, int(weighted.sum()))
    return RunInputShare(run.name, sum(fracs.tolist()) / len(fracs), len(fracs))


def _secs_at(steps: np.ndarray, secs: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The seconds of the interval ending at each of `wanted` (the last one
    of a step that repeats, as a dict keeps it); NaN where none."""
    last = len(steps) - 1 - np.unique(steps[::-1], return_index=True)[1]
    keys, values = steps[last], secs[last]  # Sorted by step, unique.
    at = np.searchsorted(keys, wanted)
    found = np.full(len(wanted), np.nan)
    inside = at < len(keys)
    hit = inside.copy()
    hit[inside] = keys[at[inside]] == wanted[inside]
    found[hit] = values[at[hit]]
    return found


def _fallback_notices(runs: Sequence[Run]) -> List[str]:
    """One notice per run that has rate records but no `baseline_step`."""
    return [
        fallback_notice(run.name) for run in runs
        if baseline_steps(run.scalars) is None
        and any(is_rate_tag(t) for t in run.scalars)
    ]


class Report(ReportData):
    """What was read from a LOGDIR (`results.ReportData`), as text or JSON."""

    def table(self) -> str:
        return formatting.format_report(self)

    def to_json_dict(self) -> Dict:
        return formatting.to_json_dict(self)


def load_report(
    logdir: str, baseline: Optional[str] = None, from_step: Optional[int] = None
) -> Report:
    """Reads every run under `logdir` (a directory or one event file).

    What cannot be read under it becomes a notice in `Report.notices`.

    Args:
        logdir: A directory of runs, or one event file.
        baseline: A run's name: every other run's rates are compared with
            its (`compare`), in `Report.comparisons`.
        from_step: Leave out the records that measure steps before it
            (warm-up) from the comparisons and the slowdowns; without it,
            each run's first record is left out of them.

    Raises:
        ReportError: `logdir` does not exist or cannot be read, or holds no
            records of the recorders' tags, or `baseline` is none of its runs.
        TypeError, ValueError: `from_step` is not an int of at least 0.
    """
    _check_from_step(from_step)
    problem = logdir_problem(logdir)
    if problem is not None:
        raise ReportError(problem)
    read = read_logdir(logdir)
    runs = [run for run in read.runs if any(map(is_recorder_tag, run.scalars))]
    if not runs:
        found = sorted({tag for run in read.runs for tag in run.scalars})
        detail = f" (scalars found: {', '.join(found)})" if found else ""
        unread = f"; {len(read.notices)} notices above" if read.notices else ""
        raise ReportError(
            f"no rate records under {logdir!r}: no event file has a tag of "
            f"keras_stepcounter's (ending in '{RATE_SUFFIX}', or "
            f"{', '.join(EXTRA_TAGS)}, step_time/*, stall_secs, goodput/*, "
            f"time_frac/*){detail}{unread}.",
            read.notices,
        )
    scalars = {run.name: run.scalars for run in runs}
    summaries = summarize_runs(runs)
    comparisons: List[Comparison] = []
    if baseline is not None:
        if baseline not in scalars:
            raise ReportError(
                f"baseline {baseline!r} is not a run under {logdir!r} "
                f"(its runs: {', '.join(scalars)}).",
                read.notices,
            )
        comparisons = compare_runs(scalars, baseline, from_step)
    shares = [input_share(run) for run in runs]
    return Report(
        logdir=logdir,
        runs=scalars,
        summaries=summaries,
        sections=sections.summarize_sections(runs),
        sources={run.name: run for run in runs},
        notices=read.notices + _fallback_notices(runs),
        baseline=baseline,
        from_step=from_step,
        comparisons=comparisons,
        slowdowns=find_slowdowns(scalars, from_step),
        input_shares=[share for share in shares if share is not None],
    )


def _check_from_step(from_step: Optional[int]) -> None:
    if from_step is None:
        return
    if isinstance(from_step, bool) or not isinstance(from_step, int):
        raise TypeError(f"from_step must be an int, got {from_step!r}.")
    if from_step < 0:
        raise ValueError(f"from_step must be at least 0, got {from_step}.")


def print_report(logdir: str, file: Optional[TextIO] = None) -> Report:
    """Prints the text report of `logdir` (to stdout by default) and returns it.

    Notices go to stderr, one line each.

    Raises:
        ReportError: as `load_report`.
    """
    try:
        report = load_report(logdir)
    except ReportError as error:
        print_notices(error.notices)
        raise
    print_notices(report.notices)
    print(report.table(), file=file)
    return report


def print_notices(notices: Sequence[str]) -> None:
    """To stderr, one line each."""
    for notice in notices:
        print(f"notice: {notice}", file=sys.stderr)
