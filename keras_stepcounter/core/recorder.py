"""`Recorder`: the framework-free part of `StepCounter`, from batch ends to records.

The Keras callback maps Keras's hooks onto these calls and hands over a
step reader; everything else (when to read the device counter, what to
record, epoch pauses, the thread check, the opt-in instruments) is here,
in plain Python, driven by any clock.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional

from keras_stepcounter.core.instruments import Instruments
from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.records import Records, RecordSink
from keras_stepcounter.core.run_warnings import RunWarnings
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.schedule import ReadSchedule
from keras_stepcounter.core.step_reads import StepReads
from keras_stepcounter.core.stretches import StepStretches

class Recorder:
    """Turns batch ends into rate records, reading the device only when needed.

    A run is `begin_run`, then for each stretch of training steps (an
    epoch) `begin_steps`, `batch_end` per batch call, `pause_steps`; then
    `end_run`. Time between `pause_steps` and the next `begin_steps` is not
    training and is left out of the rates.

    Args:
        rates: Trigger timer and formulas.
        sink: Where records go.
        clock: Monotonic clock in seconds.
        count_fn: `count_fn(logs) -> number` of examples in a batch.
        time_to_first_step: Record, once per run, the seconds from
            `begin_run` to the end of the first step.
        pause_between_epochs: Leave the time from `pause_steps` to the
            next `begin_steps` out of the rates.
        step_time_stats, stall_secs, goodput: The opt-in instruments.

    Example:

    ```python
    recorder = Recorder(RateTracker(SecondOrStepTimer(every_steps=100)), sink,
                        time.perf_counter)
    recorder.begin_run(RunSource(read=lambda: step))
    recorder.begin_steps()
    for _ in range(1000):
        train_step(); step += 1
        recorder.batch_end()
    recorder.end_run()
    ```
    """

    def __init__(
        self,
        rates: RateTracker,
        sink: RecordSink,
        clock: Callable[[], float],
        *,
        count_fn: Optional[Callable[[Dict[str, Any]], float]] = None,
        time_to_first_step: bool = False,
        pause_between_epochs: bool = True,
        step_time_stats: bool = False,
        stall_secs: Any = None,
        goodput: bool = False,
    ) -> None:
        self._rates, self._clock = rates, clock
        self._count_fn = count_fn
        self._stretches = StepStretches(pause_between_epochs)
        self._schedule = ReadSchedule(rates.timer)
        self._warnings = RunWarnings(rates)
        self._reads = StepReads(self._warnings)
        self.instruments = Instruments(
            clock,
            step_time_stats=step_time_stats,
            stall_secs=stall_secs,
            goodput=goodput,
            progress=self._progress,
            last_step=lambda: self._last_read_step,
            typical_step_secs=lambda: self._records.typical_step_secs,
            force_read=self._force_read,
        )
        self._records = Records(rates, sink, self.instruments, clock, time_to_first_step)
        if self.instruments.step_times is not None:  # Chosen once, not per batch.
            self._add_step_time = self.instruments.step_times.add
            self.batch_end = self._timed_batch_end  # type: ignore[method-assign]
        self._batches_per_call = 1
        self._source = RunSource(read=lambda: 0)
        self._calls_until_read: float = 1
        self._deadline = -math.inf
        self._last_read_step: Optional[int] = None
        self._last_batch_end = self._step_start = 0.0
        self.stretch_rate: Optional[float] = None
        self._leave_run()

    # Run lifecycle. --------------------------------------------------------

    def begin_run(self, source: RunSource) -> None:
        """Starts a run; the first step is read at the first `begin_steps`."""
        self._rates.reset()
        self._source = source
        self._batches_per_call = source.batches_per_call
        self._schedule.steps_per_call = source.steps_per_call
        self._reads.start(source.read)
        self._run_begin = self._clock()
        self._run_start_step: Optional[int] = None
        self._last_read_step = None
        self._warnings.run_begins(source)
        self._calls_since_read = 0
        self._calls_until_read, self._deadline = ReadSchedule.FIRST_READ
        self._first_step_pending = True
        self._stretches.reset()
        self.instruments.run_begins(self._run_begin)

    def go_idle(self) -> None:
        """Records nothing until the next `begin_run` (a non-chief worker, or
        after a failure). Batch ends then cost what a quiet batch costs."""
        self._calls_since_read = 0
        self._calls_until_read, self._deadline = math.inf, math.inf
        self._stretches.running = False
        self.stretch_rate = None
        self.instruments.stop()

    def set_writing(self, writing: bool) -> None:
        """Whether this process writes and logs the records (after `begin_run`).

        Not the job's writer (a worker that is not the chief, a JAX process
        other than 0): nothing is written and no rate or ledger line is
        logged. With a stall watchdog the run still times every batch end,
        so each process warns of its own stalls; without one it goes idle.
        """
        self._records.writing = writing
        if not writing and self.instruments.watchdog is None:
            self.go_idle()

    @property
    def idle(self) -> bool:
        return self._calls_until_read == math.inf and self._deadline == math.inf

    def begin_steps(self) -> None:
        """Training steps start (an epoch's first batch, or a loop's start)."""
        if self._stretches.running or not self._reads.in_run or self.idle:  # Running: every batch.
            return
        if self._run_start_step is None and not self._read_run_start():
            return
        now = self._step_start = self._clock()
        paused = self._stretches.begin(now, self._last_read_step)
        if paused:
            self._rates.timer.exclude(paused)
            self._deadline = self._rates.timer.trigger_deadline()
        self.stretch_rate = None
        self.instruments.steps_resumed(now)

    def _read_run_start(self) -> bool:
        # The run's first step is read at its first batch, not in
        # `begin_run`: after every callback's on_train_begin
        # (BackupAndRestore restores the step there, in any list order).
        step = self._safe_read(first=True)
        if step is None:
            return False
        self._run_start_step = self._last_read_step = step
        self._warnings.started(step)
        self._records.run_started(step, self._source.highest_recorded)
        return True

    def pause_steps(self) -> None:
        """Training steps stop (validation or epoch end begins).

        Called at the first hook after an epoch's last batch, so the other
        callbacks' work on that batch stays in the interval. Sets
        `stretch_rate`, the mean rate since `begin_steps`.
        """
        if not self._stretches.running:
            return
        now = self._clock()
        self._stretches.pause(now)
        # The ledger's boundary starts where the last batch (and the
        # counter's own work on it) ended: what Keras does between the
        # loops (tracing the validation function, say) is not step time.
        self.instruments.steps_paused(max(self._last_batch_end, self._step_start))
        step = self._safe_read()
        if step is not None:
            self._note_read(step)
            self.stretch_rate = self._stretches.rate(step, now)

    def end_run(self) -> None:
        """Ends the run: the goodput ledger (if on), then a flush."""
        if self._reads.in_run and not self.idle:
            self.pause_steps()
            self._records.run_ended(self._last_read_step)
        self._records.flush()
        self._leave_run()

    def _leave_run(self) -> None:
        # Outside a run, the first batch end reads, and finds no reader.
        self.go_idle()
        self._reads.stop()
        self._calls_until_read, self._deadline = ReadSchedule.FIRST_READ

    # The batch path. -------------------------------------------------------

    def batch_end(self, batch: Any = None, logs: Optional[Dict[str, Any]] = None) -> None:
        """One batch call ended. The hot path: a compare unless a read is due."""
        now = self._last_batch_end = self._clock()
        if self._count_fn is not None:
            self._count_examples(logs)
        self._calls_since_read += 1
        if self._calls_since_read < self._calls_until_read and now < self._deadline:
            return
        self._read_and_maybe_record(now)

    def _timed_batch_end(self, batch: Any = None, logs: Optional[Dict[str, Any]] = None) -> None:
        """`batch_end` that also keeps the step's time (`step_time_stats`).

        The same lines as `batch_end` with two more, not a call to it: a
        second frame and clock read would double the per-batch cost.
        """
        now = self._last_batch_end = self._clock()
        self._add_step_time(now - self._step_start, self._batches_per_call)
        self._step_start = now
        if self._count_fn is not None:
            self._count_examples(logs)
        self._calls_since_read += 1
        if self._calls_since_read < self._calls_until_read and now < self._deadline:
            return
        self._read_and_maybe_record(now)

    def _read_and_maybe_record(self, now: float) -> None:
        step = self._safe_read()
        if step is None:
            return
        self._warnings.check_progress(step, self._last_read_step, self._calls_since_read)
        if self._first_step_pending:
            self._first_step_pending = False
            self._records.first_step_done(step, now, self._run_begin)
        self._records.after_read(step, now)
        self._note_read(step)
        work_end = self._step_start = self._clock()
        self.instruments.recorder_worked(work_end - now)

    def _note_read(self, step: int) -> None:
        self._warnings.calls_read(self._calls_since_read)
        self._calls_until_read, self._deadline = self._schedule.next_read(
            step, self._calls_since_read, self._last_read_step
        )
        self._last_read_step = step
        self._calls_since_read = 0

    def _safe_read(self, first: bool = False) -> Optional[int]:
        """The step, or None after which this run records nothing more."""
        step = self._reads.read(first)
        if step is None:
            self.go_idle()
        return step

    def _count_examples(self, logs: Optional[Dict[str, Any]]) -> None:
        assert self._count_fn is not None
        try:
            self._rates.add_examples(float(self._count_fn(logs or {})))
        except Exception as error:  # A counting bug must not stop training.
            self._warnings.count_fn_failed(error)

    # For the stall watchdog's thread: attribute reads only.

    def _progress(self) -> Optional[float]:
        stretches = self._stretches
        return max(self._last_batch_end, stretches.start) if stretches.running else None

    def _force_read(self) -> None:
        self._deadline = -math.inf

