"""Where the seconds of a fit went (the ledger's log line), and re-run steps.

The ledger's buckets come from the run's `Timeline` (`Timeline.end_run`),
the same record the rates and the watchdog read. This module holds the two
things around them: the one log line that sums them up, and `RecordedSteps`,
which says how many steps a run that starts below a step already recorded
computes again.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

from keras_stepcounter.core.tags import (
    EPOCH_BOUNDARY_TAG,
    FRACTION_TAG,
    OTHER_TAG,
    RECORDER_TAG,
    STALL_TAG,
    STARTUP_TAG,
    STEP_TAG,
    TOTAL_TAG,
)


class RecordedSteps:
    """The highest step of a counter's own records where it writes.

    Read once per counter (its event files in its `output_dir`, its tags
    only: another tool's records in the same directory are not steps this
    counter trained), then kept up to date in memory from each step it
    writes.

    Args:
        read_highest: Returns the highest step already recorded, or None;
            called once, at the first `rerun_steps`.

    Example:

    ```python
    recorded = RecordedSteps(lambda: 1000)  # An earlier process got to 1000.
    recorded.rerun_steps(800)    # 200: restored from step 800.
    recorded.wrote(1200)
    recorded.rerun_steps(0)      # None: a run from step 0 is a new run.
    ```
    """

    def __init__(self, read_highest: Callable[[], Optional[int]]) -> None:
        self._read_highest: Optional[Callable[[], Optional[int]]] = read_highest
        self._highest: Optional[int] = None

    def wrote(self, step: int) -> None:
        """A record was written at `step`."""
        if self._highest is None or step > self._highest:
            self._highest = step

    def highest(self) -> Optional[int]:
        """The highest step recorded, read from disk the first time."""
        if self._read_highest is not None:
            read, self._read_highest = self._read_highest, None
            on_disk = read()
            if on_disk is not None:
                self.wrote(on_disk)
        return self._highest

    def rerun_steps(self, start_step: int) -> Optional[int]:
        """Steps computed again by a run starting at `start_step`.

        A start above 0 and below the highest step recorded is a restore
        from an older checkpoint: the steps from it to that highest are
        done again. A start at 0 is a new run (a script started over, a
        tuner's next trial), not a re-run; what was recorded before it is
        forgotten, so a restore later in this process is measured against
        the new run's records only. None when nothing is redone.
        """
        if start_step <= 0:
            self._read_highest = None
            self._highest = None
            return None
        highest = self.highest()
        if highest is None or highest <= start_step:
            return None
        return highest - start_step


def summary_line(scalars: Dict[str, float]) -> str:
    """The one log line for the ledger's scalars."""
    return (
        "goodput: {fraction:.1%} of {total:.1f} s in steps ({step:.1f} s); "
        "startup {startup:.1f} s, epoch boundaries {boundary:.1f} s, "
        "stalls {stall:.1f} s, recorder {recorder:.2f} s, other {other:.1f} s".format(
            fraction=scalars[FRACTION_TAG],
            total=scalars[TOTAL_TAG],
            step=scalars[STEP_TAG],
            startup=scalars[STARTUP_TAG],
            boundary=scalars[EPOCH_BOUNDARY_TAG],
            stall=scalars[STALL_TAG],
            recorder=scalars[RECORDER_TAG],
            other=scalars[OTHER_TAG],
        )
    )
