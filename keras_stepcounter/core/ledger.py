"""Where the seconds of a fit went: a goodput ledger, and re-run steps.

Steps per second says how fast the steps are; the ledger says how much of
the wall clock was steps. The recorder reports a few events, each with its
clock time, and `GoodputLedger` splits the fit's time into buckets that add
up to the total:

    train_begin --startup-- first_step_end --step-- steps_paused
        --epoch_boundary-- steps_resumed --step-- ... steps_paused
        --epoch_boundary-- train_end

The counter's own work (`recorder_work`) is taken out of the bucket it
happened in and counted once, in `recorder_secs`. A fit that ends before
its first step has no startup to speak of: its time is `other_secs`.
"""

from __future__ import annotations

from typing import Dict, Optional

from keras_stepcounter.core.tags import (
    BUCKET_TAGS,
    EPOCH_BOUNDARY_TAG,
    FRACTION_TAG,
    OTHER_TAG,
    RECORDER_TAG,
    RERUN_STEPS_TAG,
    STALL_TAG,
    STARTUP_TAG,
    STEP_TAG,
    TOTAL_TAG,
)

__all__ = ["BUCKET_TAGS", "RERUN_STEPS_TAG", "GoodputLedger", "rerun_steps", "summary_line"]

_STARTUP, _STEPS, _BOUNDARY, _OTHER = (
    STARTUP_TAG, STEP_TAG, EPOCH_BOUNDARY_TAG, OTHER_TAG,
)


class GoodputLedger:
    """Splits one fit's wall time into startup, steps, boundaries and more.

    Every event takes the clock time it happened at (one monotonic clock
    for all); events that do not apply in the current state are ignored,
    so nothing here can fail a fit. Buckets:

    - startup: `train_begin` to `first_step_end` (tracing, compiling, the
      first batch);
    - step: in steps after the first (`first_step_end` or `steps_resumed`
      to `steps_paused`);
    - epoch_boundary: `steps_paused` to `steps_resumed`, and the last pause
      to `train_end`;
    - recorder: the seconds given to `recorder_work`, taken out of the
      bucket they fell in;
    - other: a fit that ended before its first step.

    The five add up to `total_secs` (exactly on exact inputs, else up to
    float rounding).

    Example:

    ```python
    ledger = GoodputLedger()
    ledger.train_begin(0.0)
    ledger.first_step_end(4.0)    # Compiling took 4 s.
    ledger.recorder_work(0.5)     # A record written while in steps.
    ledger.steps_paused(10.0)     # The epoch's last batch ended.
    ledger.steps_resumed(12.0)    # Validation took 2 s.
    ledger.train_end(20.0, last_batch_end=19.0)
    # total 20, startup 4, step 5.5 + 7, epoch_boundary 2 + 1,
    # recorder 0.5, other 0, fraction 12.5 / 20
    ```
    """

    def __init__(self) -> None:
        self._state: Optional[str] = None
        self._since = 0.0
        self._begin = 0.0
        self._secs: Dict[str, float] = {}
        self._recorder_secs = 0.0

    @property
    def in_fit(self) -> bool:
        """Between `train_begin` and `train_end`."""
        return self._state is not None

    def train_begin(self, t: float) -> None:
        """A fit starts: forgets the last one; startup begins."""
        self._begin = self._since = t
        self._state = _STARTUP
        self._secs = {_STARTUP: 0.0, _STEPS: 0.0, _BOUNDARY: 0.0, _OTHER: 0.0}
        self._recorder_secs = 0.0

    def first_step_end(self, t: float) -> None:
        """The fit's first step ended: startup is over, steps begin."""
        if self._state == _STARTUP:
            self._enter(_STEPS, t)

    def steps_paused(self, t: float) -> None:
        """An epoch's last batch ended: a boundary begins."""
        if self._state == _STEPS:
            self._enter(_BOUNDARY, t)

    def steps_resumed(self, t: float) -> None:
        """An epoch's first batch begins (before the first step: no-op)."""
        if self._state == _BOUNDARY:
            self._enter(_STEPS, t)

    def recorder_work(self, seconds: float) -> None:
        """The counter's own work, inside the current bucket's time."""
        if self._state is None or seconds <= 0:
            return
        self._recorder_secs += seconds
        self._secs[self._state] -= seconds

    def train_end(
        self, t: float, last_batch_end: Optional[float] = None
    ) -> Dict[str, float]:
        """Closes the fit; returns the scalars (empty outside a fit).

        Args:
            t: When the fit ended.
            last_batch_end: When the last step (or the counter's work right
                after it) ended. If the fit ends in steps (no `steps_paused`
                since, as in a custom loop), the time from it to `t` is an
                epoch boundary; without it, that time counts as steps.
        """
        if self._state is None:
            return {}
        if self._state == _STEPS and last_batch_end is not None:
            self.steps_paused(min(max(last_batch_end, self._since), t))
        no_first_step = self._state == _STARTUP
        self._enter(None, t)
        if no_first_step:
            self._secs[_OTHER] += self._secs[_STARTUP]
            self._secs[_STARTUP] = 0.0
        return self._scalars(t - self._begin)

    def _enter(self, state: Optional[str], t: float) -> None:
        if self._state is not None:
            self._secs[self._state] += t - self._since
        self._state = state
        self._since = t

    def _scalars(self, total: float) -> Dict[str, float]:
        step_secs = self._secs[_STEPS]
        scalars = {TOTAL_TAG: total}
        scalars.update(
            {
                STARTUP_TAG: self._secs[_STARTUP],
                STEP_TAG: step_secs,
                EPOCH_BOUNDARY_TAG: self._secs[_BOUNDARY],
                STALL_TAG: 0.0,
                RECORDER_TAG: self._recorder_secs,
                OTHER_TAG: self._secs[_OTHER],
            }
        )
        # 0 rather than absent for an empty fit: the tags stay the same set.
        scalars[FRACTION_TAG] = step_secs / total if total > 0 else 0.0
        return scalars


def rerun_steps(start_step: int, highest_recorded: Optional[int]) -> Optional[int]:
    """Steps computed again after a restore from an older checkpoint.

    `highest_recorded - start_step` when the fit starts below the highest
    step already recorded, else None.
    """
    if highest_recorded is None or highest_recorded <= start_step:
        return None
    return highest_recorded - start_step


def summary_line(scalars: Dict[str, float]) -> str:
    """The one log line for `train_end`'s scalars."""
    return (
        "goodput: {fraction:.1%} of {total:.1f} s in steps ({step:.1f} s); "
        "startup {startup:.1f} s, epoch boundaries {boundary:.1f} s, "
        "recorder {recorder:.2f} s, other {other:.1f} s".format(
            fraction=scalars[FRACTION_TAG],
            total=scalars[TOTAL_TAG],
            step=scalars[STEP_TAG],
            startup=scalars[STARTUP_TAG],
            boundary=scalars[EPOCH_BOUNDARY_TAG],
            recorder=scalars[RECORDER_TAG],
            other=scalars[OTHER_TAG],
        )
    )
