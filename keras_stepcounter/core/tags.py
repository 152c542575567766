"""Every scalar tag the recorders write, spelled once.

The tags are public: users chart, filter and script against them (the
README's table lists them), so a respelled tag breaks their work. The
recorders write these and the tools (report, plot, the TensorBoard layout)
read them; both import them from here, so a tag cannot drift between the
two. Plain strings, no TensorFlow.
"""

from __future__ import annotations

from typing import Tuple

DEFAULT_TAG = "global_step/sec"
RATE_SUFFIX = "/sec"
EXAMPLES_TAG = "examples/sec"
TIME_TO_FIRST_STEP_TAG = "time_to_first_step"
MFU_TAG = "mfu"

STEP_TIME_PREFIX = "step_time/"
P10_TAG = STEP_TIME_PREFIX + "p10"
P50_TAG = STEP_TIME_PREFIX + "p50"
P90_TAG = STEP_TIME_PREFIX + "p90"
P99_TAG = STEP_TIME_PREFIX + "p99"
MAX_TAG = STEP_TIME_PREFIX + "max"
# Percentile tags with their percentile, in the order they are written.
STEP_TIME_PERCENTILES: Tuple[Tuple[str, int], ...] = (
    (P10_TAG, 10), (P50_TAG, 50), (P90_TAG, 90), (P99_TAG, 99),
)
STEP_TIME_TAGS = tuple(tag for tag, _ in STEP_TIME_PERCENTILES) + (MAX_TAG,)

STALL_SECS_TAG = "stall_secs"

# The step a rate interval starts from, written where a recorder takes a
# new baseline (a run's first read, a step that went back): the first
# record after it covers `step - baseline` steps, not the gap to the
# record before (the report's throughput needs every record's steps).
BASELINE_STEP_TAG = "baseline_step"

GOODPUT_PREFIX = "goodput/"
TOTAL_TAG = GOODPUT_PREFIX + "total_secs"
STARTUP_TAG = GOODPUT_PREFIX + "startup_secs"
STEP_TAG = GOODPUT_PREFIX + "step_secs"
EPOCH_BOUNDARY_TAG = GOODPUT_PREFIX + "epoch_boundary_secs"
STALL_TAG = GOODPUT_PREFIX + "stall_secs"
RECORDER_TAG = GOODPUT_PREFIX + "recorder_secs"
OTHER_TAG = GOODPUT_PREFIX + "other_secs"
FRACTION_TAG = GOODPUT_PREFIX + "fraction"
RERUN_STEPS_TAG = GOODPUT_PREFIX + "rerun_steps"
# Waiting for the next batch (`input_stats=True`): its own bucket, and the
# share of each record's interval under `time_frac/input`.
INPUT_TAG = GOODPUT_PREFIX + "input_secs"
# The buckets that add up to TOTAL_TAG, in the order they are written.
BUCKET_TAGS = (
    STARTUP_TAG, STEP_TAG, INPUT_TAG, EPOCH_BOUNDARY_TAG, STALL_TAG, RECORDER_TAG, OTHER_TAG,
)
# Not a scalar: the ledger of a fit as a Markdown table (TensorBoard's Text
# tab), written beside the goodput scalars at the same step.
LEDGER_TEXT_TAG = GOODPUT_PREFIX + "ledger"

TIME_FRAC_PREFIX = "time_frac/"
INPUT_FRAC_TAG = TIME_FRAC_PREFIX + "input"

# Scalars beside the rates that the report summarises in its main table.
EXTRA_TAGS = (TIME_TO_FIRST_STEP_TAG, MFU_TAG)


def is_rate_tag(tag: str) -> bool:
    """`global_step/sec`, `examples/sec`, the v1 hook's `<op name>/sec`, custom."""
    return tag.endswith(RATE_SUFFIX)


def is_recorder_tag(tag: str) -> bool:
    """Any tag a keras_stepcounter recorder writes (Keras's losses are not)."""
    return (
        is_rate_tag(tag)
        or tag in EXTRA_TAGS
        or tag in (STALL_SECS_TAG, BASELINE_STEP_TAG)
        or tag.startswith((STEP_TIME_PREFIX, GOODPUT_PREFIX, TIME_FRAC_PREFIX))
    )


def bucket_name(tag: str) -> str:
    """`goodput/step_secs` -> `step`: a ledger bucket's name in tables."""
    name = tag[len(GOODPUT_PREFIX):]
    return name[: -len("_secs")] if name.endswith("_secs") else name
