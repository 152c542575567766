"""`Instruments`: what a run measures beyond the rate, behind one interface.

Step-time percentiles, timed sections and the stall watchdog each hear
about the same few moments of a run (it begins, steps start and stop, a
record is taken, it ends), all read off the run's `Timeline`. The
`Recorder` tells `Instruments`, and `Instruments` tells each measurement
that is switched on. None of this runs on a quiet batch: only
`StepTimes.add`, which the recorder calls itself when step-time
statistics are on.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

from keras_stepcounter.core.sections import Sections
from keras_stepcounter.core.step_times import StepTimes
from keras_stepcounter.core.watchdog import StallWatchdog

Scalars = Dict[str, float]


class Instruments:
    """The opt-in measurements of one counter, across its runs.

    Args:
        clock: The recorder's monotonic clock.
        step_time_stats: Keep per-step times for `step_time/*` at records.
        goodput: Write the goodput ledger at each run's end.
        watchdog: Finds stalls (and warns of them, when `stall_secs` was
            given), or None.

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
        goodput: bool = False,
        watchdog: Optional[StallWatchdog] = None,
    ) -> None:
        self.step_times = StepTimes() if step_time_stats else None
        self.sections = Sections(clock)
        self.goodput = goodput
        self.watchdog = watchdog

    def run_begins(self, now: float) -> None:
        self.sections.clear(now)
        if self.step_times is not None:
            self.step_times.clear()

    def steps_resumed(self, now: float) -> None:
        self.sections.resume(now)

    def steps_paused(self, at: float) -> None:
        self.sections.pause(at)

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

    def stop(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
