"""`Recorder`: the framework-free part of `StepCounter`, from hook calls to records.

The adapters (the Keras callback, `track()`) map their hooks onto a run's
calls: `begin_run`, `begin_steps`, `batch_end`, `pause_steps`, `end_run`.
The recorder owns the run and asks one object per job: `ReadSchedule`
(when to read the step), `RateTracker` (v1's trigger rules and the
rates), `Timeline` (where each second went: the clock every instrument
reads, and the ledger), `StepTimes` (`step_time/*`), `Sections`
(`time_frac/*`), `InputShare` (`input_stats=True`), `StallWatchdog` (warns
while no step ends) and the sink (`writer/`).

A record's path: `batch_end` -> `_at_read` (reads the step, applies the
trigger rules, builds the scalars) -> `_write` -> the sink's `write`.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any, Callable, Dict, Optional, Protocol, Tuple

from keras_stepcounter.core import notebook
from keras_stepcounter.core.input_share import InputMeter, InputShare
from keras_stepcounter.core.ledger_table import ledger_table, summary_line
from keras_stepcounter.core.rates import RateTracker, ScalarSink, log_rate, tf_logger
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.run_warnings import RunWarnings
from keras_stepcounter.core.schedule import ReadSchedule
from keras_stepcounter.core.sections import Sections
from keras_stepcounter.core.step_times import StepTimes
from keras_stepcounter.core.tags import (
    BASELINE_STEP_TAG,
    INPUT_FRAC_TAG,
    LEDGER_TEXT_TAG,
    RERUN_STEPS_TAG,
    STALL_SECS_TAG,
    TIME_TO_FIRST_STEP_TAG,
)
from keras_stepcounter.core.timeline import Timeline
from keras_stepcounter.core.watchdog import (
    AUTO,
    StallSecs,
    StallWatchdog,
    fit_frame,
    stall_threshold,
)

OUTSIDE_A_RUN = (
    "step_done() was called outside a run: call it inside "
    "`with counter.track():` (or drive the counter through a "
    "keras.callbacks.CallbackList, starting with on_train_begin)."
)
# The counter's own work above this share of training time is warned
# about, once per counter: a slow disk, or records taken too often.
OWN_WORK_WARN_SHARE = 0.05
OWN_WORK_WARNING = (
    "keras_stepcounter: writing records took %.1f%% of training time so far "
    "(%.2f s of %.1f s%s). It is left out of the rates, which then overstate "
    "what the job gets: record less often (every_n_steps), or write to a "
    "faster disk."
)


# Batch calls between reads, at most, when something is kept per call.
KEPT_CALLS = 2048


class RecordSink(ScalarSink, Protocol):
    """Where a run's records go (the sinks in `writer/`)."""

    def write_text(self, step: int, tag: str, markdown: str) -> bool: ...

    def begin_run(self, start_step: int) -> Optional[int]: ...

    def reached(self, step: int) -> None: ...

    def flush(self) -> None: ...


class Recorder:
    """Turns a run's hook calls into records, reading the device only when
    needed.

    A run is `begin_run`, then per stretch of steps (an epoch)
    `begin_steps`, `batch_end` per batch call, `pause_steps`; then
    `end_run`. A pause runs from the last batch end before it to the next
    `begin_steps`; every instrument leaves it out.

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
            None, without warnings) and `goodput/rerun_steps`.
        input_meter: Measures the input wait (`input_stats=True`), or None.
        where: Where records go, in words, for the slow-writes warning.

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
        input_meter: Optional[InputMeter] = None,
        where: str = "",
    ) -> None:
        self._rates, self._sink, self._clock = rates, sink, clock
        self._count_fn = count_fn
        self._time_to_first_step = time_to_first_step
        self._goodput = goodput
        self._input = None if input_meter is None else InputShare(input_meter)
        self._where = where
        self._timeline = Timeline(pause_between_epochs)
        self._warnings = RunWarnings(rates)
        self.step_times = StepTimes(KEPT_CALLS) if step_time_stats else None
        # Step times and input waits are kept per call: reading at least
        # every `KEPT_CALLS` calls bounds them between far-apart records.
        kept = self.step_times is not None or self._input is not None
        self._schedule = ReadSchedule(rates.timer, max_calls=KEPT_CALLS if kept else math.inf)
        # A quiet call's seconds go straight into `step_times.calls` (set
        # while a run is recording, None otherwise).
        self._add_step_secs: Optional[Callable[[float], None]] = None
        self.sections = Sections(self.training_now)
        # A gap of at least the threshold is a stall: `stall_secs`, else
        # (the ledger alone) the "auto" rule. Only `stall_secs` warns.
        self._stall_setting: Optional[StallSecs] = (
            stall_secs if stall_secs is not None else AUTO if goodput else None
        )
        self._watchdog = None if stall_secs is None else StallWatchdog(
            stall_secs,
            progress=self._progress,
            step_text=self._step_text,
            typical_step_secs=lambda: self.typical_step_secs,
            clock=clock,
        )
        self.writing = True
        self.typical_step_secs: Optional[float] = None
        self.stretch_rate: Optional[float] = None
        self._own_work_warned = False
        self._cells: Optional[Callable[[], None]] = None
        self._source = RunSource(read=lambda: 0)
        self._read: Optional[Callable[[], int]] = None
        self._thread: Optional[int] = None
        self._last_end = 0.0
        self._batches_per_call = 1
        self._calls_until_read: float = 1
        self._leave_run()

    # Run lifecycle. --------------------------------------------------------

    def begin_run(self, source: RunSource) -> None:
        """Starts a run on this thread; the first step is read at the first
        `begin_steps`. A run left open (its `fit` raised) ends first, at its
        last step end."""
        self.close_run()
        self._rates.reset()
        self._rates.batches_per_step = source.calls_per_update
        self._source = source
        self._batches_per_call = source.batches_per_call
        self._schedule.steps_per_call = source.steps_per_call
        self._read, self._thread = source.read, threading.get_ident()
        now = self._last_end = self._clock()
        self._timeline.begin_run(now)
        self._run_start_step: Optional[int] = None
        self._last_read_step: Optional[int] = None
        self._warnings.run_begins(source)
        self._calls_since_read = self._epoch_calls_read = 0
        self._stall_after = math.inf  # No stall before the first step end.
        self._calls_until_read, self._deadline = ReadSchedule.FIRST_READ
        self._training_deadline = -math.inf
        self._first_step_pending = True
        self._calls_before_first_step = 0
        self._idle = self._steps_running = False
        self._short_call_seen = False
        self._interval_training_start = 0.0  # In training time.
        if self._input is not None:
            self._input.begin_run(now)
        self.stretch_rate = None
        self.typical_step_secs = None
        self.sections.clear(self.training_now())
        if self.step_times is not None:
            self.step_times.clear()
            # A call's weight in `step_time/*`: the steps it covers.
            self.step_times.steps_per_call = source.steps_per_call
            self._add_step_secs = self.step_times.calls.append
        # sys._getframe: CPython's and PyPy's way to reach the caller's
        # frames; nothing public gives them. The frame of the `fit` call
        # that started this run, if one did: the watchdog ends when it is
        # gone (Keras skips on_train_end when fit raises). Not kept here: it
        # would hold fit's data after it raised.
        fit = fit_frame(sys._getframe(1))
        if self._watchdog is not None:
            self._watchdog.start(self._thread, fit)
        if fit is None:  # A loop of the user's can go on in the next cell.
            self._cells = notebook.pause_between_cells(
                lambda: self.pause_steps(epoch_end=False), self.begin_steps
            )
        del fit

    def set_writing(self, writing: bool, process: Optional[str] = None) -> None:
        """Whether this process writes and logs the records (after
        `begin_run`), and its name in a job of several (`process`). A
        process that does not write still warns of its own stalls, if it
        has a watchdog; without one it goes idle."""
        self.writing = writing
        if self._watchdog is not None:
            self._watchdog.process = process
        if not writing and self._watchdog is None:
            self.go_idle()

    def go_idle(self) -> None:
        """Records nothing until the next `begin_run` (a non-chief worker, or
        after a failure). Batch ends then cost what a quiet batch costs."""
        self._idle = True
        self._steps_running = False
        self._add_step_secs = None
        self._calls_since_read = 0
        self._calls_until_read, self._deadline = math.inf, math.inf
        self._stall_after = math.inf
        self.stretch_rate = None
        if self._watchdog is not None:
            self._watchdog.stop()

    @property
    def idle(self) -> bool:
        return self._idle

    def begin_steps(self) -> None:
        """Training steps start (an epoch's first batch, or a loop's start)."""
        if self._steps_running or self._read is None or self._idle:  # Every batch.
            return
        if self._run_start_step is None and not self._read_run_start():
            return
        self._steps_running = True
        now = self._clock()
        if not self._timeline.in_steps:  # Else an epoch boundary that is steps.
            self._last_end = now
        self._timeline.begin_steps(now)
        self.stretch_rate = None
        self._arm_deadline()

    def _read_run_start(self) -> bool:
        # The run's first step is read at its first batch, not in
        # `begin_run`: after every callback's on_train_begin
        # (BackupAndRestore restores the step there, in any list order).
        step = self._read_step(first=True)
        if step is None:
            return False
        self._run_start_step = self._last_read_step = step
        self._warnings.started(step)
        if self.writing:  # Only the writer keeps the directory's lineage.
            started = self._clock()
            rerun = self._sink.begin_run(step)
            if rerun is not None and self._goodput:
                tf_logger.info(
                    "goodput: this fit starts at step %d, below step %d that the run "
                    "it resumes reached: %d steps are computed again.",
                    step, step + rerun, rerun,
                )
                self._sink.write(step, {RERUN_STEPS_TAG: float(rerun)})
            self._timeline.work(started, self._clock())
        return True

    def pause_steps(self, epoch_end: bool = True) -> bool:
        """Training steps stop, from the end of the last batch; returns
        whether they were running. An epoch boundary (`epoch_end`: the
        first hook after an epoch's last batch) reads the step and sets
        `stretch_rate`, the epoch's mean rate; a `paused()` block does not."""
        if not self._steps_running or self._idle:
            return False
        self._steps_running = False
        unseen_batches = self._end_an_unseen_last_call() if epoch_end else 0
        if self._timeline.pause(self._last_end, epoch_end) and self._watchdog is not None:
            self._watchdog.log_if_warned_before_pause(self._last_end, self._clock())
        if epoch_end:
            self._read_at_epoch_end(unseen_batches)
        return True

    def _read_at_epoch_end(self, unseen_batches: int) -> None:
        step = self._read_step()
        if step is None:
            return
        per_call, previous = self._batches_per_call, self._last_read_step
        if unseen_batches and previous is not None and self._source.steps_per_call == per_call:
            batches = (self._calls_since_read - 1) * per_call + unseen_batches
            self._warnings.unseen_call_updates(step - previous, batches)
        self._reweigh_a_short_last_call()
        self._note_read(step)
        self._epoch_calls_read, self._short_call_seen = 0, False  # The next epoch's.
        self.stretch_rate = self._timeline.epoch_rate(step)
        if self.writing:
            started = self._clock()
            self._sink.reached(step)
            self._own_work(started)
        self._arm_deadline()

    def end_run(self) -> None:
        """Ends the run: the goodput ledger (if on), then a flush."""
        if self._read is not None and not self._idle:
            self.pause_steps()
            self._finish(self._clock())
        self._sink.flush()
        self._leave_run()

    def close_run(self) -> None:
        """Ends a run left open (its `fit` raised, or a loop never ended):
        its ledger ends at its last step end. Nothing to do otherwise."""
        if self._read is not None and not self._idle and not self._timeline.ended:
            self._steps_running = False
            self._finish(self._last_end)
            self._sink.flush()
        self._leave_run()

    def _finish(self, t: float) -> None:
        if self._input is not None:
            if self._timeline.first_end is not None:  # The tail after the last record.
                self._input_share(self._last_end)
                self._timeline.input_share = self._input.run_share()
            self._input.meter.detach()
        ledger = self._timeline.end_run(t, self._last_end)
        if self._watchdog is not None:
            self._watchdog.stop()
        step = self._last_read_step
        if not self.writing or step is None:
            return
        self._sink.reached(step)
        if not self._goodput:
            return
        tf_logger.info("%s", summary_line(ledger))
        self._sink.write(step, ledger)
        self._sink.write_text(step, LEDGER_TEXT_TAG, ledger_table(ledger))

    def _leave_run(self) -> None:
        # Outside a run, the first batch end reads, and finds no reader.
        self.go_idle()
        if self._cells is not None:
            self._cells()
            self._cells = None
        self._read = self._thread = None
        self._idle = False
        self._calls_until_read, self._deadline = ReadSchedule.FIRST_READ

    # The batch path. -------------------------------------------------------

    def batch_end(self, batch: Any = None, logs: Optional[Dict[str, Any]] = None) -> None:
        """One batch call ended. The hot path: a few compares unless a read
        is due, or the call took the stall threshold (then it reads at once).
        A call that reads is timed in `_at_read`, to its read's end."""
        now = self._clock()
        last, self._last_end = self._last_end, now
        if self._count_fn is not None:
            self._count_examples(logs)
        self._calls_since_read += 1
        if (
            self._calls_since_read < self._calls_until_read
            and now < self._deadline
            and now - last < self._stall_after
        ):
            if self._add_step_secs is not None:
                self._add_step_secs(now - last)
            return
        self._at_read(last)

    def _at_read(self, last: float) -> None:
        """A batch call that started at `last` ended, and the step is read:
        a stall, the first step, a record, or a new baseline."""
        if self._idle:  # After a failure, or a batch end outside a run's steps.
            self._calls_until_read, self._deadline = math.inf, math.inf
            return
        step = self._read_step()
        if step is None:
            return
        end = self._last_end = self._clock()  # The call ends with its step read.
        if self.step_times is not None:
            self.step_times.add(end - last)
        self._warnings.check_progress(step, self._last_read_step, self._calls_since_read)
        if end - last >= self._stall_after:
            self._stalled(last, end, step)
        if self._first_step_pending:
            if self._first_update_pending(step):
                self._note_read(step)
                self._calls_until_read = 1  # Read again at the next batch end.
                self._arm_deadline()
                return
            self._first_step_done(end, step)
        self._reweigh_a_short_last_call()
        baseline = self._rates.timer.last_triggered_step()
        training_end = self._timeline.training_time(end)
        interval = self._rates.interval(step, training_end)
        self._note_read(step)
        if interval is not None:
            self._write(step, self._record_scalars(interval, training_end), log=True)
        elif self._rates.timer.last_triggered_step() != baseline:
            self._write(step, {BASELINE_STEP_TAG: float(step)})
        else:
            if self._input is not None:  # Its spans so far, booked.
                self._input.fold(end, self._stall_after)
            self._arm_deadline()
            return
        self._restart_interval()
        self._arm_deadline()

    def _record_scalars(
        self, interval: Tuple[int, float, float], training_end: float
    ) -> Dict[str, float]:
        """The scalars of a rate record: the rate's, and every instrument's."""
        steps, seconds, examples = interval
        self.typical_step_secs = seconds / steps
        scalars = self._rates.scalars(steps, seconds, examples)
        if self.step_times is not None:
            scalars.update(self.step_times.summary() or {})
        scalars.update(self.sections.fractions(seconds, training_end))
        if self._input is not None:
            share = self._input_share(self._last_end)
            if share is not None:
                scalars[INPUT_FRAC_TAG] = share
        self._stall_after = stall_threshold(self._stall_setting, self.typical_step_secs)
        return scalars

    def _write(self, step: int, scalars: Dict[str, float], log: bool = False) -> None:
        """Writes `scalars` at `step` (and the rate's log line): the
        counter's own work, left out of every instrument."""
        if not self.writing:
            return
        started = self._clock()
        self._sink.write(step, scalars)
        if log:
            log_rate(self._rates.tag, scalars[self._rates.tag])
        self._own_work(started)

    def _own_work(self, started: float) -> None:
        end = self._clock()
        self._timeline.work(started, end)
        if self._timeline.in_steps:
            # The call in progress leaves the work out: its start moves on
            # by as much (so a gap is never both a stall and own work).
            self._last_end += end - started
        self._warn_if_own_work_is_large(end)

    def _restart_interval(self) -> None:
        """A new record interval starts (after a record or a baseline)."""
        if self.step_times is not None:
            self.step_times.clear()
        self._interval_training_start = self.training_now(self._last_end)
        self.sections.clear(self._interval_training_start)
        if self._input is not None:
            self._input.restart(self._last_end)

    def _stalled(self, start: float, end: float, step: int) -> None:
        """No step ended from `start` to `end` for at least the threshold."""
        if self._input is not None:  # Its waits are the stall's.
            self._input.stalled(start, end)
        self._timeline.stall(start, end)
        if self._watchdog is not None:
            self._write(step, {STALL_SECS_TAG: end - start})
            self._watchdog.log_resumed(end - start, step)

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
        self._stall_after = stall_threshold(self._stall_setting, None)
        if self._time_to_first_step:
            self._write(step, {TIME_TO_FIRST_STEP_TAG: now - self._timeline.run_begin})

    # Epochs' last calls. -----------------------------------------------------

    def _calls_per_epoch(self) -> Optional[Tuple[int, int]]:
        """(batch calls in an epoch, batches of its last call), in `fit`."""
        batches = self._source.batches_per_epoch
        if batches is None:
            return None
        per_call = self._batches_per_call
        return -(-batches // per_call), batches - (-(-batches // per_call) - 1) * per_call

    def _reweigh_a_short_last_call(self) -> None:
        """With `steps_per_execution=k`, an epoch's last call can cover fewer
        than k batches (Keras gives no sign of it at its batch end): the
        epoch's length says so, and `step_time/*` weighs it by them."""
        epoch = self._calls_per_epoch()
        if (self.step_times is None or epoch is None or self._short_call_seen
                or self._source.calls_per_update != 1):  # Weights would be steps.
            return
        calls, last_batches = epoch
        if last_batches < self._batches_per_call and (
            self._epoch_calls_read + self._calls_since_read == calls
        ):
            self._short_call_seen = True
            self.step_times.reweigh_last(last_batches)

    def _end_an_unseen_last_call(self) -> int:
        """Keras before 3.7 on TensorFlow ends an epoch's short last
        `steps_per_execution` call without a batch-end hook: the epoch's
        first hook after it is its end. Returns its batches (0: none)."""
        epoch = self._calls_per_epoch()
        if epoch is None:
            return 0
        calls, last_batches = epoch
        if last_batches < self._batches_per_call and (
            self._epoch_calls_read + self._calls_since_read == calls - 1
        ):
            now = self._clock()
            last, self._last_end = self._last_end, now
            self._calls_since_read += 1
            if self.step_times is not None:
                self.step_times.add(now - last, last_batches)
            return last_batches
        return 0

    # Reads. ------------------------------------------------------------------

    def _read_step(self, first: bool = False) -> Optional[int]:
        """The step, or None (warned; the run records nothing more) when read
        from another thread or when the read failed.

        Raises:
            RuntimeError: outside a run (`step_done()` without `track()`).
            TypeError: on a run's `first` read, a step source of the wrong
                kind (it returns floats, say): bad input, before any step.
        """
        read = self._read
        if read is None:
            raise RuntimeError(OUTSIDE_A_RUN)
        if threading.get_ident() != self._thread:
            self._warnings.off_thread()
            self.go_idle()
            return None
        try:
            return read()
        except Exception as error:  # A measuring tool must not stop training.
            if first and isinstance(error, TypeError):
                raise
            self._warnings.read_failed(error)
            self.go_idle()
            return None

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
        training time, which runs behind the clock by the pauses and own
        work so far."""
        self._deadline = self._training_deadline + self._timeline.excluded

    def training_now(self, t: Optional[float] = None) -> float:
        """The run's training time at `t` (default: now)."""
        return self._timeline.training_time(self._clock() if t is None else t)

    def _count_examples(self, logs: Optional[Dict[str, Any]]) -> None:
        assert self._count_fn is not None
        try:
            self._rates.add_examples(float(self._count_fn(logs or {})))
        except Exception as error:  # A counting bug must not stop training.
            self._warnings.count_fn_failed(error)

    def _input_share(self, end: float) -> Optional[float]:
        """The input wait's share of the interval since the last record (or
        baseline) up to the clock time `end`, or None where not measured."""
        assert self._input is not None
        training = self.training_now(end) - self._interval_training_start
        return self._input.interval_share(end, training, self._stall_after)

    def _warn_if_own_work_is_large(self, now: float) -> None:
        if self._own_work_warned:
            return
        own = self._timeline.recorder_secs
        training = self.training_now(now) - self._timeline.run_begin + own
        if training > 10.0 and own > OWN_WORK_WARN_SHARE * training:
            self._own_work_warned = True
            where = f" writing to {self._where}" if self._where else ""
            tf_logger.warning(OWN_WORK_WARNING, 100 * own / training, own, training, where)

    # For the watchdog's thread: attribute reads only.

    def _progress(self) -> Optional[float]:
        """Since when a step end is awaited; None while none is: before the
        run's first step end (startup), steps paused, or the epoch's last
        batch over (what follows until the counter's next hook is an epoch
        boundary, by the timeline's rule)."""
        timeline = self._timeline
        if not timeline.in_steps or timeline.first_end is None:
            return None
        epoch = self._source.batches_per_epoch
        if epoch is not None and timeline.pauses_epochs:
            calls = self._epoch_calls_read + self._calls_since_read
            if calls * self._batches_per_call >= epoch:
                return None
        return self._last_end

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
