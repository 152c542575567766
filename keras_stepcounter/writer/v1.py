"""`V1ScalarWriter`: v1 `Summary` protos through a v1 `FileWriter`."""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf

from keras_stepcounter.writer._failures import FailureReporter


class V1ScalarWriter:
    """Writes scalars as v1 `Summary` protos through a v1 `FileWriter`, and flushes.

    The writer of `compat.v1.StepCounterHook`, with v1's choice of writer:
    the caller's `summary_writer` if given (flushed, never closed), else the
    process-wide writer for `output_dir` from
    `tf.compat.v1.summary.FileWriterCache` (shared with other v1 hooks
    writing there, so also never closed here). Unlike v1 it flushes after
    each record, and like `ScalarWriter` a failure never escapes: the first
    is a `RuntimeWarning`, and writing resumes when it works again.

    Args:
        output_dir: Directory whose cached `FileWriter` to use.
        summary_writer: A v1 writer (with `add_summary`) owned by the caller.
    """

    def __init__(self, output_dir: Optional[str] = None, summary_writer: Any = None) -> None:
        self._output_dir = output_dir
        self._writer = summary_writer
        self._failures = FailureReporter("v1 summary writer")

    def open(self) -> None:
        """Gets the cached writer for `output_dir` (v1 did this in `begin`).

        Needs graph mode: `FileWriter` refuses eager execution.
        """
        if self._writer is None and self._output_dir:
            try:
                self._writer = tf.compat.v1.summary.FileWriterCache.get(self._output_dir)
            except Exception as error:  # Training must go on.
                self._failures.failed("open", error)

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Adds `scalars` at `step` as one `Summary` and flushes; True if written."""
        self.open()
        if self._writer is None:
            return False
        summary = tf.compat.v1.Summary(
            value=[
                tf.compat.v1.Summary.Value(tag=tag, simple_value=value)
                for tag, value in scalars.items()
            ]
        )
        try:
            self._writer.add_summary(summary, step)
            self._flush_writer()
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)
            return False
        self._failures.succeeded()
        return True

    def flush(self) -> None:
        if self._writer is None:
            return
        try:
            self._flush_writer()
        except Exception as error:
            self._failures.failed("flush", error)

    def _flush_writer(self) -> None:
        flush = getattr(self._writer, "flush", None)
        if callable(flush):  # v1 accepted any object with add_summary.
            flush()
