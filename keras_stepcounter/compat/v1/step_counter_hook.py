"""`StepCounterHook`: TF1's hook of the same name, on the shared core."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

# TF1's hook logs through this module, and code written for it (TF's own
# tests among it) patches `tf_logging.info` / `tf_logging.log_first_n`
# there; `tf.compat.v1.logging` holds copies bound at import, which such
# patches do not reach. So this hook calls through the module, at call time.
from tensorflow.python.platform import tf_logging

from keras_stepcounter.compat.v1.timer import SecondOrStepTimer
from keras_stepcounter.core import checks as _checks
from keras_stepcounter.core.options import DEFAULT_TAG, RecorderOptions
from keras_stepcounter.core.rates import (
    STALL_MESSAGE,
    RateTracker,
    interval_scalars,
    log_rate,
)
from keras_stepcounter.writer import V1ScalarWriter, check_writer_arguments

_NO_GLOBAL_STEP = "Global step should be created to use StepCounterHook."


class StepCounterHook(tf.compat.v1.train.SessionRunHook):
    """Hook that counts steps per second (a drop-in for TF1's).

    Same records as `tf.compat.v1.train.StepCounterHook` in the same
    session: the first trigger sets a baseline; after it, every
    `every_n_steps` global steps (or `every_n_secs` seconds) it writes
    `steps / seconds` since the last trigger as the scalar
    `<global step op name>/sec` (`global_step/sec` by default) at the global
    step, and logs `global_step/sec: <value>` through TensorFlow's logger.
    If the global step does not increase it logs v1's warning, at most 5
    times per process (v1's `log_first_n`).

    TF1's override points keep TF1's names and signatures, so subclasses
    written for TF1's hook work: `_log_and_record(elapsed_steps,
    elapsed_time, global_step)` is called for each record, and
    `_summary_tag`, `_summary_writer` (the cached `FileWriter` once begun),
    `_output_dir`, `_timer`, `_steps_per_run`, `_set_steps_per_run` and
    `_last_global_step` are there. The clock is TF1's, `time.time()`,
    looked up when called.

    What differs from v1, on purpose: the baseline time is re-taken after a
    record is written, so writing is not charged to training; each record
    is flushed to disk before training resumes, and `end` flushes; a zero
    or negative interval (a wall-clock jump) records nothing; a global step
    that goes back records nothing for that interval and warns once; bad
    arguments fail here rather than during training.

    Unlike `StepCounter`, it writes no TensorBoard Custom Scalars layout:
    v1's `FileWriter` for `output_dir` is shared by every v1 writer of the
    process there, so the event file is not the hook's own, and the hook
    writes one scalar, which the Scalars tab already shows as one chart.

    Args:
        every_n_steps: Record every N global steps. Default 100.
        every_n_secs: Record every N seconds instead (pass
            `every_n_steps=None`, as in v1).
        output_dir: Directory to write to, through the process-wide v1
            `FileWriter` for it (`tf.compat.v1.summary.FileWriterCache`),
            as v1 did.
        summary_writer: A v1 `tf.compat.v1.summary.FileWriter` (or any
            object with `add_summary`) of yours; takes precedence over
            `output_dir`. A v2 `tf.summary.SummaryWriter` is refused with a
            `TypeError`: use `output_dir`. With neither, only the log line
            is written.
        tag: Tag of the scalar and the log line (keyword-only), exactly as
            given. Default, as in v1: the global step op's name + `/sec`.

    Example:

    ```python
    from keras_stepcounter.compat.v1 import StepCounterHook

    hook = StepCounterHook(every_n_steps=100, output_dir="logs/train")
    with tf.compat.v1.train.MonitoredTrainingSession(hooks=[hook]) as sess:
        while not sess.should_stop():
            sess.run(train_op)
    ```
    """

    def __init__(
        self,
        every_n_steps: Optional[int] = 100,
        every_n_secs: Optional[float] = None,
        output_dir: Optional[str] = None,
        summary_writer: Any = None,
        *,
        tag: Optional[str] = None,
    ) -> None:
        _checks.check_every(every_n_steps, every_n_secs, v1_message=True)
        options = RecorderOptions(
            every_n_steps=every_n_steps,
            every_n_secs=every_n_secs,
            tag=DEFAULT_TAG if tag is None else tag,
        )
        output_dir_path = check_writer_arguments(output_dir, summary_writer, v1=True)
        self._fixed_tag = tag
        self._timer = SecondOrStepTimer(
            every_secs=options.every_n_secs, every_steps=options.every_n_steps
        )
        self._rates = RateTracker(self._timer)
        self._sink = V1ScalarWriter(output_dir_path, summary_writer)
        self._given_summary_writer = summary_writer
        self._summary_writer = summary_writer
        self._output_dir = output_dir
        self._summary_tag = options.tag
        self._global_step_tensor: Optional[tf.Tensor] = None
        self._last_global_step: Optional[int] = None
        self._steps_per_run = 1

    @property
    def every_n_steps(self) -> Optional[int]:
        return self._timer.every_steps

    @property
    def every_n_secs(self) -> Optional[float]:
        return self._timer.every_secs

    @property
    def output_dir(self) -> Optional[str]:
        return self._output_dir

    @property
    def summary_writer(self) -> Any:
        """The `summary_writer` given to the constructor."""
        return self._given_summary_writer

    @property
    def tag(self) -> str:
        """The scalar's tag: `tag=`, else the global step op's name + `/sec`
        once begun."""
        return self._summary_tag

    def _set_steps_per_run(self, steps_per_run: int) -> None:
        """Global steps one `session.run` advances (TPU/Estimator loops)."""
        self._steps_per_run = _checks.check_positive_int("steps_per_run", steps_per_run)

    def begin(self) -> None:
        if self._summary_writer is None:
            self._summary_writer = self._sink.open()
        self._global_step_tensor = global_step_read()
        if self._global_step_tensor is None:
            raise RuntimeError(_NO_GLOBAL_STEP)
        if self._fixed_tag is None:
            self._summary_tag = tf.compat.v1.train.get_global_step().op.name + "/sec"

    def after_create_session(self, session: Any, coord: Any) -> None:
        """Keeps the baseline across session re-creation, as v1 did."""

    def before_run(self, run_context: Any) -> tf.compat.v1.train.SessionRunArgs:
        return tf.compat.v1.train.SessionRunArgs(self._global_step_tensor)

    def _log_and_record(self, elapsed_steps: int, elapsed_time: float, global_step: int) -> None:
        """Writes and logs one record (TF1's override point, same signature).

        Called once per record with the interval's steps and seconds and the
        global step to record at. The hook flushes `_summary_writer`
        afterwards, and the time spent here is not charged to training.
        """
        scalars = interval_scalars(self._summary_tag, elapsed_steps, elapsed_time)
        if self._summary_writer is not None:
            self._sink.writer = self._summary_writer  # A subclass may set its own.
            self._sink.write(global_step, scalars)
        log_rate(self._summary_tag, scalars[self._summary_tag], tf_logging.info)

    def _record_interval(
        self, global_step: int, elapsed_steps: int, elapsed_time: float, examples: float
    ) -> None:
        """A due interval: `_log_and_record`, then a flush; the time both
        take is not charged to training."""
        self._log_and_record(elapsed_steps, elapsed_time, global_step)
        self._flush_writer()
        self._timer.restart_clock()

    def after_run(self, run_context: Any, run_values: Any) -> None:
        # The fetched step is stale (read alongside the train op); only when
        # a trigger may be due, or the step went back, is the real step read.
        stale_global_step = run_values.results
        if self._timer.should_trigger_for_step(
            stale_global_step + self._steps_per_run
        ) or self._below_baseline(stale_global_step):
            global_step = run_context.session.run(self._global_step_tensor)
            interval = self._rates.interval(global_step)
            if interval is not None:
                self._record_interval(global_step, *interval)
        # As v1: compare stale steps, not the timer's, and warn through
        # log_first_n (5 times per process).
        if stale_global_step == self._last_global_step:
            tf_logging.log_first_n(
                tf_logging.WARN, STALL_MESSAGE, 5, stale_global_step, self._last_global_step
            )
        self._last_global_step = stale_global_step

    def end(self, session: Any) -> None:
        self._flush_writer()

    def _flush_writer(self) -> None:
        self._sink.writer = self._summary_writer  # A subclass may set its own.
        self._sink.flush()

    def _below_baseline(self, step: int) -> bool:
        baseline = self._timer.last_triggered_step()
        return baseline is not None and step < baseline


def global_step_read() -> Optional[tf.Tensor]:
    """The read of the global step that v1 hooks fetch, or None without one.

    TensorFlow's hooks, and this one, all fetch the same cached read tensor
    of the default graph (created on first use, under the global step's
    name scope), so they see the same stale step in a `session.run`. That
    read runs in parallel with your train op unless the train op depends on
    it: build the model under `tf.control_dependencies([global_step_read()])`,
    as Estimator did, and the fetched step is always the value before the
    step (otherwise v1's "global step has not been increased" warning can
    appear spuriously, in TF1 as here).

    Example:

    ```python
    global_step = tf.compat.v1.train.get_or_create_global_step()
    with tf.control_dependencies([global_step_read()]):
        train_op = optimizer.minimize(loss, global_step=global_step)
    ```
    """
    try:
        from tensorflow.python.training import training_util

        return training_util._get_or_create_global_step_read()
    except (ImportError, AttributeError):  # A TensorFlow without the helper.
        global_step = tf.compat.v1.train.get_global_step()
        return None if global_step is None else tf.identity(global_step)
