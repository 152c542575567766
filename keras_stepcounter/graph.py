"""`GraphStepCounter`: steps per second recorded from inside a `tf.function`."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional

import tensorflow as tf

from keras_stepcounter.core import checks as _checks
from keras_stepcounter.core.rates import (
    DEFAULT_TAG,
    EXAMPLES_TAG,
    MFU_TAG,
    TIME_TO_FIRST_STEP_TAG,
)
from keras_stepcounter.writer import (
    check_output_dir,
    check_summary_writer,
    graph_ops,
    write_scalars_in_graph,
)

try:  # Private, but the only way to see an XLA context at trace time.
    from tensorflow.python.ops.control_flow_util import (
        GraphOrParentsInXlaContext as _in_xla_context,
    )
except ImportError:  # pragma: no cover - a TF without it: XLA fails later.

    def _in_xla_context(graph: Any) -> bool:
        return False


NOT_RECORDED = float("nan")

_NO_BASELINE = tf.int64.min
_NEVER = tf.int64.max

_XLA_MESSAGE = (
    "GraphStepCounter was called inside an XLA-compiled function "
    "(tf.function(jit_compile=True), or a TPU computation): tf.timestamp() "
    "and tf.summary ops have no XLA kernels, so it cannot run there. Call "
    "the counter outside the compiled function: keep the training step in "
    "its own jit_compile=True tf.function, and call that step and then the "
    "counter from a plain tf.function (or eager) loop."
)


class GraphStepCounter(tf.Module):
    """Counts training steps per second from inside a `tf.function`.

    For loops that run entirely in TensorFlow (a `tf.function` holding the
    whole loop, an autograph `for` over a `tf.data.Dataset`, a
    `tf.while_loop`). Call it once per step with the global step; it applies
    the rules of TF1's `StepCounterHook` in graph ops: the first call only
    sets a baseline; after it, when `step >= last_step + every_n_steps` (or
    `every_n_secs` have passed), never twice at one step, it writes
    `rate = (step - last_step) / (now - last_time)` as the scalar
    `global_step/sec` at `step`, flushes the writer, and prints the v1 line
    `global_step/sec: <value>` to stderr with `tf.print`.

    State lives in `tf.Variable`s and time comes from `tf.timestamp()`, so
    the counter adds no Python, no host round trip and no retracing to the
    function that calls it; its baseline carries over from one call of
    that function to the next (`reset()` starts a new one). It also works
    eagerly. Create it outside any `tf.function`.

    It cannot run under XLA (`jit_compile=True`, TPU): `tf.timestamp()` and
    summary ops have no XLA kernels, so it raises a `RuntimeError` at trace
    time. Call it outside the compiled function.

    Args:
        every_n_steps: Record every N global steps. Default 100.
        every_n_secs: Record every N seconds instead (pass
            `every_n_steps=None`).
        output_dir: Directory for a writer the counter opens now and closes
            in `close()`.
        summary_writer: A `tf.summary.SummaryWriter` of yours (flushed after
            each record, never closed here). With neither, records go to the
            default writer active when the calling function is traced.
        tag: Tag of the steps/sec scalar and the log line.
        batch_size: Global examples per step; adds `examples/sec`.
        count_fn: `count_fn(batch) -> tensor`, the examples (or tokens) in
            a batch, computed in graph ops (e.g. counting non-padding
            tokens); adds `examples/sec` from the sum since the last record.
            Runs on every call, so keep it cheap.
        flops_per_step: FLOPs of one training step; with
            `peak_flops_per_sec`, adds `mfu`.
        peak_flops_per_sec: Peak FLOP/s of the hardware.
        time_to_first_step: Record, at the first call, the seconds since the
            counter was created (or last `reset()`), tracing and compiling
            of the calling function included, as `time_to_first_step`.
        log: Print the v1 log line on each record. Default True.
        name: Name of the `tf.Module`.

    Example:

    ```python
    counter = keras_stepcounter.GraphStepCounter(every_n_steps=100,
                                                 output_dir="logs/train")

    @tf.function
    def train(dataset):
        for batch in dataset:
            train_step(batch)
            counter(optimizer.iterations)
    ```
    """

    def __init__(
        self,
        every_n_steps: Optional[int] = 100,
        every_n_secs: Optional[float] = None,
        output_dir: Optional[str] = None,
        summary_writer: Optional[tf.summary.SummaryWriter] = None,
        *,
        tag: str = DEFAULT_TAG,
        batch_size: Optional[int] = None,
        count_fn: Optional[Callable[[Any], Any]] = None,
        flops_per_step: Optional[float] = None,
        peak_flops_per_sec: Optional[float] = None,
        time_to_first_step: bool = False,
        log: bool = True,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name=name)
        if tf.inside_function():
            raise RuntimeError(
                "GraphStepCounter must be created outside tf.function (it "
                "creates tf.Variables and a summary writer); create it "
                "once, then call it inside."
            )
        _checks.check_every(every_n_steps, every_n_secs)
        self.tag = _checks.check_tag(tag)
        _checks.check_callable("count_fn", count_fn)
        check_summary_writer(summary_writer)
        self._every_n_steps = every_n_steps
        self._every_n_secs = every_n_secs
        self._batch_size = _checks.check_optional_positive_int("batch_size", batch_size)
        self._count_fn = count_fn
        self._flops_per_step = _checks.check_optional_positive_number(
            "flops_per_step", flops_per_step
        )
        self._peak_flops_per_sec = _checks.check_optional_positive_number(
            "peak_flops_per_sec", peak_flops_per_sec
        )
        self._record_time_to_first_step = bool(time_to_first_step)
        self._log = bool(log)
        output_dir = check_output_dir(output_dir)
        self._owns_writer = summary_writer is None and output_dir is not None
        self._writer = (
            tf.summary.create_file_writer(output_dir)
            if self._owns_writer
            else summary_writer
        )
        with self.name_scope:
            self._has_baseline = tf.Variable(
                False, trainable=False, name="has_baseline"
            )
            self._last_step = tf.Variable(
                tf.constant(0, tf.int64), trainable=False, name="last_step"
            )
            # The first step at which a step trigger is due: the per-call
            # test is one read and one compare. INT64_MIN before a baseline
            # (any step is due); never for every_n_secs, whose test is
            # the clock's.
            self._next_due_step = tf.Variable(
                tf.constant(_NO_BASELINE, tf.int64), trainable=False, name="next_due_step"
            )
            self._last_time = tf.Variable(
                tf.constant(0.0, tf.float64), trainable=False, name="last_time"
            )
            self._examples = tf.Variable(
                tf.constant(0.0, tf.float64), trainable=False, name="examples"
            )
            # Wall-clock epoch seconds, comparable with tf.timestamp().
            self._start_time = tf.Variable(
                tf.constant(time.time(), tf.float64), trainable=False, name="start_time"
            )

    def __call__(self, step: Any, batch: Any = None) -> tf.Tensor:
        """Notes that training reached global `step`; records when due.

        Args:
            step: The global step after this training step (an integer
                tensor or variable, e.g. `optimizer.iterations`).
            batch: The batch, passed to `count_fn`.

        Returns:
            The recorded steps/sec as a float64 scalar tensor, or NaN
            (`NOT_RECORDED`) when this call recorded nothing.
        """
        if _in_xla_context(tf.compat.v1.get_default_graph()):
            raise RuntimeError(_XLA_MESSAGE)
        step = tf.cast(step, tf.int64)
        if self._count_fn is not None:
            self._examples.assign_add(tf.cast(self._count_fn(batch), tf.float64))
        return tf.cond(
            self._is_due(step),
            lambda: self._trigger(step),
            lambda: tf.constant(NOT_RECORDED, tf.float64),
        )

    def reset(self) -> None:
        """Forgets the baseline: the next call sets a new one, records nothing.

        Call it (eagerly, or inside a function) before a run whose gap to
        the last call should not count, e.g. after evaluation.
        """
        self._has_baseline.assign(False)
        self._next_due_step.assign(_NO_BASELINE)
        self._examples.assign(0.0)
        self._start_time.assign(tf.timestamp())

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes, and closes the writer if the counter opened it."""
        self.flush()
        if self._owns_writer:
            self._writer.close()

    # Graph pieces. ---------------------------------------------------------

    def _is_due(self, step: tf.Tensor) -> tf.Tensor:
        """The v1 trigger rule, as a boolean tensor.

        `_next_due_step` folds "no baseline yet", "every_n_steps reached"
        and "not the step of the last trigger" (every_n_steps >= 1) into one
        compare, since this runs on every call.
        """
        due_by_step = step >= self._next_due_step
        if self._every_n_secs is None:
            return due_by_step
        due_by_time = tf.logical_and(
            tf.timestamp() >= self._last_time + self._every_n_secs,
            tf.not_equal(step, self._last_step),
        )
        return tf.logical_or(due_by_step, due_by_time)

    def _trigger(self, step: tf.Tensor) -> tf.Tensor:
        now = tf.timestamp()
        elapsed_secs = now - self._last_time
        elapsed_steps = tf.cast(step - self._last_step, tf.float64)
        examples = self._examples.read_value()
        recordable = tf.logical_and(
            self._has_baseline,
            tf.logical_and(elapsed_secs > 0.0, elapsed_steps > 0.0),
        )
        rate = tf.cond(
            recordable,
            lambda: self._record(step, elapsed_steps, elapsed_secs, examples),
            lambda: self._no_record(step, now),
        )
        # The baseline time is taken after the record is written and
        # flushed: recording is not training.
        with tf.control_dependencies([rate]):
            updates = [
                self._last_time.assign(tf.timestamp()),
                self._last_step.assign(step),
                self._next_due_step.assign(self._next_due_after(step)),
                self._has_baseline.assign(True),
                self._examples.assign(0.0),
            ]
        with tf.control_dependencies(updates):
            return tf.identity(rate)

    def _next_due_after(self, step: tf.Tensor) -> tf.Tensor:
        if self._every_n_steps is None:
            return tf.constant(_NEVER, tf.int64)
        return step + self._every_n_steps

    def _record(self, step, elapsed_steps, elapsed_secs, examples) -> tf.Tensor:
        rate = elapsed_steps / elapsed_secs
        scalars = {self.tag: rate}
        if self._batch_size is not None:
            scalars[EXAMPLES_TAG] = rate * self._batch_size
        elif self._count_fn is not None:
            scalars[EXAMPLES_TAG] = examples / elapsed_secs
        if self._flops_per_step is not None and self._peak_flops_per_sec is not None:
            scalars[MFU_TAG] = rate * (self._flops_per_step / self._peak_flops_per_sec)
        written = write_scalars_in_graph(self._writer, step, scalars)
        if self._log:
            # as_string(shortest=True) formats with %g, as v1's log line.
            value = tf.strings.as_string(rate, shortest=True)
            line = tf.strings.join([self.tag, ": ", value])
            written.append(tf.print(line, output_stream=sys.stderr))
        with tf.control_dependencies(graph_ops(written)):
            return tf.identity(rate)

    def _no_record(self, step: tf.Tensor, now: tf.Tensor) -> tf.Tensor:
        """A trigger that only sets the baseline: the first call, or an
        empty interval. The first call may note `time_to_first_step`."""
        done = []
        if self._record_time_to_first_step:
            first = tf.logical_not(self._has_baseline)
            done.append(
                tf.cond(
                    first,
                    lambda: self._write_first_step_time(step, now),
                    lambda: tf.constant(False),
                )
            )
        with tf.control_dependencies(done):
            return tf.constant(NOT_RECORDED, tf.float64)

    def _write_first_step_time(self, step: tf.Tensor, now: tf.Tensor) -> tf.Tensor:
        seconds = now - self._start_time
        written = write_scalars_in_graph(
            self._writer, step, {TIME_TO_FIRST_STEP_TAG: seconds}
        )
        with tf.control_dependencies(graph_ops(written)):
            return tf.constant(True)
