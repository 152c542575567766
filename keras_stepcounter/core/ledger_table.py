"""One fit's goodput ledger as a Markdown table and a log line.

A chart shows one fit's ledger as a lone dot per bucket; a table (in
TensorBoard's Text tab, and the report's, with the same share formula)
reads better. Plain Python, no TensorFlow.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from keras_stepcounter.core.tags import (
    BUCKET_TAGS,
    EPOCH_BOUNDARY_TAG,
    FRACTION_TAG,
    INPUT_TAG,
    OTHER_TAG,
    RECORDER_TAG,
    STALL_TAG,
    STARTUP_TAG,
    STEP_TAG,
    TOTAL_TAG,
    bucket_name,
)


def share_text(secs: float, total: Optional[float]) -> str:
    """`secs` as a percentage of `total` (`"12.5%"`), or `"-"` without a total."""
    return f"{100 * secs / total:.1f}%" if total else "-"


def ledger_table(scalars: Mapping[str, float]) -> str:
    """The ledger of one fit as a Markdown table: bucket, seconds, share.

    Args:
        scalars: The ledger's scalars, keyed by their tags
            (`goodput/step_secs`, ..., `goodput/total_secs`); other keys
            are ignored.

    Returns:
        One row per bucket present, in the ledger's order, then the total.

    Example:

    ```python
    ledger_table({"goodput/step_secs": 3.0, "goodput/total_secs": 4.0})
    # | bucket | seconds | share |
    # |:--|--:|--:|
    # | step | 3.00 | 75.0% |
    # | **total** | 4.00 | 100.0% |
    ```
    """
    total = scalars.get(TOTAL_TAG)
    rows: List[str] = ["| bucket | seconds | share |", "|:--|--:|--:|"]
    for tag in BUCKET_TAGS:
        if tag in scalars:
            rows.append(_row(bucket_name(tag), scalars[tag], total))
    if total is not None:
        rows.append(_row("**total**", total, total))
    return "\n".join(rows)


def _row(name: str, secs: float, total: Optional[float]) -> str:
    return f"| {name} | {secs:.2f} | {share_text(secs, total)} |"


def summary_line(scalars: Dict[str, float]) -> str:
    """The one log line for the ledger's scalars."""
    waited = scalars.get(INPUT_TAG)
    input_text = "" if waited is None else f"input {waited:.1f} s, "
    return (
        f"goodput: {scalars[FRACTION_TAG]:.1%} of {scalars[TOTAL_TAG]:.1f} s in steps "
        f"({scalars[STEP_TAG]:.1f} s); {input_text}startup {scalars[STARTUP_TAG]:.1f} s, "
        f"epoch boundaries {scalars[EPOCH_BOUNDARY_TAG]:.1f} s, stalls "
        f"{scalars[STALL_TAG]:.1f} s, recorder {scalars[RECORDER_TAG]:.2f} s, "
        f"other {scalars[OTHER_TAG]:.1f} s"
    )
