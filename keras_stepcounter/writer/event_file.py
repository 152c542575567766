"""`EventFileSink`: scalar records written straight to an event file."""

from __future__ import annotations

import atexit
import itertools
import os
import socket
import time
import weakref
from typing import Any, Callable, Dict, Optional

import tensorflow as tf

from keras_stepcounter.dashboard import DashboardTags, dashboard_summary
from keras_stepcounter.summary_protos import text_summary
from keras_stepcounter.writer._failures import FailureReporter
from keras_stepcounter.writer.event_records import (
    file_version_record,
    scalar_record,
    summary_record,
)

# How often (seconds, at most) a record checks that its event file still
# has a name; see `EventFileSink`. Tests set it to 0 to check every record.
RECHECK_SECS = 1.0

# Event file names: TF's pattern (events.out.tfevents.<secs>.<host>.<pid>.
# <n><suffix>) with a suffix of our own, so no name can clash with a file
# that a tf.summary writer of this process opens in the same second.
FILE_SUFFIX = ".stepcounter.v2"
_file_numbers = itertools.count()


class EventFileSink:
    """Writes scalar records to an event file of its own, one flush a record.

    The file is a standard TensorBoard event file: a `file_version` header
    first, then one `Event` per scalar, byte for byte what
    `tf.summary.scalar(tag, value, step=step)` writes (summary metadata of
    the "scalars" plugin, a float32 tensor) except the wall time, through
    TF's public `tf.io.TFRecordWriter`. The tag is written exactly as given,
    whatever `tf.name_scope` is active. Each `write` flushes, so a record
    is in the operating system's hands (it survives SIGKILL of the process)
    before `write` returns. A record costs microseconds, where an eager
    `tf.summary.scalar` costs hundreds (benchmarks/README.md).

    One file serves every `write` from `open` to `close`; `open` is cheap
    and does nothing when the file is open and still exists. `close` happens when called, or at
    interpreter exit for a sink still open then (the exit hook does not
    keep the sink alive).

    A removed directory: an open file that loses its name (its directory
    removed, or the file deleted) takes writes without an error, and they
    are lost. So at most once per `recheck_secs` (1 s by default; one
    `os.stat` each time, never a directory listing) a record first checks
    that the file still exists; if not, it opens a new file, once
    `output_dir` exists again. It never re-creates a removed directory (it
    may be gone on purpose, or a disk unmounted): until the directory is
    back, every record fails (one `RuntimeWarning` per outage) and is lost.
    Records taken between a removal and the next check, that is within
    `recheck_secs` of the previous check, go to the nameless file and are
    lost without a warning (tests/test_event_file_sink.py shows exactly
    which). Remote paths (`gs://...`) are not checked.

    Failures (disk full, directory gone) never escape: `write` returns
    False, one `RuntimeWarning` per outage, and writing resumes when it
    works again.

    Given `dashboard`, each file it opens (a reopened one too) starts with
    the Custom Scalars layout of those tags, at step 0, after the header.
    `write_text` writes a Markdown text (TensorBoard's Text tab).

    Args:
        output_dir: The directory to write the event file in.
        recheck_secs: Seconds between checks that the file still exists;
            default `RECHECK_SECS`.
        clock: Monotonic clock for those checks (tests pass a fake one).
        dashboard: The tags the counter writes, for its layout; None
            writes no layout.
    """

    def __init__(
        self,
        output_dir: str,
        recheck_secs: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        dashboard: Optional[DashboardTags] = None,
    ) -> None:
        self._output_dir = output_dir
        self._dashboard = dashboard
        self._layout = None if dashboard is None else dashboard_summary(dashboard)
        self._local = "://" not in output_dir
        self._recheck_secs = RECHECK_SECS if recheck_secs is None else recheck_secs
        self._clock = clock
        self._file: Any = None  # A tf.io.TFRecordWriter while open.
        self._path: Optional[str] = None
        self._next_check = 0.0
        self._failures = FailureReporter("event file writer")

    @property
    def path(self) -> Optional[str]:
        """The event file being written, or None when closed."""
        return self._path

    def open(self) -> None:
        """Opens an event file in `output_dir`, unless one is open already.

        Called at the start of every `fit`, so it also checks (one `stat`)
        that the open file still exists, and opens a new one if not.
        """
        if self._file is not None:
            if self._still_named():
                return
            self.close()
        try:
            self._open_file()
        except Exception as error:  # Training must go on.
            self._failures.failed("open", error)

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes one record per scalar at `step` and flushes; True if written."""
        try:
            file = self._file_for_record()
            wall_time = time.time()
            for tag, value in scalars.items():
                file.write(scalar_record(wall_time, step, tag, value))
            file.flush()
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)
            return False
        self._failures.succeeded()
        return True

    def write_text(self, step: int, tag: str, markdown: str) -> bool:
        """Writes `markdown` as a text summary at `step` and flushes; True if
        written."""
        # Not shared with `write`: that is the per-record path, kept a frame
        # shorter.
        try:
            file = self._file_for_record()
            file.write(summary_record(time.time(), step, text_summary(tag, markdown)))
            file.flush()
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)
            return False
        self._failures.succeeded()
        return True

    def flush(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
        except Exception as error:
            self._failures.failed("flush", error)

    def close(self) -> None:
        """Flushes and closes the file; a later `open` or `write` opens a new one."""
        file, self._file, self._path = self._file, None, None
        _open_sinks.discard(self)
        if file is None:
            return
        try:
            file.close()
        except Exception as error:
            self._failures.failed("close", error)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "EventFileSink":
        """A closed sink on the same directory (an open file cannot be copied)."""
        return EventFileSink(
            self._output_dir, self._recheck_secs, self._clock, dashboard=self._dashboard
        )

    def _file_for_record(self) -> Any:
        if self._file is not None:
            now = self._clock()
            if now < self._next_check:
                return self._file
            self._next_check = now + self._recheck_secs
            if self._still_named():
                return self._file
            self.close()  # Its name is gone; only the handle is freed.
        if self._local and not os.path.isdir(self._output_dir):
            raise FileNotFoundError(
                f"output_dir {self._output_dir!r} is not a directory any more"
            )
        self._open_file()
        return self._file

    def _still_named(self) -> bool:
        return not self._local or os.path.exists(self._path or "")

    def _open_file(self) -> None:
        path = os.path.join(self._output_dir, _file_name())
        file = tf.io.TFRecordWriter(path)
        file.write(file_version_record(time.time()))
        if self._layout is not None:
            file.write(summary_record(time.time(), 0, self._layout))
        file.flush()
        self._file, self._path = file, path
        self._next_check = self._clock() + self._recheck_secs
        _open_sinks.add(self)


def _file_name() -> str:
    return (
        f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
        f"{os.getpid()}.{next(_file_numbers)}{FILE_SUFFIX}"
    )


# Sinks with a file open, closed at interpreter exit; weak, so that an
# unreachable sink is not kept alive for this (its file closes with it).
_open_sinks: "weakref.WeakSet[EventFileSink]" = weakref.WeakSet()


@atexit.register
def _close_open_sinks() -> None:
    for sink in list(_open_sinks):
        sink.close()


def highest_own_step(output_dir: str) -> Optional[int]:
    """The highest step recorded in `output_dir` by counters' own event files.

    Only files named as `EventFileSink` names them are read: another tool's
    event files in the same directory (Keras's `TensorBoard` callback, a
    user's `tf.summary` writer) are never opened, however large. Reading
    never raises (a damaged file gives what could be read).
    """
    from keras_stepcounter.tools.events import event_files, read_event_file

    highest: Optional[int] = None
    for path in event_files(output_dir):
        if not path.endswith(FILE_SUFFIX):
            continue
        for _, record in read_event_file(path).scalars:
            if highest is None or record.step > highest:
                highest = record.step
    return highest
