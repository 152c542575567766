"""The report as text (a table, then sections) and as strict JSON."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from typing import Any, Dict, Final, List, Optional, Sequence

from keras_stepcounter.core.ledger_table import share_text
from keras_stepcounter.tools import compare
from keras_stepcounter.tools.confidence import CONFIDENCE, MIN_EFFECTIVE
from keras_stepcounter.tools.results import (
    Comparison,
    RunInputShare,
    LowRecord,
    ReportData,
    Slowdown,
    TagSummary,
)
from keras_stepcounter.tools.sections import GoodputLedger, RecordedStall, Sections
from keras_stepcounter.tools.stats import (
    LOW_FRACTION,
    PERCENTILE_METHOD,
    number_text,
)

# Long lists (low records, stalls, slowdowns) show this many, worst first,
# and a count; `--json` holds them all.
SHOWN: Final = 5
# The input share from which the report says a run waits on its input.
INPUT_BOUND: Final = 0.5


def format_number(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _steps_text(low: LowRecord) -> str:
    if low.from_step is None:
        return f"up to step {low.step}"
    return f"steps {low.from_step}-{low.step}"


def columns(
    rows: Sequence[Sequence[str]],
    left: int,
    indent: str = "",
    text_from: Optional[int] = None,
) -> List[str]:
    """Rows as aligned lines: the first `left` cells to the left, the rest
    (numbers) to the right, but for the cells from `text_from` on (text)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    end = len(widths) if text_from is None else text_from
    return [
        indent + "  ".join(
            cell.rjust(width) if left <= i < end else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]


def format_report(report: ReportData) -> str:
    lines = format_table(report.summaries) if report.summaries else []
    lines += _comparison_lines(report)
    lines += _slowdown_lines(report.slowdowns)
    lines += _low_record_lines(report.summaries)
    lines += _watchdog_lines(report.sections.recorded_stalls)
    lines += _input_lines(report.input_shares)
    lines += _rerun_lines(report)
    lines += _non_finite_lines(report.summaries)
    lines += _step_time_lines(report.sections)
    lines += _goodput_lines(report.sections.ledgers)
    lines += _time_frac_lines(report.sections)
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def format_table(summaries: Sequence[TagSummary]) -> List[str]:
    """One row per run and tag."""
    header = ["run", "tag", "records", "steps", "throughput", "median", "p10",
              "p90", "min", "low"]
    rows = [header] + [
        [s.run, s.tag, str(s.records), f"{s.first_step}-{s.last_step}",
         *(format_number(v) for v in (s.throughput, s.median, s.p10, s.p90, s.min)),
         "-" if s.low_records is None else str(len(s.low_records))]
        for s in summaries
    ]
    return columns(rows, left=2)


def ratio_text(ratio: Optional[float]) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"


def interval_text(low: Optional[float], high: Optional[float]) -> str:
    return "-" if low is None or high is None else f"{low:.3f}-{high:.3f}"


def verdict_text(comparison: Comparison) -> str:
    ratio = comparison.ratio
    if comparison.verdict == compare.SLOWER and ratio is not None:
        return f"slower by {100 * (1 - ratio):.1f}%"
    if comparison.verdict == compare.FASTER and ratio is not None:
        return f"faster by {100 * (ratio - 1):.1f}%"
    if comparison.verdict == compare.CANNOT_TELL:
        if comparison.effective is None:
            return "cannot tell (no records to compare)"
        return (
            f"cannot tell ({comparison.effective:.1f} effective records, "
            f"{MIN_EFFECTIVE:g} needed)"
        )
    return "no difference this data can resolve"


def _left_out_text(from_step: Optional[int]) -> str:
    if from_step is None:
        return "each run's first record left out as warm-up"
    return f"records before step {from_step} left out as warm-up"


def stalls_text(secs: float, share: Optional[float]) -> str:
    """The watchdog's stalls in a window: seconds and the share they cost."""
    if not secs:
        return "-"
    return f"{format_number(secs)} s" + ("" if share is None else f" ({share:.1%})")


def _comparison_lines(report: ReportData) -> List[str]:
    if report.baseline is None:
        return []
    title = (
        f"Compared with the baseline run {report.baseline} (throughput: steps / "
        f"training seconds; ratio with its {CONFIDENCE:.0%} interval, which "
        f"allows for autocorrelated records; {_left_out_text(report.from_step)}; "
        f"a verdict needs the whole interval beyond 1 +/- {compare.MARGIN:g}; "
        "steady: ratio of median rates; stalls: the watchdog's, with the share "
        "of training time they cost):"
    )
    if not report.comparisons:
        return ["", title, "  no other run shares a rate tag with the baseline"]
    interval = f"{CONFIDENCE:.0%} interval"
    header = ["run", "tag", "records", "throughput", "ratio", interval, "steady",
              "stalls", "verdict"]
    rows = [header]
    for tag in dict.fromkeys(c.tag for c in report.comparisons):
        first = next(c for c in report.comparisons if c.tag == tag)
        rows.append([
            first.baseline, tag, str(first.baseline_records),
            format_number(first.baseline_throughput), "1", "-", "1",
            stalls_text(first.baseline_stall_secs, first.baseline_stall_share),
            "baseline",
        ])
    rows += [
        [c.run, c.tag, str(c.records), format_number(c.throughput),
         ratio_text(c.ratio), interval_text(c.low, c.high),
         ratio_text(c.steady_ratio), stalls_text(c.stall_secs, c.stall_share),
         verdict_text(c)]
        for c in report.comparisons
    ]
    lines = ["", title] + columns(rows, left=2, text_from=7)
    lines += [
        f"  {c.run}  {c.tag}: {c.left_out} record{_s(c.left_out)} after warm-up "
        "not counted (steps unknown, or no finite positive rate)"
        for c in report.comparisons if c.left_out
    ]
    return lines


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _slowdown_lines(slowdowns: Sequence[Slowdown]) -> List[str]:
    if not slowdowns:
        return []
    title = (
        "Slowdowns (the rate dropped and stayed down, at once or as a drift; "
        "ratio: the rate after / before):"
    )
    shown = sorted(slowdowns, key=lambda s: s.ratio)[:SHOWN] if len(
        slowdowns) > 2 * SHOWN else slowdowns
    lines = ["", title] + [_slowdown_line(s) for s in shown]
    if len(shown) < len(slowdowns):
        lines.append(
            f"  ... {len(slowdowns)} slowdowns in all, the {len(shown)} largest "
            "shown (--json lists all)"
        )
    return lines


def _slowdown_line(s: Slowdown) -> str:
    if s.records_during:
        where = (
            f"a drift after step {s.from_step} until step {s.step} "
            f"({s.records_during + 1} records)"
        )
    else:
        where = f"after step {s.from_step} (slow from the record at step {s.step})"
    return (
        f"  {s.run}  {s.tag}  {where}: {ratio_text(s.ratio)}, "
        f"{format_number(s.rate_before)} -> {format_number(s.rate_after)}"
    )


def _low_record_lines(summaries: Sequence[TagSummary]) -> List[str]:
    flagged = [s for s in summaries if s.low_records]
    if not flagged:
        return []
    lines = [
        "",
        f"Low records (below {LOW_FRACTION:g} x the run's median; slow "
        "intervals, counted in the throughput; not stalls):",
    ]
    for s in flagged:
        low = s.low_records or []
        if len(low) <= SHOWN:
            lines += [
                f"  {s.run}  {s.tag}  {_steps_text(r)}: {format_number(r.value)} "
                f"(median {format_number(s.median)})"
                for r in low
            ]
            continue
        worst = sorted(low, key=lambda r: r.value)[:SHOWN]
        shown = ", ".join(
            f"{format_number(r.value)} at {_steps_text(r)}" for r in worst
        )
        lines.append(
            f"  {s.run}  {s.tag}  {len(low)} of {s.records} records (median "
            f"{format_number(s.median)}); lowest: {shown} (--json lists all)"
        )
    return lines


def _watchdog_lines(stalls: Sequence[RecordedStall]) -> List[str]:
    if not stalls:
        return []
    lines = ["", "Stalls seen by the watchdog (stall_secs):"]
    by_run: Dict[str, List[RecordedStall]] = {}
    for stall in stalls:
        by_run.setdefault(stall.run, []).append(stall)
    for run, found in by_run.items():
        if len(found) <= SHOWN:
            lines += [
                f"  {run}  resumed at step {stall.step} after "
                f"{format_number(stall.secs)} s without a step"
                for stall in found
            ]
            continue
        longest = sorted(found, key=lambda s: -s.secs)[:SHOWN]
        total = sum(s.secs for s in found if math.isfinite(s.secs))
        shown = ", ".join(
            f"{format_number(s.secs)} s at step {s.step}" for s in longest
        )
        lines.append(
            f"  {run}  {len(found)} stalls, {format_number(total)} s in all; "
            f"longest: {shown} (--json lists all)"
        )
    return lines


def _rerun_lines(report: ReportData) -> List[str]:
    resumed = [run for run in report.sources.values() if run.reruns]
    if not resumed:
        return []
    lines = ["", "Resumed from a checkpoint (one run, as TensorBoard draws it):"]
    lines += [
        f"  {run.name}  went back to step {r.from_step} after step {r.to_step}: "
        f"steps {r.from_step}-{r.to_step} run again"
        for run in resumed for r in run.reruns
    ]
    return lines


def _input_lines(shares: Sequence[RunInputShare]) -> List[str]:
    if not shares:
        return []
    lines = ["", "Input (time_frac/input, weighted by each record's training time):"]
    for share in shares:
        text = f"  {share.run}  {share.share:.0%} of training time waiting for input"
        if share.share >= INPUT_BOUND:
            text += (
                f": {share.run} waits on its input {share.share:.0%} of training "
                "time; a faster input pipeline (prefetch, more workers) speeds it up"
            )
        lines.append(text)
    return lines


def _non_finite_lines(summaries: Sequence[TagSummary]) -> List[str]:
    flagged = [s for s in summaries if s.non_finite]
    if not flagged:
        return []
    lines = ["", "Non-finite records (counted in records, left out of the statistics):"]
    for s in flagged:
        shown = ", ".join(f"{r.value} at step {r.step}" for r in s.non_finite[:5])
        more = f" and {len(s.non_finite) - 5} more" if len(s.non_finite) > 5 else ""
        lines.append(f"  {s.run}  {s.tag}  {len(s.non_finite)}: {shown}{more}")
    return lines


def _step_time_lines(found: Sections) -> List[str]:
    if not found.step_times:
        return []
    header = ["run", "records", "steps", "p50", "p90", "p99", "max", "max at step"]
    rows = [header] + [
        [t.run, str(t.records), f"{t.first_step}-{t.last_step}",
         *(format_number(v) for v in (t.p50, t.p90, t.p99, t.max)),
         "-" if t.max_step is None else str(t.max_step)]
        for t in found.step_times
    ]
    title = "Step time (seconds; p50/p90/p99: median over records; max: the largest):"
    return ["", title] + columns(rows, left=1)


def _goodput_lines(ledgers: Sequence[GoodputLedger]) -> List[str]:
    if not ledgers:
        return []
    lines = ["", "Goodput (where the wall clock of each fit went):"]
    for ledger in ledgers:
        lines.append(f"  {ledger.run}:{_fits_text(ledger)}")
        total = ledger.total_secs
        rows = [["bucket", "seconds", "share"]]
        for name, secs in ledger.buckets.items():
            rows.append([name[: -len("_secs")], f"{secs:.2f}", share_text(secs, total)])
        if total is not None:
            rows.append(["total", f"{total:.2f}", share_text(total, total)])
        if len(rows) > 1:
            lines += columns(rows, left=1, indent="    ")
        lines += [
            f"    re-run steps: {_count(r.steps)} (recorded at step {r.step})"
            for r in ledger.rerun_steps
        ]
    return lines


def _fits_text(ledger: GoodputLedger) -> str:
    if not ledger.fits:
        return ""
    fits = ", ".join(
        f"step {f.step} ({format_number(f.total_secs)} s, "
        f"fraction {format_number(f.fraction)})"
        for f in ledger.fits
    )
    count = f"{len(ledger.fits)} fit{'' if len(ledger.fits) == 1 else 's'}"
    return f" {count}, ending at {fits}"


def _count(value: float) -> str:
    return str(value) if isinstance(value, int) else format_number(value)


def _time_frac_lines(found: Sections) -> List[str]:
    if not found.time_fracs:
        return []
    rows = [["run", "block", "records", "median", "p90"]] + [
        [t.run, t.name, str(t.records), format_number(t.median), format_number(t.p90)]
        for t in found.time_fracs
    ]
    title = "Time in named blocks (time_frac/<name>: share of each record's interval):"
    return ["", title] + columns(rows, left=2)


def to_json_dict(report: ReportData) -> Dict[str, Any]:
    """The JSON form: `{"logdir", "percentile_method", "low_fraction",
    "runs": {run: {tag: {records, first_step, last_step, throughput, median,
    p10, p90, min, low_threshold, low_records: [{from_step, step, value}] or
    null, non_finite: [{step, value}]}}}, "sources": {run: {directory,
    event_files}}, "reruns": {run: [{from_step, to_step}]}, "step_time": {run: {records, first_step, last_step, p50,
    p90, p99, max, max_step}}, "watchdog_stalls": {run: [{step, secs}]},
    "goodput": {run: {fits: [{step, total_secs, <bucket>_secs..., fraction}],
    total: {...the same, summed}, rerun_steps: [{step, steps}]}},
    "time_frac": {run: {name: {records, median, p90}}}, "input_share":
    {run: {share, records}}, "from_step", "comparison": null or {baseline,
    confidence, margin, min_effective, runs: {run: {tag: {records,
    baseline_records, left_out, baseline_left_out, throughput,
    baseline_throughput, ratio, low, high, effective, steady_ratio,
    stall_secs, stall_share, baseline_stall_secs, baseline_stall_share,
    verdict}}}}, "slowdowns": {run: [{tag, from_step, step, rate_before,
    rate_after, ratio, score, records_before, records_during,
    records_after}]}, "notices": [...]}`.

    Every list is whole (the text shows the worst few of a long one).
    Non-finite numbers become the strings "nan", "inf", "-inf"; a statistic
    with no finite value to come from is null.
    """
    runs: Dict[str, Dict[str, Any]] = {name: {} for name in report.runs}
    for s in report.summaries:
        fields = asdict(s)
        del fields["run"], fields["tag"]
        runs[s.run][s.tag] = fields
    found = report.sections
    time_frac: Dict[str, Dict[str, Any]] = {}
    for t in found.time_fracs:
        time_frac.setdefault(t.run, {})[t.name] = _without_run(asdict(t), "name")
    data = {
        "logdir": report.logdir,
        "percentile_method": PERCENTILE_METHOD,
        "low_fraction": LOW_FRACTION,
        "runs": runs,
        "sources": {
            name: {"directory": run.directory,
                   "event_files": [os.path.basename(p) for p in run.files]}
            for name, run in report.sources.items()
        },
        "reruns": {
            name: [asdict(r) for r in run.reruns]
            for name, run in report.sources.items() if run.reruns
        },
        "step_time": {t.run: _without_run(asdict(t)) for t in found.step_times},
        "watchdog_stalls": _by_run(found.recorded_stalls),
        "goodput": {ledger.run: _ledger_json(ledger) for ledger in found.ledgers},
        "time_frac": time_frac,
        "input_share": {
            share.run: {"share": share.share, "records": share.records}
            for share in report.input_shares
        },
        "from_step": report.from_step,
        "comparison": _comparison_json(report),
        "slowdowns": _by_run(report.slowdowns),
        "notices": list(report.notices),
    }
    return strict(data)


def _comparison_json(report: ReportData) -> Optional[Dict[str, Any]]:
    if report.baseline is None:
        return None
    runs: Dict[str, Dict[str, Any]] = {}
    for c in report.comparisons:
        runs.setdefault(c.run, {})[c.tag] = _without_run(asdict(c), "tag", "baseline")
    return {
        "baseline": report.baseline,
        "confidence": CONFIDENCE,
        "margin": compare.MARGIN,
        "min_effective": MIN_EFFECTIVE,
        "runs": runs,
    }


def _without_run(fields: Dict[str, Any], *more: str) -> Dict[str, Any]:
    for key in ("run", *more):
        del fields[key]
    return fields


def _by_run(stalls: Sequence[Any]) -> Dict[str, List[Dict[str, Any]]]:
    grouped: Dict[str, List[Dict[str, Any]]] = {}
    for stall in stalls:
        grouped.setdefault(stall.run, []).append(_without_run(asdict(stall)))
    return grouped


def _ledger_json(ledger: GoodputLedger) -> Dict[str, Any]:
    return {
        "fits": [
            _ledger_fields(f.step, f.total_secs, f.buckets, f.fraction)
            for f in ledger.fits
        ],
        "total": _ledger_fields(
            None, ledger.total_secs, ledger.buckets, ledger.fraction
        ),
        "rerun_steps": [asdict(r) for r in ledger.rerun_steps],
    }


def _ledger_fields(
    step: Optional[int],
    total: Optional[float],
    buckets: Dict[str, float],
    fraction: Optional[float],
) -> Dict[str, Any]:
    at_step = {} if step is None else {"step": step}
    return {**at_step, "total_secs": total, **buckets, "fraction": fraction}


def strict(value: Any) -> Any:
    """`value` with every non-finite float replaced by its text ("nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return number_text(value)
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value


def to_json_text(report: ReportData) -> str:
    """Strict JSON (no NaN or Infinity, which strict parsers reject)."""
    return json.dumps(to_json_dict(report), indent=2, allow_nan=False)
