"""`StepCounter`: TF1's StepCounterHook as a Keras callback."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable, Dict, Iterator, Optional

import tensorflow as tf

from keras_stepcounter.core import checks as _checks
from keras_stepcounter._distribute import is_chief
from keras_stepcounter._keras import (
    StepReader,
    iterations_reader,
    keras,
    step_source_reader,
    steps_per_execution,
)
from keras_stepcounter.core.rates import (
    DEFAULT_TAG,
    TIME_TO_FIRST_STEP_TAG,
    RateTracker,
)
from keras_stepcounter.core.timer import Clock, SecondOrStepTimer
from keras_stepcounter.writer import ScalarWriter, check_output_dir, check_summary_writer

EPOCH_LOG_KEY = "steps_per_sec"


class StepCounter(keras.callbacks.Callback):
    """Counts training steps per second and writes them to TensorBoard.

    The TF2 successor of `tf.compat.v1.train.StepCounterHook`, with its
    timing rules: the global step is `model.optimizer.iterations`; the
    first trigger of a `fit` only sets a baseline; after it, every
    `every_n_steps` steps (or `every_n_secs` seconds) the rate
    `(step - last_step) / (now - last_time)` is written as the scalar
    `global_step/sec` at `step`, flushed to disk, and logged as
    `global_step/sec: <value>` through TensorFlow's logger.

    Between triggers a batch costs a clock read and a compare: the device
    counter is read only on batches where a trigger can fire. Time between
    epochs (validation, checkpoints) and between `fit` calls is not counted.

    Args:
        every_n_steps: Record every N global steps. Default 100.
        every_n_secs: Record every N seconds instead (pass
            `every_n_steps=None`).
        output_dir: Directory for a writer opened (and closed) by the callback.
        summary_writer: A `tf.summary.SummaryWriter` of yours (never closed
            here). With neither, records go to the default writer active at
            the time, if any, and always to the log.
        tag: Tag of the steps/sec scalar. Default `"global_step/sec"`.
        batch_size: Global examples per step; adds the scalar `examples/sec`.
        count_fn: `count_fn(logs) -> number` of examples (or tokens) in a
            batch, from the batch logs; adds `examples/sec`. Called on every
            batch, so keep it cheap.
        flops_per_step: FLOPs of one training step; with
            `peak_flops_per_sec`, adds the scalar `mfu`.
        peak_flops_per_sec: Peak FLOP/s of the hardware.
        time_to_first_step: Record, once per `fit`, the seconds from the
            start of training to the end of the first step (tracing and
            compiling included) as the scalar `time_to_first_step`.
        pause_between_epochs: Do not count the time from the end of an
            epoch's last batch to the start of the next epoch's first batch.
            Default True.
        epoch_logs: Add the epoch's mean rate to the epoch logs as
            `steps_per_sec` (progress bar, `History`, `CSVLogger` placed
            after this callback). Default True.
        step_source: Read the global step from this integer `tf.Variable`
            or callable instead of `model.optimizer.iterations` (custom loops).
        steps_per_call: Most global steps one batch callback can cover.
            Default: the model's `steps_per_execution`, else 1.
        clock: Monotonic clock in seconds. Default `time.perf_counter`;
            tests pass a fake one.

    Example:

    ```python
    counter = keras_stepcounter.StepCounter(every_n_steps=100,
                                            output_dir="logs/train")
    model.fit(x, y, epochs=3, callbacks=[counter])
    ```

    Under `tf.distribute`, steps and `batch_size` are global (all replicas);
    under `MultiWorkerMirroredStrategy` only the chief writes and logs, the
    other workers' counters stay idle (decided in `on_train_begin`; no
    collective call).

    `async_safe` is False: Keras on JAX may run `on_train_batch_end` in a
    thread pool, later and out of order, where the clock would no longer
    be read at the end of the batch and the baseline would be shared
    between threads; records would land at other steps with other rates.
    """

    # See the class docstring: exact steps and rates need synchronous calls.
    async_safe = False

    def __init__(
        self,
        every_n_steps: Optional[int] = 100,
        every_n_secs: Optional[float] = None,
        output_dir: Optional[str] = None,
        summary_writer: Optional[tf.summary.SummaryWriter] = None,
        *,
        tag: str = DEFAULT_TAG,
        batch_size: Optional[int] = None,
        count_fn: Optional[Callable[[Dict[str, Any]], float]] = None,
        flops_per_step: Optional[float] = None,
        peak_flops_per_sec: Optional[float] = None,
        time_to_first_step: bool = False,
        pause_between_epochs: bool = True,
        epoch_logs: bool = True,
        step_source: Any = None,
        steps_per_call: Optional[int] = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        super().__init__()
        _checks.check_every(every_n_steps, every_n_secs)
        _checks.check_tag(tag)
        _checks.check_callable("count_fn", count_fn)
        _checks.check_extras(batch_size, count_fn, flops_per_step, peak_flops_per_sec)
        _checks.check_callable("clock", clock, optional=False)
        check_summary_writer(summary_writer)
        if step_source is not None:
            step_source_reader(step_source)  # Fails now on a bad source.
        self._timer = SecondOrStepTimer(every_n_secs, every_n_steps, clock)
        self._rates = RateTracker(
            self._timer,
            tag=tag,
            batch_size=_checks.check_optional_positive_int("batch_size", batch_size),
            flops_per_step=_checks.check_optional_positive_number(
                "flops_per_step", flops_per_step
            ),
            peak_flops_per_sec=_checks.check_optional_positive_number(
                "peak_flops_per_sec", peak_flops_per_sec
            ),
        )
        self._count_fn = count_fn
        self._count_fn_warned = False
        self._record_time_to_first_step = bool(time_to_first_step)
        self._pause_between_epochs = bool(pause_between_epochs)
        self._epoch_logs = bool(epoch_logs)
        self._step_source = step_source
        self._steps_per_call_arg = _checks.check_optional_positive_int(
            "steps_per_call", steps_per_call
        )
        self._clock = clock
        # Last: it creates the directory, which a later failed check would
        # leave behind.
        self._writer = ScalarWriter(check_output_dir(output_dir), summary_writer)
        self._read_step: Optional[StepReader] = None
        self._chief = True
        self._reset_run_state()

    @property
    def tag(self) -> str:
        return self._rates.tag

    # Keras hooks. ---------------------------------------------------------

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._reset_run_state()
        if self._step_source is not None:
            self._read_step = step_source_reader(self._step_source)
        else:
            self._read_step = iterations_reader(self.model)
        self._steps_per_call = self._steps_per_call_arg or steps_per_execution(
            self.model
        )
        self._chief = is_chief(self.model)
        if not self._chief:
            self._stay_idle()
            return
        self._writer.open()
        self._train_begin_time = self._clock()
        # One read per fit, so the first epoch's step count is known; it is
        # not a baseline (v1 takes that after the first step).
        self._last_read_step = self._read_step()

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._epoch_started = False

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if not self._epoch_started:
            self._start_epoch()

    def on_train_batch_end(
        self, batch: Optional[int] = None, logs: Optional[Dict[str, Any]] = None
    ) -> None:
        now = self._last_batch_end = self._clock()
        if self._count_fn is not None:
            self._count_examples(logs)
        self._calls_since_read += 1
        if self._calls_since_read < self._calls_until_read and now < self._deadline:
            return
        self._read_and_maybe_record()

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if not self._epoch_started or not self._chief:
            return  # An epoch without batches, or a worker that records nothing.
        if self._pause_between_epochs:
            # From the end of the last batch, or of the recorder's own work
            # on it: that work is already out of the interval (restart_clock).
            self._paused_since = max(self._last_batch_end, self._own_work_end)
        if self._epoch_logs and logs is not None:
            rate = self._epoch_rate()
            if rate is not None:
                logs[EPOCH_LOG_KEY] = rate

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._writer.close()

    # Custom loops. --------------------------------------------------------

    @contextlib.contextmanager
    def track(self, step_source: Any = None) -> Iterator["StepCounter"]:
        """Brackets a custom training loop: begin on entry, end on exit.

        Args:
            step_source: An integer `tf.Variable` (e.g. `optimizer.iterations`)
                or a callable returning the global step. Default: the one
                given to the constructor, else `model.optimizer.iterations`.

        Call `step_done()` after each training step (or each call of a
        function running several steps) inside the block.
        """
        if step_source is not None:
            step_source_reader(step_source)  # Fails now on a bad source.
            self._step_source = step_source
        self.on_train_begin()
        self._start_epoch()
        try:
            yield self
        finally:
            self.on_train_end()

    # The per-step call of a custom loop is the batch-end hook itself, so it
    # costs exactly what the hot path of `fit` costs.
    step_done = on_train_batch_end

    # Internals. -----------------------------------------------------------

    def _reset_run_state(self) -> None:
        self._rates.reset()
        self._steps_per_call = 1
        self._last_read_step: Optional[int] = None
        self._calls_since_read = 0
        self._calls_until_read = 1  # The first batch sets the baseline.
        self._deadline = -math.inf
        self._last_batch_end: Optional[float] = None
        self._own_work_end = -math.inf
        self._paused_since: Optional[float] = None
        self._epoch_started = False
        self._epoch_start_step: Optional[int] = None
        self._epoch_start_time: Optional[float] = None
        self._first_step_pending = True
        self._train_begin_time: Optional[float] = None

    def _stay_idle(self) -> None:
        """Never reads, writes or logs until the next `on_train_begin`.

        The batch hooks stay as they are: with no read ever due they return
        after the compare, so a non-chief worker costs what a quiet batch
        costs.
        """
        self._calls_until_read = math.inf
        self._deadline = math.inf

    def _start_epoch(self) -> None:
        self._epoch_started = True
        now = self._clock()
        if self._paused_since is not None:
            self._timer.exclude(now - self._paused_since)
            self._deadline = self._timer.trigger_deadline()
            self._paused_since = None
        self._epoch_start_time = now
        self._epoch_start_step = self._last_read_step

    def _count_examples(self, logs: Optional[Dict[str, Any]]) -> None:
        try:
            self._rates.add_examples(float(self._count_fn(logs or {})))
        except Exception as error:  # A counting bug must not stop training.
            if self._count_fn_warned:
                return  # Once is enough: it runs on every batch.
            self._count_fn_warned = True
            tf.get_logger().warning(
                "keras_stepcounter: count_fn failed (%s); its batches are "
                "left out of examples/sec (warned once).",
                error,
            )

    def _read_and_maybe_record(self) -> None:
        step = self._read_step()
        self._check_steps_per_call(step)
        self._rates.warn_if_stalled(step, self._last_read_step)
        if self._first_step_pending:
            self._first_step_pending = False
            self._maybe_record_time_to_first_step(step)
        scalars = self._rates.observe(step)
        if scalars is not None:
            self._rates.record(self._writer, step, scalars)
        self._note_read(step)
        self._own_work_end = self._clock()

    def _note_read(self, step: int) -> None:
        self._last_read_step = step
        self._calls_since_read = 0
        self._schedule_next_read(step)

    def _check_steps_per_call(self, step: int) -> None:
        """Widens the per-call step bound if the counter ran ahead of it.

        The bound decides which batches may skip the read; a counter that
        advanced more per call than assumed (a custom train_step applying
        gradients twice, say) would make a record land late, so the bound
        follows what was seen.
        """
        if self._last_read_step is None or self._calls_since_read == 0:
            return
        advance = step - self._last_read_step
        bound = self._calls_since_read * self._steps_per_call
        if advance > bound:
            self._steps_per_call = math.ceil(advance / self._calls_since_read)

    def _schedule_next_read(self, step: int) -> None:
        steps_left = self._timer.steps_until_trigger(step)
        if math.isinf(steps_left):
            self._calls_until_read = math.inf
        else:
            self._calls_until_read = max(1, math.ceil(steps_left / self._steps_per_call))
        self._deadline = self._timer.trigger_deadline()

    def _maybe_record_time_to_first_step(self, step: int) -> None:
        if not self._record_time_to_first_step or self._train_begin_time is None:
            return
        seconds = self._clock() - self._train_begin_time
        self._writer.write(step, {TIME_TO_FIRST_STEP_TAG: seconds})
        # The baseline is taken right after this, by the same observe() call.

    def _epoch_rate(self) -> Optional[float]:
        if self._epoch_start_time is None or self._last_batch_end is None:
            return None
        step = self._read_step()
        self._note_read(step)
        start_step = self._epoch_start_step
        if start_step is None:
            return None
        seconds = self._last_batch_end - self._epoch_start_time
        if seconds <= 0 or step <= start_step:
            return None
        return (step - start_step) / seconds
