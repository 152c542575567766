"""The counter's TensorBoard dashboard: a Custom Scalars layout.

One category, `keras_stepcounter`, with a chart for each group of tags the
counter's settings make it write (docs/report-and-tensorboard.md lists
them). Steps and examples per second get a chart each: on one axis, steps
would be a flat line under examples. `stall_secs` (written only when a
stall ends) and `time_frac/<name>` (names known only once a block is
timed, after the layout is written) get none. Plain Python and
TensorBoard's protos, no TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.custom_scalar import layout_pb2

from keras_stepcounter.core.options import RecorderOptions
from keras_stepcounter.core.tags import (
    BUCKET_TAGS,
    INPUT_FRAC_TAG,
    INPUT_TAG,
    DEFAULT_TAG,
    EXAMPLES_TAG,
    MAX_TAG,
    MFU_TAG,
    P10_TAG,
    P50_TAG,
    P90_TAG,
    P99_TAG,
)
from keras_stepcounter.summary_protos import layout_summary

CATEGORY = "keras_stepcounter"


@dataclass(frozen=True)
class DashboardTags:
    """Which tags a counter writes, from its settings: what its layout charts.

    Args:
        tag: The steps/sec tag.
        examples: `examples/sec` is written.
        mfu: `mfu` is written.
        step_time_stats: `step_time/p10` ... `/max` are written.
        goodput: The goodput ledger is written at the end of each `fit`.
        input_stats: `time_frac/input` and the ledger's input bucket are
            written.

    Example:

    ```python
    tags = DashboardTags.of(RecorderOptions(batch_size=32), goodput=True)
    [chart.title for chart in layout(tags).category[0].chart]
    # ['steps per second', 'examples per second', 'goodput (seconds per fit)']
    ```
    """

    tag: str = DEFAULT_TAG
    examples: bool = False
    mfu: bool = False
    step_time_stats: bool = False
    goodput: bool = False
    input_stats: bool = False

    @classmethod
    def of(
        cls,
        options: RecorderOptions,
        *,
        step_time_stats: bool = False,
        goodput: bool = False,
        input_stats: bool = False,
    ) -> "DashboardTags":
        """The tags of a recorder with `options` and these instruments."""
        return cls(
            tag=options.tag,
            examples=options.writes_examples,
            mfu=options.mfu_per_step_rate is not None,
            step_time_stats=bool(step_time_stats),
            goodput=bool(goodput),
            input_stats=bool(input_stats),
        )


def layout(tags: DashboardTags) -> layout_pb2.Layout:
    """The Custom Scalars layout charting `tags`: one category, and only
    charts whose tags are written."""
    charts: List[Optional[layout_pb2.Chart]] = [
        _lines("steps per second", tags.tag),
        _lines("examples per second", EXAMPLES_TAG) if tags.examples else None,
        _lines("mfu (model FLOPs utilization)", MFU_TAG) if tags.mfu else None,
        _band("step time (s): p50 within p10-p90", P50_TAG, P10_TAG, P90_TAG)
        if tags.step_time_stats
        else None,
        _lines("step time tail (s): p99, max", P99_TAG, MAX_TAG)
        if tags.step_time_stats
        else None,
        _lines("input wait (share of each interval)", INPUT_FRAC_TAG)
        if tags.input_stats
        else None,
        _lines(
            "goodput (seconds per fit)",
            *(tag for tag in BUCKET_TAGS if tags.input_stats or tag != INPUT_TAG),
        )
        if tags.goodput
        else None,
    ]
    category = layout_pb2.Category(
        title=CATEGORY, chart=[chart for chart in charts if chart is not None]
    )
    return layout_pb2.Layout(category=[category])


def dashboard_summary(tags: DashboardTags) -> summary_pb2.Summary:
    """The `Summary` that puts `layout(tags)` into an event file."""
    return layout_summary(layout(tags))


def _lines(title: str, *tags: str) -> layout_pb2.Chart:
    # Chart tags are regular expressions; each of ours matches one tag only.
    return layout_pb2.Chart(
        title=title,
        multiline=layout_pb2.MultilineChartContent(
            tag=[f"^{re.escape(tag)}$" for tag in tags]
        ),
    )


def _band(title: str, value: str, lower: str, upper: str) -> layout_pb2.Chart:
    # Margin series name tags exactly (TensorBoard escapes them itself).
    series = layout_pb2.MarginChartContent.Series(value=value, lower=lower, upper=upper)
    return layout_pb2.Chart(title=title, margin=layout_pb2.MarginChartContent(series=[series]))
