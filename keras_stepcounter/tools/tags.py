"""The tags the recorders write (SPEC section 2), as the report sorts them."""

from __future__ import annotations

from typing import Tuple

RATE_SUFFIX = "/sec"
EXTRA_TAGS = ("time_to_first_step", "mfu")
STEP_TIME_PREFIX = "step_time/"
STEP_TIME_STATS = ("p50", "p90", "p99", "max")
STALL_SECS = "stall_secs"
GOODPUT_PREFIX = "goodput/"
TIME_FRAC_PREFIX = "time_frac/"


def is_rate_tag(tag: str) -> bool:
    """`global_step/sec`, `examples/sec`, the v1 hook's `<op name>/sec`, custom."""
    return tag.endswith(RATE_SUFFIX)


def is_reported_tag(tag: str) -> bool:
    """A tag summarised in the main table: a rate, `time_to_first_step`, `mfu`."""
    return is_rate_tag(tag) or tag in EXTRA_TAGS


def is_recorder_tag(tag: str) -> bool:
    """Any tag a keras_stepcounter recorder writes (Keras's losses are not)."""
    return (
        is_reported_tag(tag)
        or tag == STALL_SECS
        or tag.startswith((STEP_TIME_PREFIX, GOODPUT_PREFIX, TIME_FRAC_PREFIX))
    )


def tag_order(tag: str) -> Tuple[int, str]:
    """`global_step/sec` first, then the other rates, then the extras."""
    if tag == "global_step/sec":
        return (0, tag)
    return (1, tag) if is_rate_tag(tag) else (2, tag)
