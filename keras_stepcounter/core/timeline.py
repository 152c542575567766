"""`Timeline`: one run's record of when steps ran, in the counter's clock.

Every instrument (the rate, step times, time fractions, the epoch's
`steps_per_sec`, the goodput ledger, the watchdog) reads this one record
of a run's moments, so a second is the same kind of second for all:

    begin_run --startup-- first step end --steps-- last batch end
        --pause-- next first batch --steps-- ... last batch end --pause-- end_run

- Startup: to the end of the run's first step (tracing, compiling, the
  first batch). No rate covers it: its read is the rates' baseline.
- Steps: batch calls, each from the end of the one before to its end,
  reading the step included (the read waits for the device).
- A pause: from the last batch end before it to the next batch: an epoch
  boundary (validation, checkpoints, other callbacks' epoch work), a
  `paused()` block, the time between notebook cells, the run's tail. Left
  out of every instrument, booked as `epoch_boundary`. With
  `pause_between_epochs=False` epoch boundaries and the tail are steps.
- The counter's own work (writing a record) while in steps: out of
  training time, booked as `recorder`, however long.
- A stall: a gap between step ends of at least the stall threshold, after
  the first step end, decided by its length when it ends. Training time
  (it slows the rate); booked as `stall`, never as `step`.
- Input (`input_stats=True`): shorter waits for the next batch, booked as
  `input`, the measured share of the steps' time (`input_share`).

No two moments overlap (a gap starts where the last step, pause or work
ended), so every second lands in one bucket and none is negative.
Training time, `training_time(t)`, is the clock less the pauses and own
work before `t`, frozen while paused.
"""

from __future__ import annotations

from typing import Dict, Optional

from keras_stepcounter.core.tags import (
    EPOCH_BOUNDARY_TAG,
    FRACTION_TAG,
    INPUT_TAG,
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
        pause_between_epochs: Epoch boundaries (`pause(at, epoch_end=True)`)
            are pauses. When False they are steps, for every instrument.

    Example:

    ```python
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.begin_steps(0.0)
    timeline.first_step_end(4.0, step=1)  # Compiled; the first batch ended.
    timeline.work(5.0, 5.5)               # A record was written at 5.0.
    timeline.pause(at=6.5)                # Validation, after the batch at 6.5...
    timeline.epoch_rate(step=3)           # 2 steps in 2.0 s of training: 1.0
    timeline.begin_steps(9.5)             # ...took 3 s.
    timeline.end_run(12.0, last_end=11.5)  # The tail after 11.5 is a pause.
    # total 12, startup 4, step 1 + 1 + 2, epoch_boundary 3 + 0.5,
    # recorder 0.5, fraction 4 / 12
    ```
    """

    def __init__(self, pause_between_epochs: bool = True) -> None:
        self.pauses_epochs = pause_between_epochs
        self.begin_run(0.0)

    # Moments, in the training thread's order. -----------------------------

    def begin_run(self, t: float) -> None:
        """A run starts at `t`: everything of the last one is forgotten."""
        self.run_begin = t
        self.in_steps = False
        self.first_end: Optional[float] = None
        self.ended = False
        self._paused_since: Optional[float] = None
        # Pauses and own work so far (in steps, `t - excluded` is training
        # time), and of them the counter's own work.
        self.excluded = 0.0
        self._excluded_at_first_end = 0.0
        self._boundary = self.recorder_secs = self._stalls = 0.0
        # The share of step time spent waiting for input, where measured
        # (`input_stats=True`); None: no `input` bucket, never a made-up zero.
        self.input_share: Optional[float] = None
        # The epoch's rate: where the current stretch of steps started and
        # the last one ended, in training time.
        self._stretch_start: Optional[float] = None
        self._stretch_step: Optional[int] = None
        self._stretch_end: Optional[float] = None

    def begin_steps(self, t: float) -> None:
        """Steps start at `t` (an epoch's first batch, a loop's start, the
        end of a pause). The pause open since then ends here."""
        if self.in_steps:
            return
        self.in_steps = True
        since, self._paused_since = self._paused_since, None
        if since is None:  # The run's first steps: startup, not a pause.
            return
        paused = max(0.0, t - since)
        self._boundary += paused
        self.excluded += paused

    def first_step_end(self, t: float, step: int) -> None:
        """The run's first step ended at `t` with the global step at `step`:
        startup is over, and the first epoch's rate starts here."""
        if self.first_end is not None:
            return
        self.first_end = t
        self._excluded_at_first_end = self.excluded
        self._stretch_start = self.training_time(t)
        self._stretch_step = step

    def work(self, start: float, end: float) -> None:
        """The counter's own work from `start` to `end`, in steps or before
        the first step (while paused it is pause time already)."""
        if self._paused_since is None and end > start:
            self.recorder_secs += end - start
            self.excluded += end - start

    def stall(self, start: float, end: float) -> None:
        """No step ended from `start` to `end`, for at least the threshold."""
        if end > start:
            self._stalls += end - start

    def pause(self, at: float, epoch_end: bool = True) -> bool:
        """Steps stop from `at`, the end of the last batch: an epoch boundary
        (`epoch_end`, also where the epoch's rate ends) or a `paused()`
        block. Returns whether a pause began: not when steps are paused
        already, nor for an epoch boundary while those are steps."""
        if not self.in_steps:
            return False
        if epoch_end:
            self._stretch_end = self.training_time(at)
            if not self.pauses_epochs:
                return False
        self.in_steps = False
        self._paused_since = at
        return True

    def end_run(self, t: float, last_end: float) -> Dict[str, float]:
        """The run ends at `t` (its tail after `last_end`, the last batch
        end, is a pause); returns the goodput ledger's scalars, once (then
        empty)."""
        if self.ended:
            return {}
        self.ended = True
        self.pause(last_end)
        if self._paused_since is not None:
            self._boundary += max(0.0, t - self._paused_since)
        self._paused_since = None
        return self._ledger(t - self.run_begin)

    # What the instruments read. -------------------------------------------

    def training_time(self, t: float) -> float:
        """`t` less the pauses and the counter's work before it; while
        paused, the time the pause began at."""
        since = self._paused_since
        return (t if since is None or since > t else since) - self.excluded

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

    def _ledger(self, total: float) -> Dict[str, float]:
        """Buckets that add up to `total`: every second of the run in one."""
        boundary, recorder = self._boundary, self.recorder_secs
        if self.first_end is None:  # No step ever ended: nothing to tell apart.
            startup = boundary = stall = waited = step = 0.0
            other = total - recorder
        else:
            startup = self.first_end - self.run_begin - self._excluded_at_first_end
            stall, other = self._stalls, 0.0
            steps = total - startup - boundary - recorder - stall
            waited = steps * (self.input_share or 0.0)
            step = steps - waited
        ledger = {
            TOTAL_TAG: total,
            STARTUP_TAG: startup,
            STEP_TAG: step,
            INPUT_TAG: waited,
            EPOCH_BOUNDARY_TAG: boundary,
            STALL_TAG: stall,
            RECORDER_TAG: recorder,
            OTHER_TAG: other,
            # 0 rather than absent for an empty run: the tags stay one set.
            FRACTION_TAG: step / total if total > 0 else 0.0,
        }
        if self.input_share is None:  # Never a made-up zero.
            del ledger[INPUT_TAG]
        return ledger
