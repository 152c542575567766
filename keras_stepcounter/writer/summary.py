"""`ScalarWriter`, the sink of `StepCounter`, and its `tf.summary` path.

Every sink has the same four methods: `open()` (idempotent and cheap when
open), `write(step, scalars) -> bool` (flushed before it returns; False
when the record was lost, which warned), `flush()` and `close()`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
import tensorflow as tf
from tensorboard.plugins.scalar import metadata as scalar_metadata

from keras_stepcounter.writer._failures import FailureReporter
from keras_stepcounter.writer.event_file import EventFileSink

# What makes TensorBoard show a tensor summary as a scalar; the metadata
# `tf.summary.scalar` writes.
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(
    display_name=None, description=None
).SerializeToString()


class SummarySink:
    """Writes scalars through a v2 `tf.summary` writer, flushed at once.

    Args:
        summary_writer: A writer owned by the caller (flushed, never
            closed), or None for the default writer active when a record
            is taken (`with writer.as_default():`); with none active the
            record goes nowhere.

    Tags are written exactly as given: `tf.summary.write` with the scalar
    plugin's metadata, which is what `tf.summary.scalar` writes, without
    the prefix of the active `tf.name_scope` that `tf.summary.scalar`
    would add. Values and steps go in as numpy values, not Python numbers,
    which TF would cache as a constant each (memory growing per record).
    """

    def __init__(self, summary_writer: Optional[tf.summary.SummaryWriter] = None) -> None:
        self._writer = summary_writer
        self._failures = FailureReporter("summary writer")

    def open(self) -> None:
        """Nothing to open: the writer is the caller's."""

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes and flushes `scalars` at `step`; True if no error came."""
        try:
            if self._writer is None:
                self._write_all(step, scalars)
                tf.summary.flush()
            else:
                with self._writer.as_default():  # Flushes on exit.
                    self._write_all(step, scalars)
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)
            return False
        self._failures.succeeded()
        return True

    @staticmethod
    def _write_all(step: int, scalars: Dict[str, float]) -> None:
        # record_if(True): Keras's TensorBoard callback with an integer
        # update_freq leaves `record_if(its step % freq == 0)` active around
        # every batch, which would drop our records.
        step_value = np.asarray(step, np.int64)
        with tf.summary.record_if(True):
            for tag, value in scalars.items():
                tf.summary.write(
                    tag,
                    np.asarray(value, np.float32),
                    step=step_value,
                    metadata=_SCALAR_METADATA,
                )

    def flush(self) -> None:
        try:
            if self._writer is not None:
                self._writer.flush()
        except Exception as error:
            self._failures.failed("flush", error)

    def close(self) -> None:
        """Flushes; the caller's writer stays open."""
        self.flush()

    def __deepcopy__(self, memo: Dict[int, Any]) -> "SummarySink":
        """Shares the caller's writer (a writer cannot be copied)."""
        return SummarySink(self._writer)


class ScalarWriter:
    """The sink `StepCounter` writes its records to.

    Args:
        output_dir: Directory for an event file of its own, written
            directly (`EventFileSink`: a record costs microseconds).
        summary_writer: A `tf.summary` writer of the caller's, written
            through `tf.summary` (`SummarySink`); never closed here.

    With neither, records go through `tf.summary` to the default writer
    active when they are taken, or nowhere if there is none; the log line
    is written either way. A given `summary_writer` wins over
    `output_dir`.
    """

    def __init__(
        self,
        output_dir: Optional[str] = None,
        summary_writer: Optional[tf.summary.SummaryWriter] = None,
    ) -> None:
        self.sink: Union[EventFileSink, SummarySink] = (
            EventFileSink(output_dir)
            if output_dir and summary_writer is None
            else SummarySink(summary_writer)
        )

    def open(self) -> None:
        """Opens the event file, if there is one and it is not open."""
        self.sink.open()

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes and flushes `scalars` at `step`; True if they were written."""
        return self.sink.write(step, scalars)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        """Flushes, and closes the event file if this object opened one."""
        self.sink.close()

