"""`GraphStepCounter`: steps per second recorded from inside a `tf.function`."""

from __future__ import annotations

from typing import Any, Callable, Optional

import tensorflow as tf

from keras_stepcounter.core import checks as _checks
from keras_stepcounter.core.options import DEFAULT_TAG, RecorderOptions
from keras_stepcounter.dashboard import DashboardTags
from keras_stepcounter.graph_trigger import NOT_RECORDED, GraphTrigger
from keras_stepcounter.writer import check_writer_arguments, opens_own_writer
from keras_stepcounter.writer.in_graph import check_not_in_xla, one_op_function
from keras_stepcounter.writer.summary import write_layout

__all__ = ["GraphStepCounter", "NOT_RECORDED"]


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
    `global_step/sec: <value>` to stderr with `tf.print`. Records are
    written whatever `tf.summary.record_if` condition is active, under the
    tags exactly as given, whatever `tf.name_scope` is active.

    A step below the last baseline step (a restore, an `assign`) records
    nothing for that interval, becomes the new baseline, and prints one
    warning naming both steps to stderr (`tf.print`: a graph cannot reach
    Python's logger). `StepCounter` compares with the last step it read;
    this compares with the baseline step only, as keeping the last step
    seen would cost a variable write on every call.

    With a writer (`output_dir` or `summary_writer`), the counter writes
    a TensorBoard Custom Scalars layout of its tags there once, when
    created (with neither, the writer is only known at trace time, and no
    layout is written).

    State lives in `tf.Variable`s and time comes from `tf.timestamp()`: no
    Python, no host round trip, no retracing; the baseline carries over
    between calls of the calling function (`reset()` starts a new one). It
    also works eagerly. Create it outside any `tf.function`. It cannot run
    under XLA (`jit_compile=True`, TPU: no kernels for `tf.timestamp()` and
    summaries): a `RuntimeError` at trace time says so.

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
        batch_size: Global examples per step; adds `examples/sec`
            (`steps/sec * batch_size`) at every record.
        count_fn: `count_fn(batch) -> tensor`, the examples (or tokens) in
            a batch, in graph ops; adds `examples/sec` (their sum since the
            last record over its seconds) at every record, 0 included. Runs
            on every call. At most one of `batch_size` and `count_fn`.
        flops_per_step: FLOPs of one training step; with
            `peak_flops_per_sec`, adds `mfu`.
        peak_flops_per_sec: Peak FLOP/s of the hardware.
        time_to_first_step: Record `time_to_first_step`: the seconds from
            the start of the run (the counter's creation, or the last
            `reset()`) to the end of the first step (the first call after
            it), tracing and compiling of the calling function included,
            written at that first step. `StepCounter` means the same, from
            `on_train_begin` (or entering `track()`).
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
        self.options = RecorderOptions.pick(locals())
        _checks.check_bool("log", log)
        self.tag = self.options.tag
        output_dir = check_writer_arguments(output_dir, summary_writer)
        self._owns_writer = opens_own_writer(output_dir, summary_writer)
        self._writer = (
            tf.summary.create_file_writer(output_dir)
            if self._owns_writer
            else summary_writer
        )
        if self._writer is not None:
            write_layout(self._writer, DashboardTags.of(self.options))
        with self.name_scope:
            self._rule = GraphTrigger(self.options, self._writer, log, name="trigger")
        self._run_trigger = (
            self._trigger_as_one_op() if self._writer is not None else self._rule.trigger
        )

    def _trigger_as_one_op(self) -> Callable[[tf.Tensor], tf.Tensor]:
        """The trigger as one never-inlined function call (`one_op_function`).

        Not without a writer of its own: the counter then writes to the
        default writer at the caller's trace time, which a separately
        traced function would not follow.
        """
        return one_op_function(self._rule.trigger, tf.TensorSpec([], tf.int64))

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
        check_not_in_xla()
        step = tf.cast(step, tf.int64)
        if self.options.count_fn is not None:
            self._rule.count_examples(self.options.count_fn(batch))
        return tf.cond(
            self._rule.is_due(step),
            lambda: self._run_trigger(step),
            lambda: tf.constant(NOT_RECORDED, tf.float64),
        )

    def reset(self) -> None:
        """Starts a new run: the next call sets a new baseline, records
        nothing (but `time_to_first_step`, counted from now).

        Call it (eagerly, or inside a function) before a run whose gap to
        the last call should not count, e.g. after evaluation.
        """
        self._rule.reset()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flushes, and closes the writer if the counter opened it."""
        self.flush()
        if self._owns_writer and self._writer is not None:
            self._writer.close()
