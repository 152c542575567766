"""`Timeline`: one run's record of when steps ran, in the counter's clock.

Every instrument of a counter answers a question about the same few moments
of a run: the rate (how many steps in how much training time), step-time
percentiles (how long each batch call took), time fractions (what share of
that time a named block took), the epoch's `steps_per_sec`, the goodput
ledger (where the run's wall time went) and the stall watchdog (how long
since the last step ended). They read one record of those moments, this
one, so a second is the same kind of second for all of them:

    begin_run --startup-- first step end --steps-- last batch end
        --pause-- next first batch --steps-- ... last batch end --pause-- end_run

- Startup: from `begin_run` to the end of the run's first step (tracing,
  compiling, the first batch). No rate covers it: the first read of the
  step is the rates' baseline.
- Steps: batch calls, each from the end of the one before (or from where
  steps began) to its end.
- A pause: from the end of the last batch before it, whatever hook the
  counter learns it in, to the start of the next batch: an epoch boundary
  (what Keras does after the last batch, validation, checkpoints, other
  callbacks' epoch work), a custom loop's `paused()` block, the run's tail
  after its last batch. Left out of every instrument; booked as
  `epoch_boundary` by the ledger. With `pause_between_epochs=False` epoch
  boundaries and the tail are steps for every instrument alike (a
  `paused()` block is still a pause).
- The counter's own work (a step read, a record's write) while in steps:
  left out of training time, booked as `recorder`.
- A stall: no step end for at least the stall threshold while in steps,
  from the last step end before it to the first step end after it, however
  it hung (user code, input, the counter's own read or write: work that a
  stall spans is stall, not recorder time). It stays training time (a hang
  slows the rate and shows in `step_time/max`); the ledger books it as
  `stall`, never as `step`.

Training time, `training_time(t)`, is the clock less every pause and every
piece of the counter's work before `t`: the clock of the rates and the
epoch's rate; step times and time fractions are differences of it.

The per-batch path writes `last_end` directly (one attribute store); the
rest runs at reads, pauses and run ends.
"""

from __future__ import annotations

from typing import Dict, Optional

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


class Timeline:
    """When a run's steps, pauses, stalls and the counter's own work happened.

    Args:
        pause_between_epochs: Epoch boundaries (`pause(epoch_end=True)`)
            are pauses. When False they are steps, for every instrument.

    Example:

    ```python
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.begin_steps(0.0)
    timeline.last_end = 4.0               # The first batch ended (compiled).
    timeline.first_step_end(4.0, step=1)
    timeline.last_end = 5.0               # Another batch.
    timeline.work(5.0, 5.5)               # A record was written.
    timeline.last_end = 6.5
    timeline.pause()                      # Validation...
    timeline.epoch_rate(step=3)           # 2 steps in 2.0 s of training: 1.0
    timeline.begin_steps(9.5)             # ...took 3 s.
    timeline.last_end = 11.5
    timeline.end_run(12.0)                # The tail after 11.5 is a pause.
    # total 12, startup 4, step 1 + 1 + 2, epoch_boundary 3 + 0.5,
    # recorder 0.5, fraction 4 / 12
    ```
    """

    def __init__(self, pause_between_epochs: bool = True) -> None:
        self._pause_between_epochs = pause_between_epochs
        self.begin_run(0.0)

    # Events, in the training thread's order. ------------------------------

    def begin_run(self, t: float) -> None:
        """A run starts at `t`: everything of the last one is forgotten."""
        self.run_begin = t
        # The end of the last batch call, or the start of steps: written by
        # the per-batch path; the watchdog's "last progress".
        self.last_end = t
        self.in_steps = False
        self.first_end: Optional[float] = None
        self._paused_since: Optional[float] = None
        self._never_ran = True
        self.excluded = 0.0  # Pauses and own work so far: t - excluded is training time.
        self._excluded_at_first_end = 0.0
        self._boundary = self._recorder = self._stalls = 0.0
        # The epoch's rate: where the current stretch of steps started and
        # the last one ended, in training time.
        self._stretch_start: Optional[float] = None
        self._stretch_step: Optional[int] = None
        self._stretch_end: Optional[float] = None
        self._ended = False

    def begin_steps(self, t: float) -> None:
        """Steps start at `t` (an epoch's first batch, a loop's start, the
        end of a `paused()` block). A pause open since then ends here."""
        if self.in_steps:
            return
        self.in_steps = True
        if self._paused_since is not None:
            paused = max(0.0, t - self._paused_since)
            self._paused_since = None
            self._boundary += paused
            self.excluded += paused
            self.last_end = t
        elif self._never_ran:
            self.last_end = t
        self._never_ran = False

    def first_step_end(self, t: float, step: int) -> None:
        """The run's first step ended at `t` with the global step at `step`:
        startup is over, and the first epoch's rate starts here."""
        if self.first_end is not None:
            return
        self.first_end = t
        self._excluded_at_first_end = self.excluded
        self._stretch_start = self.training_time(t)
        self._stretch_step = step

    def work(self, start: float, end: float, stalled: bool = False) -> None:
        """The counter's own work from `start` to `end` (right after a batch
        end, or before the first step). Left out of training time unless a
        stall spans it (`stalled`) or steps are paused (then it is pause
        time already)."""
        if stalled or self._paused_since is not None or end <= start:
            return
        self._recorder += end - start
        self.excluded += end - start
        self.last_end = end

    def stall(self, start: float, end: float) -> None:
        """No step ended from `start` (the last step end) to `end` (the
        step end that ended the stall). Only its part after the run's first
        step end counts (a stall is a wait between steps)."""
        start = max(start, self.first_end if self.first_end is not None else end)
        if end > start:
            self._stalls += end - start

    def pause(self, epoch_end: bool = True) -> bool:
        """Steps stop, from the end of the last batch: an epoch boundary
        (`epoch_end`, also where the epoch's rate ends) or a `paused()`
        block. Returns whether a pause began: not when steps are paused
        already, nor for an epoch boundary while those are steps."""
        if not self.in_steps:
            return False
        if epoch_end:
            self._stretch_end = self.training_time(self.last_end)
            if not self._pause_between_epochs:
                return False
        self.in_steps = False
        self._paused_since = self.last_end
        return True

    def end_run(self, t: float) -> Dict[str, float]:
        """The run ends at `t` (its tail after the last batch is a pause);
        returns the goodput ledger's scalars, once (then empty)."""
        if self._ended:
            return {}
        self._ended = True
        self.pause()
        if self._paused_since is not None:
            self._boundary += max(0.0, t - self._paused_since)
            self._paused_since = None
        return self._ledger(t - self.run_begin)

    # What the instruments read. -------------------------------------------

    def training_time(self, t: float) -> float:
        """`t` less the pauses and the counter's work so far."""
        return t - self.excluded

    def epoch_rate(self, step: Optional[int]) -> Optional[float]:
        """Mean steps per second of training time from where the last
        stretch of steps began (the run's first step end, else the last
        pause) to the pause just taken, where the global step is `step`.
        The next stretch starts there. None when there is nothing honest
        to divide."""
        start, start_step, end = self._stretch_start, self._stretch_step, self._stretch_end
        self._stretch_start, self._stretch_step = end, step
        if start is None or start_step is None or end is None or step is None:
            return None
        seconds = end - start
        if seconds <= 0 or step <= start_step:
            return None
        return (step - start_step) / seconds

    @property
    def paused(self) -> bool:
        return not self.in_steps

    @property
    def pauses_epochs(self) -> bool:
        """Epoch boundaries are pauses (`pause_between_epochs`)."""
        return self._pause_between_epochs

    def _ledger(self, total: float) -> Dict[str, float]:
        """Buckets that add up to `total`: every second of the run in one."""
        boundary, recorder = self._boundary, self._recorder
        if self.first_end is None:  # No step ever ended: nothing to tell apart.
            startup = boundary = stall = step = 0.0
            other = total - recorder
        else:
            startup = self.first_end - self.run_begin - self._excluded_at_first_end
            stall, other = self._stalls, 0.0
            step = total - startup - boundary - recorder - stall
        return {
            TOTAL_TAG: total,
            STARTUP_TAG: startup,
            STEP_TAG: step,
            EPOCH_BOUNDARY_TAG: boundary,
            STALL_TAG: stall,
            RECORDER_TAG: recorder,
            OTHER_TAG: other,
            # 0 rather than absent for an empty run: the tags stay one set.
            FRACTION_TAG: step / total if total > 0 else 0.0,
        }
