"""`Records`: what a counter writes once it has read the step.

The `Recorder` decides when to read the device counter; this decides what a
read leads to: a rate record (with the instruments' scalars beside it), the
first step's time, a stall's length, re-run steps, the goodput ledger.
Every write of a run goes through here, to one sink.
"""

from __future__ import annotations

from typing import Dict, Optional, Protocol

from keras_stepcounter.core.instruments import Instruments
from keras_stepcounter.core.ledger import RecordedSteps, summary_line
from keras_stepcounter.core.ledger_table import ledger_table
from keras_stepcounter.core.rates import RateTracker, ScalarSink, tf_logger
from keras_stepcounter.core.tags import (
    LEDGER_TEXT_TAG,
    RERUN_STEPS_TAG,
    STALL_SECS_TAG,
    TIME_TO_FIRST_STEP_TAG,
)


class RecordSink(ScalarSink, Protocol):
    """Where a run's records go (the sinks in `writer/`): writes, a Markdown
    text (the ledger's table), and a flush at the end of the run."""

    def write_text(self, step: int, tag: str, markdown: str) -> bool: ...

    def flush(self) -> None: ...


class Records:
    """Turns reads of the global step into records.

    Args:
        rates: Trigger timer and formulas.
        sink: Where records go.
        instruments: The opt-in measurements (step times, sections, the
            watchdog) whose scalars go with the records.
        time_to_first_step: Record the seconds from the run's start to the
            end of its first step, at that step.
        recorded: The highest step recorded where the sink writes, for
            `goodput/rerun_steps` (with the ledger only).
        stall_scalars: Write `stall_secs` when a stall ends (the watchdog
            was asked for, not only the ledger).

    `writing` False (a process that is not its job's writer): every read
    and timing goes on, so the stall watchdog works, but nothing is
    written, and no rate or ledger line is logged.

    Example:

    ```python
    records = Records(rates, sink, Instruments(clock))
    records.after_read(step, training_now, now)   # at each read of the step
    ```
    """

    def __init__(
        self,
        rates: RateTracker,
        sink: RecordSink,
        instruments: Instruments,
        *,
        time_to_first_step: bool = False,
        recorded: Optional[RecordedSteps] = None,
        stall_scalars: bool = False,
    ) -> None:
        self._rates, self._sink = rates, sink
        self._instruments = instruments
        self._time_to_first_step = time_to_first_step
        self._recorded = recorded
        self._stall_scalars = stall_scalars
        self.typical_step_secs: Optional[float] = None
        self.writing = True

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes `scalars` at `step` (every record of a run comes here)."""
        if not self.writing:
            return True
        if self._recorded is not None:
            self._recorded.wrote(step)
        return self._sink.write(step, scalars)

    def run_started(self, step: int) -> None:
        """The run's first step was read: re-run steps, if any."""
        if self._recorded is None or not self.writing:
            return
        rerun = self._recorded.rerun_steps(step)
        if rerun is None:
            return
        tf_logger.info(
            "goodput: this fit starts at step %d, below step %d already recorded: "
            "%d steps are computed again.", step, step + rerun, rerun,
        )
        self.write(step, {RERUN_STEPS_TAG: float(rerun)})

    def first_step_done(self, step: int, seconds: float) -> None:
        """The run's first step ended `seconds` after the run began."""
        if self._time_to_first_step:
            self.write(step, {TIME_TO_FIRST_STEP_TAG: seconds})

    def stall_ended(self, step: int, seconds: float) -> None:
        """Training resumed at `step` after `seconds` without a step."""
        if self._stall_scalars:
            self.write(step, {STALL_SECS_TAG: seconds})

    def after_read(self, step: int, training_now: float, now: float) -> bool:
        """A read at the batch end `now` (`training_now` in training time)
        found `step`: a rate record when one is due. Returns whether the
        interval restarts here (a record, or the run's baseline)."""

        def record_rate(
            step: int, elapsed_steps: int, elapsed_secs: float, examples: float
        ) -> None:
            self.typical_step_secs = elapsed_secs / elapsed_steps
            scalars = self._rates.scalars(elapsed_steps, elapsed_secs, examples)
            scalars.update(self._instruments.at_record(elapsed_secs, now))
            self._rates.record(self, step, scalars, log=self.writing)

        return self._rates.record_if_due(step, record_rate, training_now)

    def run_ended(self, last_step: Optional[int], ledger: Dict[str, float]) -> None:
        """The goodput ledger (if on) at the run's last step: its scalars,
        its Markdown table (TensorBoard's Text tab) and one log line."""
        if not self._instruments.goodput or not ledger or last_step is None:
            return
        if not self.writing:  # The writer logs the job's ledger.
            return
        tf_logger.info("%s", summary_line(ledger))
        self.write(last_step, ledger)
        self._sink.write_text(last_step, LEDGER_TEXT_TAG, ledger_table(ledger))

    def flush(self) -> None:
        self._sink.flush()
