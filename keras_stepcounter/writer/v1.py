"""`V1ScalarWriter`: v1 `Summary` protos through a v1 `FileWriter`."""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

from keras_stepcounter.writer._failures import FailureReporter
from keras_stepcounter.writer.checks import opens_own_writer


class V1ScalarWriter:
    """Writes scalars as v1 `Summary` protos through a v1 `FileWriter`.

    The writer of `compat.v1.StepCounterHook`, chosen as v1 does: the
    caller's `summary_writer`, else the process-wide writer for
    `output_dir` from `tf.compat.v1.summary.FileWriterCache` (shared with
    other v1 hooks); neither is closed here. Unlike v1, the hook flushes
    after each record; a failure never escapes (one warning per outage).

    Args:
        output_dir: Directory whose cached `FileWriter` to use.
        summary_writer: A v1 writer (with `add_summary`) owned by the caller.

    Attributes:
        writer: The v1 writer written to, or None (no writer: nothing is
            written). The hook sets it to its `_summary_writer`, TF's
            override point, before each record.
    """

    def __init__(self, output_dir: Optional[str] = None, summary_writer: Any = None) -> None:
        self._output_dir = output_dir
        self.writer = summary_writer
        self._failures = FailureReporter("v1 summary writer")

    def open(self) -> Any:
        """Gets the cached writer for `output_dir` (v1 did this in `begin`)
        and returns it (None without one). Needs graph mode: `FileWriter`
        refuses eager execution."""
        if opens_own_writer(self._output_dir, self.writer):
            try:
                self.writer = tf.compat.v1.summary.FileWriterCache.get(self._output_dir)
            except Exception as error:  # Training must go on.
                self._failures.failed("open", error)
        return self.writer

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Adds `scalars` at `step` as one `Summary`; True if written.

        Not flushed here: the hook flushes once per record, after any
        summaries a subclass's `_log_and_record` added too.
        """
        if self.writer is None:
            return False
        summary = tf.compat.v1.Summary(
            value=[
                tf.compat.v1.Summary.Value(tag=tag, simple_value=value)
                for tag, value in scalars.items()
            ]
        )
        try:
            self.writer.add_summary(summary, step)
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)
            return False
        self._failures.succeeded()
        return True

    def flush(self) -> None:
        flush = getattr(self.writer, "flush", None)
        if not callable(flush):  # No writer, or v1's any-object-with-add_summary.
            return
        try:
            flush()
        except Exception as error:
            self._failures.failed("flush", error)
