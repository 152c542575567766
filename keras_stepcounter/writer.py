"""The one place that writes records to TensorBoard event files.

Every recorder hands its scalars to a `ScalarWriter`. It writes them through
`tf.summary` (v2 writers), flushes at once so a record is on disk before
training resumes, and never lets a write failure escape into training: the
first failure is logged as a warning, later ones quietly, and the next
successful write logs that writing resumed.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Optional

import tensorflow as tf

from keras_stepcounter.rates import tf_logger


def check_output_dir(output_dir: Any) -> Optional[str]:
    """Validates `output_dir` and creates it, so errors surface at construction."""
    if output_dir is None:
        return None
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(
            "output_dir must be a str or os.PathLike, got "
            f"{output_dir!r} of type {type(output_dir).__name__}."
        )
    path = os.fspath(output_dir)
    if not path:
        raise ValueError("output_dir must be a non-empty path, got ''.")
    if "://" in path:
        return path  # A remote filesystem (gs://, s3://): tf.io creates it.
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"output_dir {path!r} exists and is not a directory.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ValueError(f"output_dir {path!r} cannot be created: {error}") from error
    return path


def check_summary_writer(summary_writer: Any) -> None:
    if summary_writer is not None and not isinstance(
        summary_writer, tf.summary.SummaryWriter
    ):
        raise TypeError(
            "summary_writer must be a tf.summary.SummaryWriter (from "
            "tf.summary.create_file_writer), got "
            f"{summary_writer!r} of type {type(summary_writer).__name__}."
        )


class ScalarWriter:
    """Writes scalars at a step to a v2 summary writer and flushes.

    Args:
        output_dir: Directory to open a writer in (closed by `close`).
        summary_writer: A writer owned by the caller (never closed here).

    With neither, records go to the default writer active when they are
    taken (`with writer.as_default():`), or nowhere if there is none; the
    log line is written either way.
    """

    def __init__(
        self,
        output_dir: Optional[str] = None,
        summary_writer: Optional[tf.summary.SummaryWriter] = None,
    ) -> None:
        self._output_dir = output_dir
        self._given_writer = summary_writer
        self._owned_writer: Optional[tf.summary.SummaryWriter] = None
        self._failing = False

    def open(self) -> None:
        """Opens the writer for `output_dir`, if one is needed and not open."""
        if self._output_dir and self._owned_writer is None:
            try:
                self._owned_writer = tf.summary.create_file_writer(self._output_dir)
            except Exception as error:  # Training must go on.
                self._report_failure("open", error)

    def _writer(self) -> Optional[tf.summary.SummaryWriter]:
        if self._given_writer is not None:
            return self._given_writer
        if self._output_dir:
            self.open()
            return self._owned_writer
        return None

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes and flushes `scalars` at `step`; True if they reached a file."""
        try:
            writer = self._writer()
            if writer is None:
                self._write_to_default(step, scalars)
            else:
                with writer.as_default():
                    for tag, value in scalars.items():
                        tf.summary.scalar(tag, value, step=step)
                writer.flush()
        except Exception as error:  # Training must go on.
            self._report_failure("write", error)
            return False
        if self._failing:
            self._failing = False
            tf_logger.warning("keras_stepcounter: writing records resumed.")
        return True

    @staticmethod
    def _write_to_default(step: int, scalars: Dict[str, float]) -> None:
        for tag, value in scalars.items():
            tf.summary.scalar(tag, value, step=step)
        tf.summary.flush()

    def flush(self) -> None:
        writer = self._given_writer or self._owned_writer
        if writer is None:
            return
        try:
            writer.flush()
        except Exception as error:
            self._report_failure("flush", error)

    def close(self) -> None:
        """Flushes, and closes the writer if this object opened it."""
        self.flush()
        if self._owned_writer is not None:
            writer, self._owned_writer = self._owned_writer, None
            try:
                writer.close()
            except Exception as error:
                self._report_failure("close", error)

    def _report_failure(self, action: str, error: Exception) -> None:
        if self._failing:
            return
        self._failing = True
        warnings.warn(
            f"keras_stepcounter: could not {action} the summary writer "
            f"({type(error).__name__}: {error}); training goes on, and "
            "records are written again once this works.",
            RuntimeWarning,
            stacklevel=3,
        )


def check_v1_summary_writer(summary_writer: Any) -> None:
    """A v1 writer (anything with `add_summary`, as v1 hooks accepted), or None.

    A v2 `tf.summary.SummaryWriter` is refused by name: it writes through
    eager ops, which a graph-mode session hook cannot run cleanly.
    """
    if summary_writer is None:
        return
    if isinstance(summary_writer, tf.summary.SummaryWriter):
        raise TypeError(
            "summary_writer must be a v1 writer such as "
            "tf.compat.v1.summary.FileWriter, got a v2 tf.summary.SummaryWriter, "
            "which cannot write from a graph-mode session hook. Pass "
            "output_dir=... instead, or use keras_stepcounter.StepCounter "
            "in TF2 code."
        )
    if not callable(getattr(summary_writer, "add_summary", None)):
        raise TypeError(
            "summary_writer must be a v1 writer with an add_summary method "
            "(tf.compat.v1.summary.FileWriter), got "
            f"{summary_writer!r} of type {type(summary_writer).__name__}."
        )


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
        self._failing = False

    def open(self) -> None:
        """Gets the cached writer for `output_dir` (v1 did this in `begin`).

        Needs graph mode: `FileWriter` refuses eager execution.
        """
        if self._writer is None and self._output_dir:
            try:
                self._writer = tf.compat.v1.summary.FileWriterCache.get(self._output_dir)
            except Exception as error:  # Training must go on.
                self._report_failure("open", error)

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
            self._report_failure("write", error)
            return False
        if self._failing:
            self._failing = False
            tf_logger.warning("keras_stepcounter: writing records resumed.")
        return True

    def flush(self) -> None:
        if self._writer is None:
            return
        try:
            self._flush_writer()
        except Exception as error:
            self._report_failure("flush", error)

    def _flush_writer(self) -> None:
        flush = getattr(self._writer, "flush", None)
        if callable(flush):  # v1 accepted any object with add_summary.
            flush()

    def _report_failure(self, action: str, error: Exception) -> None:
        if self._failing:
            return
        self._failing = True
        warnings.warn(
            f"keras_stepcounter: could not {action} the v1 summary writer "
            f"({type(error).__name__}: {error}); training goes on, and "
            "records are written again once this works.",
            RuntimeWarning,
            stacklevel=3,
        )
