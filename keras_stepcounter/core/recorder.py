"""`Recorder`: the framework-free part of `StepCounter`, from batch ends to records.

The Keras callback maps Keras's hooks onto these calls and hands over a
step reader; everything else (when to read the device counter, what to
record, the run's timeline, the thread check, the opt-in instruments) is
here, in plain Python, driven by any clock.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any, Callable, Dict, Optional

from keras_stepcounter.core.instruments import Instruments
from keras_stepcounter.core.ledger import RecordedSteps
from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.records import Records, RecordSink
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.run_warnings import RunWarnings
from keras_stepcounter.core.schedule import ReadSchedule
from keras_stepcounter.core.step_reads import StepReads
from keras_stepcounter.core.timeline import Timeline
from keras_stepcounter.core.watchdog import AUTO, StallSecs, StallWatchdog, run_anchor


class Recorder:
    """Turns batch ends into rate records, reading the device only when needed.

    A run is `begin_run`, then for each stretch of training steps (an
    epoch) `begin_steps`, `batch_end` per batch call, `pause_steps`; then
    `end_run`. Every instrument reads the run's one `Timeline`: a pause
    runs from the end of the last batch before it to the next
    `begin_steps`, and is left out of all of them.

    Args:
        rates: Trigger timer and formulas.
        sink: Where records go.
        clock: Monotonic clock in seconds.
        count_fn: `count_fn(logs) -> number` of examples in a batch.
        time_to_first_step: Record, once per run, the seconds from
            `begin_run` to the end of the first step.
        pause_between_epochs: Epoch boundaries are pauses (else steps, for
            every instrument alike).
        step_time_stats: Write `step_time/*` at each record.
        stall_secs: Stall threshold (seconds or `"auto"`) of a watchdog
            that warns, and writes `stall_secs`; None: no warnings.
        goodput: Write the goodput ledger at each run's end (stalls are
            found for it with the `"auto"` threshold when `stall_secs` is
            None, without warnings).
        recorded: The highest step recorded where `sink` writes, for
            `goodput/rerun_steps`.

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
        stall_secs: Optional[StallSecs] = None,
        goodput: bool = False,
        recorded: Optional[RecordedSteps] = None,
    ) -> None:
        self._rates, self._clock = rates, clock
        self._count_fn = count_fn
        self._timeline = Timeline(pause_between_epochs)
        self._schedule = ReadSchedule(rates.timer)
        self._warnings = RunWarnings(rates)
        self._reads = StepReads(self._warnings)
        watchdog = self._make_watchdog(stall_secs, goodput)
        self.instruments = Instruments(
            clock, step_time_stats=step_time_stats, goodput=goodput, watchdog=watchdog
        )
        self._watchdog = watchdog
        self._records = Records(
            rates,
            sink,
            self.instruments,
            time_to_first_step=time_to_first_step,
            recorded=recorded if goodput else None,
            stall_scalars=stall_secs is not None,
        )
        if self.instruments.step_times is not None:  # Chosen once, not per batch.
            self._add_step_time = self.instruments.step_times.add
            self.batch_end = self._timed_batch_end  # type: ignore[method-assign]
        self._batches_per_call = 1
        self._source = RunSource(read=lambda: 0)
        self._last_read_step: Optional[int] = None
        self._calls_since_read = 0
        self._calls_until_read: float = 1
        self._deadline = self._training_deadline = -math.inf
        self.stretch_rate: Optional[float] = None
        self._leave_run()

    def _make_watchdog(
        self, stall_secs: Optional[StallSecs], goodput: bool
    ) -> Optional[StallWatchdog]:
        if stall_secs is None and not goodput:
            return None
        return StallWatchdog(
            AUTO if stall_secs is None else stall_secs,
            progress=self._progress,
            step_text=self._step_text,
            typical_step_secs=lambda: self._records.typical_step_secs,
            on_stall=self._read_at_next_batch,
            clock=self._clock,
            warn=stall_secs is not None,
        )

    # Run lifecycle. --------------------------------------------------------

    def begin_run(self, source: RunSource) -> None:
        """Starts a run; the first step is read at the first `begin_steps`."""
        self.instruments.stop()  # A watch left by a run that raised.
        self._rates.reset()
        self._rates.batches_per_step = source.calls_per_update
        self._source = source
        self._batches_per_call = source.batches_per_call
        self._schedule.steps_per_call = source.steps_per_call
        self._reads.start(source.read)
        now = self._clock()
        self._timeline.begin_run(now)
        self._run_start_step: Optional[int] = None
        self._last_read_step = None
        self._warnings.run_begins(source)
        self._calls_since_read = 0
        self._calls_until_read, self._deadline = ReadSchedule.FIRST_READ
        self._training_deadline = -math.inf
        self._first_step_pending = True
        self._calls_before_first_step = 0
        self._epoch_calls_read = 0
        self._idle = False
        self._steps_running = False
        self.stretch_rate = None
        self.instruments.run_begins(now)

    def go_idle(self) -> None:
        """Records nothing until the next `begin_run` (a non-chief worker, or
        after a failure). Batch ends then cost what a quiet batch costs."""
        self._idle = True
        self._steps_running = False
        self._calls_since_read = 0
        self._calls_until_read, self._deadline = math.inf, math.inf
        self.stretch_rate = None
        self.instruments.stop()

    def set_writing(self, writing: bool, process: Optional[str] = None) -> None:
        """Whether this process writes and logs the records (after
        `begin_run`), and its name in a job of several (`process`).

        Not the job's writer (a worker that is not the chief, a JAX process
        other than 0): nothing is written and no rate or ledger line is
        logged. With a stall watchdog the run still times every batch end,
        so each process warns of its own stalls; without one it goes idle.
        """
        self._records.writing = writing
        if self._watchdog is not None:
            self._watchdog.process = process
        if not writing and (self._watchdog is None or not self._watchdog.warns):
            self.go_idle()

    @property
    def idle(self) -> bool:
        return self._idle

    def begin_steps(self) -> None:
        """Training steps start (an epoch's first batch, or a loop's start)."""
        if self._steps_running or not self._reads.in_run or self._idle:  # Every batch.
            return
        if self._run_start_step is None and not self._read_run_start():
            return
        self._steps_running = True
        now = self._clock()
        self._timeline.begin_steps(now)
        self.stretch_rate = None
        self.instruments.steps_resumed(now)
        self._arm_deadline()

    def _read_run_start(self) -> bool:
        # The run's first step is read at its first batch, not in
        # `begin_run`: after every callback's on_train_begin
        # (BackupAndRestore restores the step there, in any list order).
        step = self._safe_read(first=True)
        if step is None:
            return False
        self._run_start_step = self._last_read_step = step
        self._warnings.started(step)
        started = self._clock()
        self._records.run_started(step)
        self._timeline.work(started, self._clock())
        return True

    def pause_steps(self, epoch_end: bool = True) -> bool:
        """Training steps stop, from the end of the last batch.

        An epoch boundary (`epoch_end`, the first hook after an epoch's last
        batch: validation or epoch end) reads the step and sets
        `stretch_rate`, the epoch's mean rate; a `paused()` block
        (`epoch_end=False`) reads nothing. Returns whether steps were
        running (and now stop).
        """
        timeline = self._timeline
        if not self._steps_running or self._idle:
            return False
        self._steps_running = False
        if timeline.pause(epoch_end):
            self.instruments.steps_paused(timeline.last_end)
            self._end_stall_at_pause()
        if epoch_end:
            self._read_at_epoch_end()
            self._epoch_calls_read = 0
        return True

    def _read_at_epoch_end(self) -> None:
        started = self._clock()
        step = self._safe_read()
        if step is not None:
            self._reweigh_a_short_last_call(step)
            self._note_read(step)
            self.stretch_rate = self._timeline.epoch_rate(step)
            self._timeline.work(started, self._clock())  # Only while epochs are steps.
            self._arm_deadline()

    def end_run(self) -> None:
        """Ends the run: the goodput ledger (if on), then a flush."""
        if self._reads.in_run and not self._idle:
            self.pause_steps()
            ledger = self._timeline.end_run(self._clock())
            self.instruments.stop()
            self._records.run_ended(self._last_read_step, ledger)
        self._records.flush()
        self._leave_run()

    def _leave_run(self) -> None:
        # Outside a run, the first batch end reads, and finds no reader.
        self.go_idle()
        self._reads.stop()
        self._idle = False
        self._calls_until_read, self._deadline = ReadSchedule.FIRST_READ

    # The batch path. -------------------------------------------------------

    def batch_end(self, batch: Any = None, logs: Optional[Dict[str, Any]] = None) -> None:
        """One batch call ended. The hot path: a compare unless a read is due."""
        now = self._timeline.last_end = self._clock()
        if self._count_fn is not None:
            self._count_examples(logs)
        self._calls_since_read += 1
        if self._calls_since_read < self._calls_until_read and now < self._deadline:
            return
        self._read_and_maybe_record(now)

    def _timed_batch_end(self, batch: Any = None, logs: Optional[Dict[str, Any]] = None) -> None:
        """`batch_end` that also keeps the step's time (`step_time_stats`).

        The same lines as `batch_end` with one more, not a call to it: a
        second frame and clock read would double the per-batch cost.
        """
        timeline = self._timeline
        now = self._clock()
        self._add_step_time(now - timeline.last_end, self._batches_per_call)
        timeline.last_end = now
        if self._count_fn is not None:
            self._count_examples(logs)
        self._calls_since_read += 1
        if self._calls_since_read < self._calls_until_read and now < self._deadline:
            return
        self._read_and_maybe_record(now)

    def _read_and_maybe_record(self, now: float) -> None:
        if self._idle:  # A late request from the watchdog thread.
            self._calls_until_read, self._deadline = math.inf, math.inf
            return
        step = self._safe_read()
        if step is None:
            return
        self._warnings.check_progress(step, self._last_read_step, self._calls_since_read)
        timeline = self._timeline
        self._end_stall(now, step)
        if self._first_step_pending:
            if self._first_update_pending(step):
                self._note_read(step)
                self._calls_until_read = 1  # Read again at the next batch end.
                timeline.work(now, self._clock())
                self._arm_deadline()
                return
            self._first_step_done(now, step)
        self._reweigh_a_short_last_call(step)
        restarts = self._records.after_read(step, timeline.training_time(now), now)
        self._note_read(step)
        stalled = self._watchdog is not None and self._watchdog.pending
        timeline.work(now, self._clock(), stalled)
        if restarts:
            self.instruments.interval_restarts(timeline.last_end)
        self._arm_deadline()

    def _first_update_pending(self, step: int) -> bool:
        """Whether the run's first step has yet to end: with gradient
        accumulation, the first batch calls only accumulate, and the step
        is the first applied update (so the startup, and no rate, holds
        them)."""
        self._calls_before_first_step += self._calls_since_read
        return (
            step == self._run_start_step
            and self._calls_before_first_step < self._source.calls_per_update
        )

    def _first_step_done(self, now: float, step: int) -> None:
        self._first_step_pending = False
        self._timeline.first_step_end(now, step)
        self._records.first_step_done(step, now - self._timeline.run_begin)
        if self._watchdog is not None:
            # The frame running the loop that called us (`fit`, a custom
            # loop's function): the watchdog's sign that the run is still on
            # (Keras skips on_train_end when fit raises). Found here, not
            # kept: holding it longer would keep fit's data alive after it
            # raised. sys._getframe is CPython's and PyPy's way to get it;
            # nothing public gives a caller's frame.
            self._watchdog.start(threading.get_ident(), run_anchor(sys._getframe(1)))

    def _end_stall(self, now: float, step: int) -> None:
        """Books a stall the watchdog found, if this batch end ended it."""
        if self._watchdog is None:
            return
        start = self._watchdog.take_stall(now)
        if start is None:
            return
        self._timeline.stall(start, now)
        self._records.stall_ended(step, now - start)
        self._watchdog.log_resumed(now - start, step)

    def _end_stall_at_pause(self) -> None:
        # The wait ran into a pause, which starts at the last step end: by
        # the timeline's rule it is pause time, not a stall.
        if self._watchdog is None:
            return
        start = self._watchdog.cancel_stall()
        if start is not None:
            self._watchdog.log_stall_at_pause(self._clock() - start)

    def _reweigh_a_short_last_call(self, step: int) -> None:
        """With `steps_per_execution=k`, an epoch's last call can cover fewer
        than k steps (Keras gives no sign of it at its batch end); the step
        read says how many, and `step_time/*` weighs that call by them."""
        times, previous = self.instruments.step_times, self._last_read_step
        if times is None or previous is None or self._source.calls_per_update != 1:
            return
        last = step - previous - (self._calls_since_read - 1) * self._batches_per_call
        if 0 < last < self._batches_per_call:
            times.reweigh_last(last)

    def _note_read(self, step: int) -> None:
        self._epoch_calls_read += self._calls_since_read
        self._warnings.calls_read(self._calls_since_read)
        self._calls_until_read, self._training_deadline = self._schedule.next_read(
            step, self._calls_since_read, self._last_read_step
        )
        self._last_read_step = step
        self._calls_since_read = 0

    def _arm_deadline(self) -> None:
        """The clock time of the next timed read: the timer's deadline is in
        training time, which runs `excluded` seconds behind the clock."""
        self._deadline = self._training_deadline + self._timeline.excluded
        # After the store: a request the watchdog thread made meanwhile is
        # kept (it sets -inf only after marking the stall pending).
        if self._watchdog is not None and self._watchdog.pending:
            self._deadline = -math.inf

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

    # For the watchdog's thread: attribute reads and one store.

    def _read_at_next_batch(self) -> None:
        self._deadline = -math.inf

    def _progress(self) -> Optional[float]:
        """Since when a step end is awaited; None while none is: steps
        paused, or the epoch's last batch over (what follows until the
        counter's next hook is an epoch boundary, by the timeline's rule)."""
        timeline = self._timeline
        if timeline.paused:
            return None
        epoch_batches = self._source.batches_per_epoch
        if epoch_batches is not None and timeline.pauses_epochs:
            calls = self._epoch_calls_read + self._calls_since_read
            if calls * self._batches_per_call >= epoch_batches:
                return None
        return timeline.last_end

    def _step_text(self) -> str:
        """The global step training is at, for the stall warning: the last
        read plus the updates of the batch calls since (an estimate)."""
        step, calls = self._last_read_step, self._calls_since_read
        if step is None:
            return "the global step is not read yet"
        if calls <= 0:
            return f"training is at global step {step}"
        updates = calls * self._batches_per_call // max(1, self._source.calls_per_update)
        return (
            f"training is at global step about {step + updates} (step {step} "
            f"read, and {calls} batch call{'s' if calls != 1 else ''} since)"
        )
