"""`StepCounter`: TF1's StepCounterHook as a Keras callback."""

from __future__ import annotations

import contextlib
import dataclasses
import contextvars
import copy
import time
from typing import Any, Callable, Dict, Iterator, Optional

import tensorflow as tf

from keras_stepcounter._distribute import is_chief, process_label
from keras_stepcounter._step_readers import (
    iterations_reader,
    keras,
    step_source_reader,
    steps_per_execution,
    updates_per_call,
)
from keras_stepcounter.core import checks as _checks
from keras_stepcounter.custom_loops import CustomLoopMethods
from keras_stepcounter.dashboard import DashboardTags
from keras_stepcounter.input_wait import InputWaitMeter
from keras_stepcounter.core.options import RecorderOptions
from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.tags import DEFAULT_TAG
from keras_stepcounter.core.recorder import Recorder
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.watchdog import check_stall_secs
from keras_stepcounter.core.timer import Clock, SecondOrStepTimer
from keras_stepcounter.writer import check_writer_arguments, make_sink

EPOCH_LOG_KEY = "steps_per_sec"

# The clock of the counters made in this context: `time.perf_counter`, or
# a fake one a test sets with `_counters_use_clock`. A test seam has no
# place in the public signature.
_NEW_COUNTER_CLOCK: "contextvars.ContextVar[Clock]" = contextvars.ContextVar(
    "keras_stepcounter_clock", default=time.perf_counter
)


@contextlib.contextmanager
def _counters_use_clock(clock: Clock) -> Iterator[None]:
    """Counters made inside the block read `clock` (tests: a fake one)."""
    _checks.check_callable("clock", clock, optional=False)
    token = _NEW_COUNTER_CLOCK.set(clock)
    try:
        yield
    finally:
        _NEW_COUNTER_CLOCK.reset(token)


class StepCounter(keras.callbacks.Callback, CustomLoopMethods):
    """Counts training steps per second and writes them to TensorBoard.

    The TF2 successor of `tf.compat.v1.train.StepCounterHook`, with its
    timing rules: the global step is the number of updates
    `model.optimizer` applied (`iterations`); the first trigger of a `fit`
    only sets a baseline; after it, every `every_n_steps` steps (or
    `every_n_secs` seconds) the rate `(step - last_step) / (now -
    last_time)` is written as the scalar `global_step/sec` at `step`,
    flushed to disk, and logged as `global_step/sec: <value>` through
    TensorFlow's logger.

    Between triggers a batch costs a clock read and a few compares: the
    device counter is read only where a trigger can fire. Time between
    epochs (unless `pause_between_epochs=False`), between `fit` calls, and
    the counter's own work of writing a record are not counted. List the
    counter first in `callbacks=`, so that an epoch's boundary starts after
    every callback's work on its last batch.

    Args:
        every_n_steps: Record every N global steps. Default 100.
        every_n_secs: Record every N seconds instead (pass
            `every_n_steps=None`).
        output_dir: Directory for event files, written by the counter
            itself; one event file for the counter's life (all its fits),
            closed by `close()` or at exit.
        summary_writer: A `tf.summary.SummaryWriter` of yours (never closed
            here). With neither, records go to the default writer active at
            the time, if any, and always to the log.
        tag: Tag of the steps/sec scalar, exactly as given. Default
            `"global_step/sec"`.
        batch_size: Global examples per batch; adds the scalar
            `examples/sec`: steps/sec times `batch_size`, times the
            optimizer's `gradient_accumulation_steps` when it accumulates
            (a step is an applied update, made of that many batches).
        count_fn: `count_fn(logs) -> number` of examples (or tokens) in a
            batch, from the batch logs; adds `examples/sec`. Called on every
            batch, so keep it cheap.
        flops_per_step: FLOPs of one training step; with
            `peak_flops_per_sec`, adds the scalar `mfu`.
        peak_flops_per_sec: Peak FLOP/s of the hardware.
        time_to_first_step: Record, once per `fit`, the seconds from
            `on_train_begin` to the end of the first step (tracing and
            compiling included) as the scalar `time_to_first_step`.
        pause_between_epochs: Leave out the time from the end of an
            epoch's last batch to the start of the next epoch's first
            batch, in every instrument (rate, step times, the ledger's
            `epoch_boundary`, the watchdog). Default True; False counts it
            as steps in all of them (a hang at an epoch end can then be a
            stall), and the run's tail after its last batch too.
        epoch_logs: Add the epoch's mean rate to the epoch logs as
            `steps_per_sec` (progress bar, `History`, `CSVLogger` placed
            after this callback). Default True.
        step_source: Read the global step from this integer `tf.Variable`
            or callable instead of `model.optimizer.iterations`.
        steps_per_call: Most global steps one batch callback can cover:
            when the step must be read, and a call's weight in
            `step_time/*`. Default: the model's `steps_per_execution`
            (batches per call), divided by the optimizer's
            `gradient_accumulation_steps` and rounded up, else 1.
        step_time_stats: At each record, also write `step_time/p10`,
            `/p50`, `/p90`, `/p99` and `/max`: the time of each step of the
            interval, in seconds, from the batch-end clock reads (a call
            covering k steps counts as k steps of 1/k its time; an epoch's
            short last `steps_per_execution` call, as the batches it
            covered).
        stall_secs: Seconds without a step end after which a watchdog
            thread logs one warning with the step training is at and the
            training thread's stack, or `"auto"` (ten times the typical
            step time, at least 60 s). A stall is a gap between two step
            ends of at least this after the first step end, decided by its
            length when it ends; its length is written as `stall_secs` at
            the step that ends it. Pauses and writing a record are never
            stalls. The watchdog runs from `on_train_begin` to
            `on_train_end`, or until the `fit` call that began the run has
            left the training thread (it raised). Every process of a job
            warns of its own stalls, naming itself.
        goodput: At the end of each `fit`, write where its time went:
            `goodput/total_secs`, `/startup_secs`, `/step_secs`,
            `/epoch_boundary_secs`, `/stall_secs`, `/recorder_secs`,
            `/other_secs` (they add up to the total) and `/fraction`
            (`step_secs / total_secs`); a fit that raised gets its ledger
            at the next run or `close()`. And `goodput/rerun_steps` when a
            fit starts above step 0 and below the last step read by the
            latest run that wrote to `output_dir` (see the guide,
            docs/beyond-steps-per-sec.md).
        input_stats: In `fit`, measure how long the steps wait for their
            next batch: `time_frac/input` at each record whose interval
            was measured (the share of its training time), and with
            `goodput`, `goodput/input_secs` apart from `step_secs`.
            Every wait is measured on JAX and PyTorch; profiler windows
            sample them on TensorFlow and tf_keras (how, and what it
            costs: `keras_stepcounter.input_wait`). Where it cannot be
            measured it warns once and writes nothing. A custom loop times
            its input with `timed_iter` instead.

    Example:

    ```python
    counter = keras_stepcounter.StepCounter(every_n_steps=100,
                                            output_dir="logs/train")
    model.fit(x, y, epochs=3, callbacks=[counter])
    ```

    Under `tf.distribute` and across JAX processes, steps and `batch_size`
    are global; only one process of a job writes and logs (the chief, JAX
    process 0). `async_safe` is False: the clock is read at each batch end
    on the training thread (given one callback rather than a list, Keras
    on JAX runs it on a thread pool: the counter then warns and records
    nothing for that `fit`).
    """

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
        step_time_stats: bool = False,
        stall_secs: Any = None,
        goodput: bool = False,
        input_stats: bool = False,
    ) -> None:
        super().__init__()
        self._settings = dict(locals())
        self._settings.pop("self")
        self._settings.pop("__class__", None)
        options = RecorderOptions.pick(self._settings)
        for name in (
            "pause_between_epochs", "epoch_logs", "step_time_stats", "goodput", "input_stats",
        ):
            _checks.check_bool(name, self._settings[name])
        self._clock = clock = _NEW_COUNTER_CLOCK.get()
        stall_secs = check_stall_secs(stall_secs)
        self._step_source = None if step_source is None else step_source_reader(step_source)
        self._steps_per_call = _checks.check_optional_positive_int(
            "steps_per_call", steps_per_call
        )
        rates = RateTracker.from_options(
            SecondOrStepTimer(options.every_n_secs, options.every_n_steps, clock), options
        )
        self._tag = tag
        # input_stats: the waits for the next batch inside fit's steps.
        self._input_meter = InputWaitMeter(clock) if input_stats else None
        self._epoch_logs = epoch_logs
        self._writes = True  # This process writes (decided at each run).
        self._output_dir = check_writer_arguments(output_dir, summary_writer)
        self._writer = make_sink(
            self._output_dir,
            summary_writer,
            DashboardTags.of(
                options,
                step_time_stats=step_time_stats,
                goodput=goodput,
                input_stats=input_stats,
            ),
        )
        self._recorder = Recorder(
            rates,
            self._writer,
            clock,
            count_fn=count_fn,
            time_to_first_step=options.time_to_first_step,
            pause_between_epochs=pause_between_epochs,
            step_time_stats=step_time_stats,
            stall_secs=stall_secs,
            goodput=goodput,
            input_meter=self._input_meter,
            where=self._output_dir or "",
        )
        # The per-batch call goes straight to the recorder: no extra frame
        # on the hot path (Keras calls instance attributes like methods),
        # unless a subclass overrides it.
        if type(self).on_train_batch_end is StepCounter.on_train_batch_end:
            self.on_train_batch_end = self._recorder.batch_end  # type: ignore[method-assign]
        if type(self).step_done is CustomLoopMethods.step_done:
            self.step_done = self._recorder.batch_end  # type: ignore[method-assign]

    @property
    def tag(self) -> str:
        return self._tag

    # Keras hooks. ---------------------------------------------------------

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._begin_run(self._step_source or iterations_reader(self.model))
        if self._input_meter is not None and self._writes:
            self._input_meter.attach(self.model, self)

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._recorder.begin_steps()  # Steps start at an epoch's first batch.

    def on_test_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        # Validation after an epoch's last batch: the first hook after every
        # callback's work on that batch. (Outside fit: nothing to pause.)
        self._recorder.pause_steps()

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._recorder.pause_steps()
        rate = self._recorder.stretch_rate
        if rate is not None and self._epoch_logs and logs is not None and self._writes:
            logs[EPOCH_LOG_KEY] = rate

    def on_train_batch_end(
        self, batch: Optional[int] = None, logs: Optional[Dict[str, Any]] = None
    ) -> None:
        # Bound to the recorder per instance in __init__; this is for
        # subclasses that override it and call super().
        self._recorder.batch_end(batch, logs)

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._recorder.end_run()

    def close(self) -> None:
        """Ends a run left open (a `fit` that raised: its ledger is written,
        ending at its last step end), stops its stall watchdog, and closes
        the event file the counter opened (a user's writer stays open)."""
        self._recorder.close_run()
        self._writer.close()

    # Internals. -----------------------------------------------------------

    def _begin_run(self, source: RunSource) -> None:
        batches_per_call = steps_per_execution(self.model)
        self._recorder.begin_run(
            dataclasses.replace(
                source,
                batches_per_call=batches_per_call,
                steps_per_call=self._steps_per_call
                or updates_per_call(batches_per_call, source.calls_per_update),
                batches_per_epoch=self._batches_per_epoch(),
            )
        )
        self._writes = is_chief(self.model)
        self._recorder.set_writing(self._writes, process_label())
        if self._writes:
            self._writer.open()

    def _batches_per_epoch(self) -> Optional[int]:
        """Keras's `params["steps"]` in `fit` (None in a custom loop, or for
        a dataset of unknown length)."""
        steps = (getattr(self, "params", None) or {}).get("steps")
        return steps if isinstance(steps, int) and steps > 0 else None

    def __deepcopy__(self, memo: Dict[int, Any]) -> "StepCounter":
        """A new counter with the same settings (tuners deep-copy callbacks).

        The user's writer, step source and count_fn are shared, not copied:
        they are the user's objects. The copy has its own state and, for
        `output_dir`, its own event file; it reads the same clock.
        """
        settings = dict(self._settings)
        for name in ("every_n_steps", "every_n_secs", "output_dir", "tag"):
            settings[name] = copy.deepcopy(settings[name], memo)
        with _counters_use_clock(self._clock):
            return type(self)(**settings)
