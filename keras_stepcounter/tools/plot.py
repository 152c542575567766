"""Rate against step, one line per run: `report LOGDIR --plot FILE.png`.

Needs matplotlib (`pip install 'keras_stepcounter[plot]'`), imported only
when a plot is asked for, and drawn on an Agg canvas (no pyplot, no
display), so it works on headless servers. The format follows the file's
extension (any that matplotlib writes: png, pdf, svg, ...); the path is
checked before any event file is read.

Plotted: the step-rate tags of each run, i.e. the tags ending in `/sec`
other than `examples/sec` (`global_step/sec`, the v1 hook's
`<global step op name>/sec`, custom tags), low records (see `report`) marked
with a red cross. With a baseline (`report --baseline`), its line is drawn
thicker and its median as a dashed level line; where a run slowed down
(`slowdown`), a dotted vertical line in the run's colour marks the step
after which its rate dropped. Where a run recorded `step_time/p50`, a
second panel below draws it against the step, with a band from p50 to
`step_time/p99`.
NaN and inf records are left out of the lines.

Example:

    plot_rates(report.load_report("logs"), "rates.png")
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from keras_stepcounter.core.tags import DEFAULT_TAG, EXAMPLES_TAG
from keras_stepcounter.tools.scalar_columns import ScalarRecord, columns_of
from keras_stepcounter.tools.results import ReportData
from keras_stepcounter.tools.stats import LOW_FRACTION
from keras_stepcounter.tools.tags import STEP_TIME_PREFIX, is_rate_tag

INSTALL_HINT = "pip install 'keras_stepcounter[plot]' (or: pip install matplotlib)"
P50, P99 = STEP_TIME_PREFIX + "p50", STEP_TIME_PREFIX + "p99"


class PlotUnavailableError(ImportError):
    """matplotlib is not installed."""


class PlotPathError(ValueError):
    """The plot's path names no format matplotlib writes, or a directory."""


def is_step_rate_tag(tag: str) -> bool:
    return is_rate_tag(tag) and tag != EXAMPLES_TAG


def require_matplotlib() -> Callable[..., Any]:
    """Returns a maker of Agg figures; PlotUnavailableError if missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotUnavailableError(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from error

    def agg_figure(**kwargs: Any) -> Any:
        # An Agg canvas of our own, not pyplot: no display needed, and the
        # backend of a caller that uses pyplot (a notebook) is left alone.
        figure = Figure(**kwargs)
        FigureCanvasAgg(figure)
        return figure

    return agg_figure


def check_plot_path(path: str) -> None:
    """PlotPathError unless matplotlib can write a file at `path`."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = sorted(FigureCanvasAgg.get_supported_filetypes())
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    known = f"(matplotlib writes: {', '.join(formats)})"
    if os.path.isdir(path):
        raise PlotPathError(
            f"--plot {path!r} is a directory; name a file, e.g. rates.png"
        )
    if not extension:
        raise PlotPathError(
            f"--plot {path!r} has no extension to tell the format; "
            f"e.g. {path}.png {known}"
        )
    if extension not in formats:
        raise PlotPathError(f"--plot {path!r}: unknown format '.{extension}' {known}")


def plot_rates(report: ReportData, path: str, title: str = "") -> str:
    """Draws every run's step rate (and step time) against the step into `path`.

    Returns the path written. The default title names the LOGDIR.
    """
    figure = rate_figure(report, title)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path)
    return path


def rate_figure(report: ReportData, title: str = "") -> Any:
    """The figure `plot_rates` saves: rates above, step times below if any."""
    agg_figure = require_matplotlib()
    timed = [run for run, scalars in report.runs.items() if scalars.get(P50)]
    figure = agg_figure(figsize=(8, 7 if timed else 4.5), dpi=100)
    rate_axes = figure.add_subplot(2 if timed else 1, 1, 1)
    colors = _draw_rates(rate_axes, report)
    rate_axes.set_title(title or f"Training speed: {report.logdir}")
    if timed:
        time_axes = figure.add_subplot(2, 1, 2, sharex=rate_axes)
        _draw_step_times(time_axes, report, timed, colors)
    figure.tight_layout()
    return figure


def _points(records: Sequence[ScalarRecord]) -> tuple[List[int], List[float]]:
    columns = columns_of(records)
    kept = np.isfinite(columns.values)
    return columns.steps[kept].tolist(), columns.values[kept].tolist()


def _draw_rates(axes: Any, report: ReportData) -> Dict[str, Any]:
    """Draws the rate lines; returns each run's colour, for the other panel."""
    colors: Dict[str, Any] = {}
    plotted = [s for s in report.summaries if is_step_rate_tag(s.tag)]
    low_label = f"low record (< {LOW_FRACTION:g} x median)"
    for summary in plotted:
        label = summary.run
        if summary.tag != DEFAULT_TAG:
            label = f"{summary.run} ({summary.tag})"
        records = report.runs[summary.run][summary.tag]
        is_baseline = summary.run == report.baseline
        if is_baseline:
            label += " (baseline)"
        [line] = axes.plot(
            *_points(records), marker=".", label=label,
            linewidth=2.5 if is_baseline else None,
        )
        colors.setdefault(summary.run, line.get_color())
        if is_baseline and summary.median is not None:
            axes.axhline(
                summary.median, linestyle="--", color=line.get_color(),
                label=f"baseline median ({summary.tag})",
            )
        if summary.low_records:
            axes.plot(
                [s.step for s in summary.low_records],
                [s.value for s in summary.low_records],
                linestyle="none", marker="x", color="red", markersize=9,
                label=low_label,
            )
            low_label = "_nolegend_"  # One legend entry for all of them.
    for slowdown in report.slowdowns:
        if is_step_rate_tag(slowdown.tag):
            axes.axvline(
                slowdown.from_step, linestyle=":", linewidth=2,
                color=colors.get(slowdown.run),
                label=f"{slowdown.run}: slower after step {slowdown.from_step} "
                f"(x{slowdown.ratio:.2f})",
            )
    axes.set_xlabel("global step")
    axes.set_ylabel("steps / sec")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if plotted:
        axes.legend(fontsize="small")
    return colors


def _draw_step_times(
    axes: Any, report: ReportData, runs: Sequence[str], colors: Dict[str, Any]
) -> None:
    for run in runs:
        steps, p50 = _points(report.runs[run][P50])
        [line] = axes.plot(
            steps, p50, marker=".", label=f"{run} p50", color=colors.get(run)
        )
        upper = {r.step: r.value for r in report.runs[run].get(P99, [])}
        band = [
            (step, low, upper[step])
            for step, low in zip(steps, p50)
            if math.isfinite(upper.get(step, math.nan))
        ]
        if band:
            axes.fill_between(
                [b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                color=line.get_color(), alpha=0.2, label=f"{run} p50 to p99",
            )
    axes.set_xlabel("global step")
    axes.set_ylabel("step time (s)")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
