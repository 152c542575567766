"""`ScalarWriter`: eager writes through a v2 `tf.summary` writer."""

from __future__ import annotations

import os
from typing import Dict, Optional, Set

import tensorflow as tf

from keras_stepcounter.writer._failures import FailureReporter


class ScalarWriter:
    """Writes scalars at a step to a v2 summary writer and flushes.

    Args:
        output_dir: Directory to open a writer in (closed by `close`).
        summary_writer: A writer owned by the caller (never closed here).

    With neither, records go to the default writer active when they are
    taken (`with writer.as_default():`), or nowhere if there is none; the
    log line is written either way.

    A writer keeps its event file open, so if the file or `output_dir` is
    removed during training its writes would vanish into an unlinked file
    without an error. Before each record, the writer opened here checks
    (one `stat`) that its event file still exists; if not, it closes that
    writer and opens a new event file, once `output_dir` exists again. It
    does not re-create a directory removed during training (it may be gone
    on purpose, or a disk unmounted); until it is back, records fail (one
    warning) and are lost. A writer the caller gave, and the default
    writer, are the caller's: this cannot see their files, so their
    records go wherever those writers put them.
    """

    def __init__(
        self,
        output_dir: Optional[str] = None,
        summary_writer: Optional[tf.summary.SummaryWriter] = None,
    ) -> None:
        self._output_dir = output_dir
        self._given_writer = summary_writer
        self._owned_writer: Optional[tf.summary.SummaryWriter] = None
        self._event_file: Optional[str] = None  # The owned writer's file.
        self._failures = FailureReporter("summary writer")

    def open(self) -> None:
        """Opens the writer for `output_dir`, if one is needed and not open."""
        if self._output_dir and self._owned_writer is None:
            try:
                self._open_owned_writer()
            except Exception as error:  # Training must go on.
                self._failures.failed("open", error)

    def _open_owned_writer(self) -> None:
        before = self._local_event_files()
        self._owned_writer = tf.summary.create_file_writer(self._output_dir)
        # TF names the file itself; the one that appeared is ours.
        new = self._local_event_files() - before
        self._event_file = new.pop() if len(new) == 1 else None

    def _local_event_files(self) -> Set[str]:
        if "://" in self._output_dir or not os.path.isdir(self._output_dir):
            return set()  # Remote filesystems are not checked.
        return {
            os.path.join(self._output_dir, name)
            for name in os.listdir(self._output_dir)
            if "tfevents" in name
        }

    def _writer(self) -> Optional[tf.summary.SummaryWriter]:
        if self._given_writer is not None:
            return self._given_writer
        if not self._output_dir:
            return None
        if self._event_file is not None and not os.path.exists(self._event_file):
            self._drop_owned_writer()
        if self._owned_writer is None:
            if "://" not in self._output_dir and not os.path.isdir(self._output_dir):
                raise FileNotFoundError(
                    f"output_dir {self._output_dir!r} is not a directory any more"
                )
            self._open_owned_writer()
        return self._owned_writer

    def _drop_owned_writer(self) -> None:
        writer, self._owned_writer, self._event_file = self._owned_writer, None, None
        try:
            writer.close()  # Its file is gone; only its handle is freed.
        except Exception:  # Nothing left to lose.
            pass

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes and flushes `scalars` at `step`; True if they reached a file."""
        try:
            writer = self._writer()
            if writer is None:
                self._write_to_default(step, scalars)
            else:
                # record_if(True): Keras's TensorBoard callback with an
                # integer update_freq leaves `record_if(its step % freq == 0)`
                # active around every batch, which would drop our records.
                with writer.as_default(), tf.summary.record_if(True):
                    for tag, value in scalars.items():
                        tf.summary.scalar(tag, value, step=step)
                writer.flush()
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)
            return False
        self._failures.succeeded()
        return True

    @staticmethod
    def _write_to_default(step: int, scalars: Dict[str, float]) -> None:
        with tf.summary.record_if(True):  # As in `write`.
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
            self._failures.failed("flush", error)

    def close(self) -> None:
        """Flushes, and closes the writer if this object opened it."""
        self.flush()
        if self._owned_writer is not None:
            writer, self._owned_writer = self._owned_writer, None
            self._event_file = None
            try:
                writer.close()
            except Exception as error:
                self._failures.failed("close", error)
