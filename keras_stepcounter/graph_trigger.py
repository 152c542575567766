"""`GraphTrigger`: TF1's trigger rule and the rate record, in graph ops.

The state and ops behind `GraphStepCounter`: the baseline in variables,
the per-call test, and the branch that records (or only sets a baseline).
`GraphStepCounter` is the adapter users call; this is the graph it runs.
"""

from __future__ import annotations

import time
from typing import Any, List, Optional

import tensorflow as tf

from keras_stepcounter.core.options import RecorderOptions
from keras_stepcounter.core.rates import interval_scalars
from keras_stepcounter.core.tags import TIME_TO_FIRST_STEP_TAG
from keras_stepcounter.writer.in_graph import (
    after,
    graph_ops,
    print_rate_line,
    print_went_back_warning,
    write_scalars_in_graph,
)

NOT_RECORDED = float("nan")

# Before a baseline: every step is due (step >= _NO_BASELINE + every_n_steps)
# and none is below it.
_NO_BASELINE = tf.int64.min
# `_state`: [baseline time, has a baseline (0/1), run start time], one
# variable so that the trigger branch captures one handle, not three.
_LAST_TIME, _HAS_BASELINE, _START_TIME = 0, 1, 2


class GraphTrigger(tf.Module):
    """The v1 trigger rule over `tf.Variable`s, and the record it leads to.

    Time comes from `tf.timestamp()` (wall-clock epoch seconds: TF has no
    monotonic clock op). Create it outside any `tf.function`.

    Args:
        options: The validated recorder options (tag, trigger, extras).
        writer: The summary writer to record to, or None for the default
            writer active when the caller is traced.
        log: Print the v1 log line on each record.

    Example:

    ```python
    trigger = GraphTrigger(RecorderOptions(every_n_steps=100), writer, log=True)
    rate = tf.cond(trigger.is_due(step), lambda: trigger.trigger(step),
                   lambda: tf.constant(NOT_RECORDED, tf.float64))
    ```
    """

    def __init__(
        self,
        options: RecorderOptions,
        writer: Optional[tf.summary.SummaryWriter],
        log: bool,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name=name)
        self.options, self._writer, self._log = options, writer, log
        with self.name_scope:
            self._last_step = tf.Variable(
                tf.constant(_NO_BASELINE, tf.int64), trainable=False, name="last_step"
            )
            # Wall-clock epoch seconds, comparable with tf.timestamp().
            self._state = tf.Variable(
                tf.constant([0.0, 0.0, time.time()], tf.float64),
                trainable=False,
                name="state",
            )
            self._examples = tf.Variable(
                tf.constant(0.0, tf.float64), trainable=False, name="examples"
            )

    def count_examples(self, examples: Any) -> None:
        self._examples.assign_add(tf.cast(examples, tf.float64))

    def reset(self) -> None:
        """Forgets the baseline; the run's start time is now."""
        self._last_step.assign(_NO_BASELINE)
        self._examples.assign(0.0)
        self._state.assign(tf.stack([0.0, 0.0, tf.timestamp()]))

    def is_due(self, step: tf.Tensor) -> tf.Tensor:
        """The v1 trigger rule, or a step below the baseline, as a bool.

        Runs on every call, so it reads one variable: before a baseline the
        baseline step is INT64_MIN, below any step (every step is due).
        """
        last_step = self._last_step.read_value()
        went_back = step < last_step
        every_n_steps = self.options.every_n_steps
        if every_n_steps is not None:
            return tf.logical_or(step >= last_step + every_n_steps, went_back)
        last_time = self._state[_LAST_TIME]
        due_by_time = tf.logical_and(
            tf.timestamp() >= last_time + self.options.every_n_secs,
            tf.not_equal(step, last_step),
        )
        return tf.logical_or(due_by_time, went_back)

    def trigger(self, step: tf.Tensor) -> tf.Tensor:
        """Records if the interval is recordable, else only sets the
        baseline; the recorded rate, or `NOT_RECORDED`."""
        state = self._state.read_value()
        last_step = self._last_step.read_value()
        now = tf.timestamp()
        elapsed_secs = now - state[_LAST_TIME]
        # In float64: before a baseline, step - INT64_MIN would overflow.
        elapsed_steps = tf.cast(step, tf.float64) - tf.cast(last_step, tf.float64)
        has_baseline = state[_HAS_BASELINE] > 0.0
        recordable = tf.logical_and(
            has_baseline, tf.logical_and(elapsed_secs > 0.0, elapsed_steps > 0.0)
        )
        rate = tf.cond(
            recordable,
            lambda: self._record(step, elapsed_steps, elapsed_secs),
            lambda: self._no_record(step, now, state, last_step),
        )
        # The baseline time is taken after the record is written and
        # flushed: recording is not training.
        with tf.control_dependencies([rate]):
            updates = [
                self._state.assign(
                    tf.stack([tf.timestamp(), 1.0, state[_START_TIME]])
                ),
                self._last_step.assign(step),
            ]
            # Only touched with a count_fn: each variable the branch uses is
            # one more input switched on every call.
            if self.options.count_fn is not None:
                updates.append(self._examples.assign(0.0))
        with tf.control_dependencies(updates):
            return tf.identity(rate)

    def _record(
        self, step: tf.Tensor, elapsed_steps: tf.Tensor, elapsed_secs: tf.Tensor
    ) -> tf.Tensor:
        options = self.options
        scalars = interval_scalars(
            options.tag,
            elapsed_steps,
            elapsed_secs,
            self._examples.read_value() if options.count_fn is not None else None,
            batch_size=options.batch_size,
            mfu_per_step_rate=options.mfu_per_step_rate,
        )
        rate = scalars[options.tag]
        written = write_scalars_in_graph(self._writer, step, scalars)
        if self._log:
            written.append(print_rate_line(options.tag, rate))
        with tf.control_dependencies(graph_ops(written)):
            return tf.identity(rate)

    def _no_record(
        self, step: tf.Tensor, now: tf.Tensor, state: tf.Tensor, last_step: tf.Tensor
    ) -> tf.Tensor:
        """A trigger that only sets the baseline: the first call (which may
        note `time_to_first_step`), a step that went back (which warns), or
        an empty interval."""
        done: List[Any] = []
        has_baseline = state[_HAS_BASELINE] > 0.0
        if self.options.time_to_first_step:
            done.append(
                tf.cond(
                    has_baseline,
                    lambda: tf.constant(False),
                    lambda: after(*write_scalars_in_graph(
                        self._writer, step, {TIME_TO_FIRST_STEP_TAG: now - state[_START_TIME]}
                    )),
                )
            )
        done.append(
            tf.cond(
                tf.logical_and(has_baseline, step < last_step),
                lambda: after(print_went_back_warning(last_step, step)),
                lambda: tf.constant(False),
            )
        )
        with tf.control_dependencies(done):
            return tf.constant(NOT_RECORDED, tf.float64)
