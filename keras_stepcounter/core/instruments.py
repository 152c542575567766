"""`Instruments`: what a run measures beyond the rate, behind one interface.

Step-time percentiles, the stall watchdog, the goodput ledger and timed
sections each hear about the same few moments of a run (it begins, steps
start and stop, a record is taken, the recorder works, it ends). The
`Recorder` tells `Instruments` about them, and `Instruments` tells each
measurement that is switched on. None of this runs on a quiet batch:
only `StepTimes.add`, which the recorder calls itself when step-time
statistics are on.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional

from keras_stepcounter.core.ledger import RERUN_STEPS_TAG, GoodputLedger, rerun_steps, summary_line
from keras_stepcounter.core.rates import tf_logger
from keras_stepcounter.core.sections import Sections
from keras_stepcounter.core.step_times import StepTimes
from keras_stepcounter.core.watchdog import STALL_SECS_TAG, StallSecs, StallWatchdog

Scalars = Dict[str, float]


class Instruments:
    """The opt-in measurements of one counter, across its runs.

    Args:
        clock: The recorder's monotonic clock.
        step_time_stats: Keep per-step times for `step_time/*` at records.
        stall_secs: Stall threshold in seconds, `"auto"`, or None (off).
        goodput: Keep the goodput ledger, written at each run's end.
        progress: For the watchdog: the clock time since which a step end
            is awaited, or None while steps are paused. Called from the
            watchdog thread.
        last_step: For the watchdog's messages: the last step read.
        typical_step_secs: For `stall_secs="auto"`.
        force_read: Makes the next batch end read the step (after a stall).

    Example:

    ```python
    instruments = Instruments(time.perf_counter, step_time_stats=True)
    instruments.at_record(interval_secs=2.0, now=now)  # {"step_time/p50": ...}
    ```
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        step_time_stats: bool = False,
        stall_secs: Optional[StallSecs] = None,
        goodput: bool = False,
        progress: Callable[[], Optional[float]] = lambda: None,
        last_step: Callable[[], Optional[int]] = lambda: None,
        typical_step_secs: Callable[[], Optional[float]] = lambda: None,
        force_read: Callable[[], None] = lambda: None,
    ) -> None:
        self.step_times = StepTimes() if step_time_stats else None
        self.sections = Sections(clock)
        self.ledger = GoodputLedger() if goodput else None
        self.watchdog = (
            None
            if stall_secs is None
            else StallWatchdog(
                stall_secs,
                last_progress=progress,
                last_step=last_step,
                typical_step_secs=typical_step_secs,
                on_stall=force_read,
                clock=clock,
            )
        )

    def run_begins(self, now: float) -> None:
        if self.ledger is not None:
            self.ledger.train_begin(now)
        self.sections.clear(now)
        if self.step_times is not None:
            self.step_times.clear()

    def rerun(
        self, start_step: int, highest_recorded: Callable[[], Optional[int]]
    ) -> Scalars:
        """`goodput/rerun_steps` when a run starts below a recorded step.

        With the ledger only: `highest_recorded` reads the records already
        written (once a run).
        """
        if self.ledger is None:
            return {}
        highest = highest_recorded()
        steps = rerun_steps(start_step, highest)
        if steps is None:
            return {}
        tf_logger.info(
            "goodput: this fit starts at step %d, below step %d already recorded: "
            "%d steps are computed again.", start_step, highest, steps,
        )
        return {RERUN_STEPS_TAG: float(steps)}

    def first_step_done(self, now: float) -> None:
        if self.ledger is not None:
            self.ledger.first_step_end(now)
        if self.watchdog is not None:
            self.watchdog.start(threading.get_ident())

    def steps_resumed(self, now: float) -> None:
        if self.ledger is not None:
            self.ledger.steps_resumed(now)
        self.sections.resume(now)

    def steps_paused(self, now: float) -> None:
        if self.ledger is not None:
            self.ledger.steps_paused(now)
        self.sections.pause(now)

    def stall_ended(self, now: float, step: int) -> Scalars:
        """`stall_secs` at the step where training resumed after a stall."""
        if self.watchdog is None:
            return {}
        seconds = self.watchdog.end_stall(now, step)
        return {} if seconds is None else {STALL_SECS_TAG: seconds}

    def at_record(self, interval_secs: float, now: float) -> Scalars:
        """The scalars that go with a rate record over `interval_secs`."""
        scalars: Scalars = {}
        if self.step_times is not None:
            scalars.update(self.step_times.summary() or {})
        scalars.update(self.sections.fractions(interval_secs, now))
        return scalars

    def interval_restarts(self, now: float) -> None:
        """A new record interval starts at `now` (after a record or a baseline)."""
        if self.step_times is not None:
            self.step_times.clear()
        self.sections.clear(now)

    def recorder_worked(self, seconds: float) -> None:
        if self.ledger is not None:
            self.ledger.recorder_work(seconds)

    def run_ends(self, now: float, last_batch_end: Optional[float]) -> Scalars:
        """Stops the watchdog; the ledger's scalars (logged in one line)."""
        self.stop()
        if self.ledger is None:
            return {}
        scalars = self.ledger.train_end(now, last_batch_end=last_batch_end)
        if scalars:
            tf_logger.info("%s", summary_line(scalars))
        return scalars

    def stop(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
