"""The tags the recorders write, as the report sorts them.

The spellings live in `keras_stepcounter.core.tags`, beside the recorders
that write them; this adds how the report groups and orders them.
"""

from __future__ import annotations

from typing import Tuple

from keras_stepcounter.core.tags import (
    BASELINE_STEP_TAG,
    DEFAULT_TAG,
    EXTRA_TAGS,
    RATE_SUFFIX,
    GOODPUT_PREFIX,
    INPUT_FRAC_TAG,
    RERUN_STEPS_TAG,
    STALL_SECS_TAG,
    STEP_TIME_PREFIX,
    TIME_FRAC_PREFIX,
    is_rate_tag,
    is_recorder_tag,
)

__all__ = [
    "BASELINE_STEP_TAG",
    "INPUT_FRAC_TAG",
    "RATE_SUFFIX",
    "EXTRA_TAGS",
    "GOODPUT_PREFIX",
    "RERUN_STEPS_TAG",
    "STALL_SECS_TAG",
    "STEP_TIME_PREFIX",
    "STEP_TIME_STATS",
    "TIME_FRAC_PREFIX",
    "is_rate_tag",
    "is_recorder_tag",
    "is_reported_tag",
    "tag_order",
]

# The step-time statistics the report's table shows, by tag suffix.
STEP_TIME_STATS = ("p50", "p90", "p99", "max")


def is_reported_tag(tag: str) -> bool:
    """A tag summarised in the main table: a rate, `time_to_first_step`, `mfu`."""
    return is_rate_tag(tag) or tag in EXTRA_TAGS


def tag_order(tag: str) -> Tuple[int, str]:
    """`global_step/sec` first, then the other rates, then the extras."""
    if tag == DEFAULT_TAG:
        return (0, tag)
    return (1, tag) if is_rate_tag(tag) else (2, tag)
