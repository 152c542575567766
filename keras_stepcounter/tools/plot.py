"""Rate against step, one line per run: `report LOGDIR --plot FILE.png`.

Needs matplotlib (`pip install 'keras_stepcounter[plot]'`), imported only
when a plot is asked for, and drawn on an Agg canvas (no pyplot, no
display), so it works on headless servers.

Plotted: the step-rate tags of each run, i.e. the tags ending in `/sec`
other than `examples/sec` (`global_step/sec`, the v1 hook's
`<global step op name>/sec`, custom tags). Stalls (see `report`) are marked
with a red cross.

Example:

    plot_rates(report.load_report("logs"), "rates.png")
"""

from __future__ import annotations

import os
from keras_stepcounter.tools.report import STALL_FRACTION, Report, is_rate_tag

INSTALL_HINT = "pip install 'keras_stepcounter[plot]' (or: pip install matplotlib)"


class PlotUnavailableError(ImportError):
    """matplotlib is not installed."""


def is_step_rate_tag(tag: str) -> bool:
    return is_rate_tag(tag) and tag != "examples/sec"


def require_matplotlib():
    """Returns matplotlib's `Figure` class; PlotUnavailableError if missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotUnavailableError(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from error

    def agg_figure(**kwargs):
        # An Agg canvas of our own, not pyplot: no display needed, and the
        # backend of a caller that uses pyplot (a notebook) is left alone.
        figure = Figure(**kwargs)
        FigureCanvasAgg(figure)
        return figure

    return agg_figure


def plot_rates(report: Report, path: str, title: str = "") -> str:
    """Draws every run's step rate against the global step into `path`.

    Returns the path written. The file format follows the extension
    (matplotlib's rule; `.png` for the README image). The default title
    names the LOGDIR.
    """
    agg_figure = require_matplotlib()
    plotted = [s for s in report.summaries if is_step_rate_tag(s.tag)]
    stall_label = f"stall (< {STALL_FRACTION:g} x median)"
    figure = agg_figure(figsize=(8, 4.5), dpi=100)
    axes = figure.add_subplot()
    for summary in plotted:
        records = report.runs[summary.run][summary.tag]
        label = summary.run
        if summary.tag != "global_step/sec":
            label = f"{summary.run} ({summary.tag})"
        axes.plot(
            [r.step for r in records],
            [r.value for r in records],
            marker=".",
            label=label,
        )
        if summary.stalls:
            axes.plot(
                [s.step for s in summary.stalls],
                [s.value for s in summary.stalls],
                linestyle="none",
                marker="x",
                color="red",
                markersize=9,
                label=stall_label,
            )
            stall_label = "_nolegend_"  # One legend entry for all stalls.
    axes.set_xlabel("global step")
    axes.set_ylabel("steps / sec")
    axes.set_title(title or f"Training speed: {report.logdir}")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if plotted:
        axes.legend(fontsize="small")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    return path
