"""The report as text (a table, then sections) and as strict JSON."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from keras_stepcounter.core.ledger_table import share_text
from keras_stepcounter.tools.sections import GoodputLedger, Sections
from keras_stepcounter.tools.stats import PERCENTILE_METHOD, STALL_FRACTION, number_text

if TYPE_CHECKING:
    from keras_stepcounter.tools.report import Report, Stall, TagSummary


def format_number(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _steps_text(stall: Stall) -> str:
    if stall.from_step is None:
        return f"up to step {stall.step}"
    return f"steps {stall.from_step}-{stall.step}"


def columns(rows: Sequence[Sequence[str]], left: int, indent: str = "") -> List[str]:
    """Rows as aligned lines: the first `left` cells to the left, the rest right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]


def format_report(report: Report) -> str:
    lines = format_table(report.summaries) if report.summaries else []
    lines += _stall_lines(report.summaries, report.sections)
    lines += _non_finite_lines(report.summaries)
    lines += _step_time_lines(report.sections)
    lines += _goodput_lines(report.sections.ledgers)
    lines += _time_frac_lines(report.sections)
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def format_table(summaries: Sequence[TagSummary]) -> List[str]:
    """One row per run and tag."""
    header = ["run", "tag", "records", "steps", "median", "p10", "p90", "min", "stalls"]
    rows = [header] + [
        [s.run, s.tag, str(s.records), f"{s.first_step}-{s.last_step}",
         *(format_number(v) for v in (s.median, s.p10, s.p90, s.min)),
         "-" if s.stalls is None else str(len(s.stalls))]
        for s in summaries
    ]
    return columns(rows, left=2)


def _stall_lines(summaries: Sequence[TagSummary], found: Sections) -> List[str]:
    lines = []
    stalled = [s for s in summaries if s.stalls]
    if stalled:
        lines += ["", f"Stalls (records below {STALL_FRACTION:g} x the median):"]
        lines += [
            f"  {s.run}  {s.tag}  {_steps_text(stall)}: "
            f"{format_number(stall.value)} (median {format_number(s.median)})"
            for s in stalled for stall in s.stalls or []
        ]
    if found.recorded_stalls:
        lines += ["", "Stalls seen by the watchdog (stall_secs):"]
        lines += [
            f"  {stall.run}  resumed at step {stall.step} after "
            f"{format_number(stall.secs)} s without a step"
            for stall in found.recorded_stalls
        ]
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


def to_json_dict(report: Report) -> Dict[str, Any]:
    """The JSON form: `{"logdir", "percentile_method", "stall_fraction",
    "runs": {run: {tag: {records, first_step, last_step, median, p10, p90,
    min, stall_threshold, stalls: [{from_step, step, value}] or null,
    non_finite: [{step, value}]}}}, "sources": {run: {directory,
    event_files}}, "step_time": {run: {records, first_step, last_step, p50,
    p90, p99, max, max_step}}, "watchdog_stalls": {run: [{step, secs}]},
    "goodput": {run: {fits: [{step, total_secs, <bucket>_secs..., fraction}],
    total: {...the same, summed}, rerun_steps: [{step, steps}]}},
    "time_frac": {run: {name: {records, median, p90}}}, "notices": [...]}`.

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
        "stall_fraction": STALL_FRACTION,
        "runs": runs,
        "sources": {
            name: {"directory": run.directory,
                   "event_files": [os.path.basename(p) for p in run.files]}
            for name, run in report.sources.items()
        },
        "step_time": {t.run: _without_run(asdict(t)) for t in found.step_times},
        "watchdog_stalls": _by_run(found.recorded_stalls),
        "goodput": {ledger.run: _ledger_json(ledger) for ledger in found.ledgers},
        "time_frac": time_frac,
        "notices": list(report.notices),
    }
    return strict(data)


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


def to_json_text(report: Report) -> str:
    """Strict JSON (no NaN or Infinity, which strict parsers reject)."""
    return json.dumps(to_json_dict(report), indent=2, allow_nan=False)
