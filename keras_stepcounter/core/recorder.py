"""`Recorder`: the framework-free part of `StepCounter`, from batch ends to records.

The Keras callback maps Keras's hooks onto these calls and hands over a
step reader; everything else (when to read the device counter, what to
record, epoch pauses, the thread check) is here, in plain Python, driven
by any clock.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, Dict, Optional

from keras_stepcounter.core.rates import RateTracker, ScalarSink, tf_logger
from keras_stepcounter.core.schedule import ReadSchedule

StepRead = Callable[[], int]

_OFF_THREAD_MESSAGE = (
    "keras_stepcounter: a batch callback ran on another thread than the one "
    "that started training (Keras runs batch callbacks on a thread pool when "
    "fit(callbacks=...) is given a single callback rather than a list). Its "
    "clock and step reads would no longer belong to the batch, so this run "
    "records nothing. Pass callbacks=[counter]."
)
_READ_FAILED_MESSAGE = (
    "keras_stepcounter: reading the global step failed (%s: %s); this run "
    "records nothing more. Training goes on."
)
_NEVER_MOVED_MESSAGE = (
    "keras_stepcounter: the global step read from %s has not moved in %d "
    "batches of this run (still %d), so nothing can be recorded. If your "
    "train_step applies gradients with another optimizer than "
    "model.optimizer (a GAN, say), pass the counter that moves: "
    "StepCounter(step_source=generator_optimizer.iterations)."
)


class Recorder:
    """Turns batch ends into rate records, reading the device only when needed.

    A run is `begin_run`, then for each stretch of training steps (an
    epoch) `begin_steps`, `batch_end` per batch call, `pause_steps`; then
    `end_run`. Time between `pause_steps` and the next `begin_steps` is not
    training and is left out of the rates.

    Args:
        rates: Trigger timer and formulas.
        sink: Where records go (`write(step, scalars)`, `flush()`).
        clock: Monotonic clock in seconds.
        count_fn: `count_fn(logs) -> number` of examples in a batch.
        time_to_first_step: Record, once per run, the seconds from
            `begin_run` to the end of the first step.
        pause_between_epochs: Leave the time from `pause_steps` to the
            next `begin_steps` out of the rates.
    """

    def __init__(
        self,
        rates: RateTracker,
        sink: ScalarSink,
        clock: Callable[[], float],
        *,
        count_fn: Optional[Callable[[Dict[str, Any]], float]] = None,
        time_to_first_step: bool = False,
        pause_between_epochs: bool = True,
    ) -> None:
        self._rates = rates
        self._sink = sink
        self._clock = clock
        self._count_fn = count_fn
        self._time_to_first_step = time_to_first_step
        self._pause_between_epochs = pause_between_epochs
        self._schedule = ReadSchedule(rates.timer)
        self._warned: set = set()
        self._leave_run()

    # Run lifecycle. --------------------------------------------------------

    def begin_run(
        self, read_step: StepRead, steps_per_call: int = 1, calls_per_update: int = 1,
        source: str = "the step source",
    ) -> None:
        """Starts a run; the first step is read at the first `begin_steps`."""
        self._rates.reset()
        self._schedule.steps_per_call = steps_per_call
        self._read_step: Optional[StepRead] = read_step
        self._source = source
        self._calls_per_update = calls_per_update
        self._thread: Optional[int] = threading.get_ident()
        self._run_begin = self._clock()
        self._run_start_step: Optional[int] = None
        self._last_read_step: Optional[int] = None
        self._run_calls = 0
        self._calls_since_read = 0
        self._calls_until_read, self._deadline = ReadSchedule.FIRST_READ
        self._first_step_pending = True
        self._in_steps = False
        self._paused_since: Optional[float] = None
        self._steps_start: Optional[float] = None
        self._steps_start_step: Optional[int] = None
        self._last_batch_end: Optional[float] = None

    def go_idle(self) -> None:
        """Records nothing until the next `begin_run` (a non-chief worker, or
        after a failure). Batch ends then cost what a quiet batch costs."""
        self._calls_since_read = 0
        self._calls_until_read, self._deadline = math.inf, math.inf
        self._in_steps = False
        self._steps_start = None
        self.stretch_rate = None

    @property
    def idle(self) -> bool:
        return self._calls_until_read == math.inf and self._deadline == math.inf

    def begin_steps(self) -> None:
        """Training steps start (an epoch's first batch, or a loop's start)."""
        if self._read_step is None or self.idle or self._in_steps:
            return
        if self._run_start_step is None:
            # The run's first step is read here, not in `begin_run`: after
            # every callback's on_train_begin (BackupAndRestore restores
            # the step there, in any list order).
            self._run_start_step = self._last_read_step = self._safe_read(first=True)
            if self.idle:
                return
        now = self._clock()
        if self._paused_since is not None:
            self._rates.timer.exclude(now - self._paused_since)
            self._deadline = self._rates.timer.trigger_deadline()
            self._paused_since = None
        self._in_steps = True
        self._steps_start, self._steps_start_step = now, self._last_read_step
        self.stretch_rate: Optional[float] = None

    def pause_steps(self) -> None:
        """Training steps stop (validation or epoch end begins).

        Called at the first hook after an epoch's last batch, so the other
        callbacks' work on that batch stays in the interval. Sets
        `stretch_rate`, the mean rate since `begin_steps`.
        """
        if not self._in_steps:
            return
        now = self._clock()
        self._in_steps = False
        if self._pause_between_epochs:
            self._paused_since = now
        step = self._safe_read()
        if step is None:
            return
        self._note_read(step)
        self.stretch_rate = _rate(self._steps_start_step, step, self._steps_start, now)

    def end_run(self) -> None:
        """Ends the run and flushes."""
        self.pause_steps()
        self._sink.flush()
        self._leave_run()

    def _leave_run(self) -> None:
        # Outside a run, the first batch end reads, and finds no reader.
        self.go_idle()
        self._read_step = None
        self._thread = None
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
        self._read_and_maybe_record()

    def _read_and_maybe_record(self) -> None:
        if self._read_step is None:
            raise RuntimeError(
                "step_done() was called outside a run: call it inside "
                "`with counter.track():` (or drive the counter through a "
                "keras.callbacks.CallbackList, starting with on_train_begin)."
            )
        if threading.get_ident() != self._thread:
            self._warn_once("off_thread", _OFF_THREAD_MESSAGE)
            self.go_idle()
            return
        step = self._safe_read()
        if step is None:
            return
        self._check_progress(step)
        if self._first_step_pending:
            self._first_step_pending = False
            self._first_step_done(step)
        scalars = self._rates.observe(step)
        if scalars is not None:
            self._rates.record(self._sink, step, scalars)
        self._note_read(step)

    def _note_read(self, step: int) -> None:
        self._run_calls += self._calls_since_read
        self._calls_until_read, self._deadline = self._schedule.next_read(
            step, self._calls_since_read, self._last_read_step
        )
        self._last_read_step = step
        self._calls_since_read = 0

    def _safe_read(self, first: bool = False) -> Optional[int]:
        """The step, or None (and idle) if reading failed.

        A TypeError on a run's first read is a step source of the wrong
        kind (it returns floats, say): bad input, raised before any step.
        """
        assert self._read_step is not None
        try:
            return self._read_step()
        except Exception as error:  # A measuring tool must not stop training.
            if first and isinstance(error, TypeError):
                raise
            tf_logger.warning(_READ_FAILED_MESSAGE, type(error).__name__, error)
            self.go_idle()
            return None

    def _first_step_done(self, step: int) -> None:
        if self._time_to_first_step:
            seconds = self._clock() - self._run_begin
            self._sink.write(step, {"time_to_first_step": seconds})

    def _check_progress(self, step: int) -> None:
        """The v1 warning when the step stood still over a full update, and a
        Keras user's one when it never moved in this run."""
        if self._calls_since_read >= self._calls_per_update:
            self._rates.warn_if_stalled(step, self._last_read_step)
        calls = self._run_calls + self._calls_since_read
        if step == self._run_start_step and calls > 2 * self._calls_per_update:
            self._warn_once(
                "never_moved", _NEVER_MOVED_MESSAGE, self._source, calls, step
            )

    def _count_examples(self, logs: Optional[Dict[str, Any]]) -> None:
        assert self._count_fn is not None
        try:
            self._rates.add_examples(float(self._count_fn(logs or {})))
        except Exception as error:  # A counting bug must not stop training.
            self._warn_once(
                "count_fn",
                "keras_stepcounter: count_fn failed (%s); its batches are "
                "left out of examples/sec (warned once).",
                error,
            )

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            tf_logger.warning(message, *args)


def _rate(
    start_step: Optional[int], step: int, start_time: Optional[float], now: float
) -> Optional[float]:
    """Steps per second from (start_time, start_step) to (now, step), if any."""
    if start_step is None or start_time is None:
        return None
    seconds = now - start_time
    if seconds <= 0 or step <= start_step:
        return None
    return (step - start_step) / seconds
