"""`Records`: what a counter writes once it has read the step.

The `Recorder` decides when to read the device counter; this decides what a
read leads to: a rate record (with the instruments' scalars beside it), the
first step's time, a stall's length, re-run steps, the goodput ledger. Every
write of a run goes through here, to one sink.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Protocol

from keras_stepcounter.core.instruments import Instruments
from keras_stepcounter.core.rates import TIME_TO_FIRST_STEP_TAG, RateTracker, ScalarSink


class RecordSink(ScalarSink, Protocol):
    """Where a run's records go (the sinks in `writer/`): writes, and a flush
    at the end of the run."""

    def flush(self) -> None: ...


class _NoSink:
    """Where a process that is not its job's writer sends its records."""

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        return True

    def flush(self) -> None:
        pass


class Records:
    """Turns reads of the global step into records.

    Args:
        rates: Trigger timer and formulas.
        sink: Where records go.
        instruments: The opt-in measurements (step times, stalls, ledger,
            sections) whose scalars go with the records.
        clock: Monotonic clock in seconds.
        time_to_first_step: Record the seconds from the run's start to the
            end of its first step, at that step.

    `writing` False (a process that is not its job's writer): every read
    and timing goes on, so the stall watchdog works, but nothing is
    written, and no rate or ledger line is logged.

    Example:

    ```python
    records = Records(rates, sink, Instruments(clock), clock)
    records.after_read(step, now)   # at each read of the step
    ```
    """

    def __init__(
        self,
        rates: RateTracker,
        sink: RecordSink,
        instruments: Instruments,
        clock: Callable[[], float],
        time_to_first_step: bool = False,
    ) -> None:
        self._rates, self._sink, self._writer_sink = rates, sink, sink
        self._instruments, self._clock = instruments, clock
        self._time_to_first_step = time_to_first_step
        self.typical_step_secs: Optional[float] = None

    @property
    def writing(self) -> bool:
        return self._sink is self._writer_sink

    @writing.setter
    def writing(self, writing: bool) -> None:
        self._sink = self._writer_sink if writing else _NoSink()

    def run_started(self, step: int, highest_recorded: Callable[[], Optional[int]]) -> None:
        """The run's first step was read: re-run steps, if any (the ledger
        only: `highest_recorded` reads the records already written)."""
        if not self.writing:
            return
        rerun = self._instruments.rerun(step, highest_recorded)
        if rerun:
            self._sink.write(step, rerun)

    def first_step_done(self, step: int, now: float, run_begin: float) -> None:
        """The run's first step ended at `now`."""
        self._instruments.first_step_done(now)
        if self._time_to_first_step:
            seconds = self._clock() - run_begin
            self._sink.write(step, {TIME_TO_FIRST_STEP_TAG: seconds})

    def after_read(self, step: int, now: float) -> None:
        """A read at the batch end `now` found `step`: a stall's end, a rate."""
        stall = self._instruments.stall_ended(now, step)
        if stall:
            self._sink.write(step, stall)
        baseline = self._rates.timer.last_triggered_step()
        interval = self._rates.interval(step)
        if interval is not None:
            elapsed_steps, elapsed_secs, _ = interval
            self.typical_step_secs = elapsed_secs / elapsed_steps
            scalars = self._rates.scalars(*interval)
            scalars.update(self._instruments.at_record(elapsed_secs, now))
            self._rates.record(self._sink, step, scalars, log=self.writing)
        if self._rates.timer.last_triggered_step() != baseline:
            self._instruments.interval_restarts(self._clock())

    def run_ended(self, last_step: Optional[int]) -> None:
        """The goodput ledger (if on) at the run's last step, then a flush."""
        if not self.writing:  # The writer logs the job's ledger.
            self._instruments.stop()
            return
        scalars = self._instruments.run_ends(self._clock(), None)
        if scalars and last_step is not None:
            self._sink.write(last_step, scalars)

    def flush(self) -> None:
        self._sink.flush()
