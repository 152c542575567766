"""`EventFileSink`: scalar records written straight to an event file."""

from __future__ import annotations

import atexit
import contextlib
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
from keras_stepcounter.writer.lineage import (
    latest_run,
    open_index,
    rerun_steps,
    save_latest_run,
    update_index,
)
from keras_stepcounter.writer.event_records import (
    file_version_record,
    scalar_record,
    summary_record,
)

# How often (seconds, at most) a record checks that its event file still
# has a name; see `EventFileSink`. Tests set it to 0 to check every record.
RECHECK_SECS = 1.0

# How often (seconds, at least) a record saves a remote directory's lineage
# index: a save there is a whole upload (tens of ms); a record, microseconds.
REMOTE_INDEX_SECS = 300.0

# Event file names: TF's pattern (events.out.tfevents.<secs>.<host>.<pid>.
# <n><suffix>) with a suffix of our own, so no name can clash with a file
# that a tf.summary writer of this process opens in the same second. The
# number is zero-padded: a file opened after a failed write sorts after the
# one it replaces (TensorBoard and the report read files in name order, and
# TensorBoard never goes back to a name that sorts earlier).
FILE_SUFFIX = ".stepcounter.v2"
_file_numbers = itertools.count()


class EventFileSink:
    """Writes scalar records to an event file of its own, one flush a record.

    A standard TensorBoard event file: a `file_version` header, then one
    `Event` per scalar, byte for byte what `tf.summary.scalar(tag, value,
    step=step)` writes except the wall time (writer/event_records.py), with
    the tag exactly as given, whatever `tf.name_scope` is active. A record
    is flushed (it survives SIGKILL) before `write` returns, and costs
    microseconds (benchmarks/README.md). One file serves every write from
    `open` to `close`; a sink still open at interpreter exit is closed then.

    Failures never escape: `write` returns False, with one warning per
    outage. A failed write may leave a torn record, so the next record goes
    to a new event file; at most once per `recheck_secs` a record checks
    (one `os.stat`) that the file still has a name, and opens a new one
    once `output_dir` exists again (docs/guarantees.md, "Failures never
    stop training", says what is lost when).

    `begin_run` and `reached` keep this run in the directory's lineage
    index (writer/lineage.py; docs/beyond-steps-per-sec.md, "Re-run
    steps"): every record moves its last step on, in place in a local
    index, at most once per `REMOTE_INDEX_SECS` in a remote one.

    Args:
        output_dir: The directory to write the event file in.
        recheck_secs: Seconds between checks that the file still exists;
            default `RECHECK_SECS`.
        clock: Monotonic clock for those checks (tests pass a fake one).
        dashboard: The tags the counter writes: each file it opens starts
            with their Custom Scalars layout, at step 0; None writes none.

    Example:

    ```python
    sink = EventFileSink(tmp)
    rerun = sink.begin_run(0)  # None: a run from step 0 is a new run
    sink.write(100, {"global_step/sec": 12.5})
    sink.close()
    ```
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
        self._failures = FailureReporter(
            "event file writer", "the next records go to a new event file once this works"
        )
        # This run in the lineage index: its start step (None before
        # `begin_run`), the last step it read, and when a record saves it next.
        self._start_step: Optional[int] = None
        self._last_step = 0
        self._index: Optional[int] = None  # A local index's descriptor.
        self._next_index_save = 0.0

    @property
    def path(self) -> Optional[str]:
        """The event file being written, or None when closed."""
        return self._path

    def open(self) -> None:
        """Opens an event file in `output_dir`, unless one is open and still
        exists (one `stat`: this runs at the start of every `fit`)."""
        if self._file is not None:
            if self._still_named():
                return
            self.close()
        try:
            self._open_file()
        except Exception as error:  # Training must go on.
            self._failures.failed("open", error)

    def begin_run(self, start_step: int) -> Optional[int]:
        """A run starts at `start_step`: returns the steps it computes again
        after the latest run in `output_dir`'s index (this sink's previous
        run, saved first, or another counter's or process's; None: none),
        and makes it the latest. Never raises.
        """
        if self._start_step is None or self._save_index():
            latest = latest_run(self._output_dir)
        else:  # This sink's previous run, which could not be saved.
            latest = (self._start_step, self._last_step)
        self._start_step, self._last_step = start_step, start_step
        self._close_index()
        if self._save_index():
            self._index = open_index(self._output_dir)
        _open_sinks.add(self)  # Its last step is saved at exit, file or not.
        return rerun_steps(start_step, None if latest is None else latest[1])

    def reached(self, step: int) -> None:
        """The run read `step` (an epoch's end, the run's end): saved in the
        index at once. Never raises."""
        self._last_step = step
        if self._index is not None and self._start_step is not None:
            update_index(self._index, self._start_step, step)  # The file stays: no stale descriptor.
        else:
            self._save_index()

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes one record per scalar at `step` and flushes; True if written."""
        self._last_step = step  # Read, whether written or not.
        try:
            file = self._file_for_record()
            wall_time = time.time()
            for tag, value in scalars.items():
                file.write(scalar_record(wall_time, step, tag, value))
            file.flush()
        except Exception as error:  # Training must go on.
            self._lost("write", error)
            return False
        if self._index is not None and self._start_step is not None:
            update_index(self._index, self._start_step, step)
        if self._failures.failing:
            self._failures.succeeded(self._path or "")
        return True

    def write_text(self, step: int, tag: str, markdown: str) -> bool:
        """Writes `markdown` as a text summary at `step` and flushes; True if
        written."""
        # Not shared with `write`, the per-record path: a shared one taking
        # the records as a callable costs 0.5 µs a record (10% of a local one).
        try:
            file = self._file_for_record()
            file.write(summary_record(time.time(), step, text_summary(tag, markdown)))
            file.flush()
        except Exception as error:  # Training must go on.
            self._lost("write", error)
            return False
        if self._failures.failing:
            self._failures.succeeded(self._path or "")
        return True

    def flush(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
        except Exception as error:
            self._lost("flush", error)

    def close(self) -> None:
        """Saves the index, flushes and closes the file; a later `open` or
        `write` opens a new one."""
        self._save_index()
        self._close_index()
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
            if self._index is None and now >= self._next_index_save:
                self._save_index()
            if self._still_named():
                return self._file
            self.close()  # Its name is gone; only the handle is freed.
        if self._local and not os.path.isdir(self._output_dir):
            raise FileNotFoundError(
                f"output_dir {self._output_dir!r} is not a directory any more"
            )
        self._open_file()
        return self._file

    def _lost(self, action: str, error: Exception) -> None:
        """A write failed: warn (once per outage), and leave the file, which
        may end in a torn record, for a new one at the next record."""
        self._failures.failed(action, error)
        file, self._file, self._path = self._file, None, None
        if file is not None:
            with contextlib.suppress(Exception):  # May fail again: the same outage.
                file.close()  # Frees the handle.

    def _save_index(self) -> bool:
        """Saves this run, with its last step read, as the latest in the index."""
        if self._start_step is None:
            return False
        self._next_index_save = self._clock() + REMOTE_INDEX_SECS
        return save_latest_run(self._output_dir, self._start_step, self._last_step)

    def _close_index(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            with contextlib.suppress(OSError):
                os.close(index)

    def _still_named(self) -> bool:
        return not self._local or os.path.exists(self._path or "")

    def _open_file(self) -> None:
        path = os.path.join(self._output_dir, _file_name())
        file = tf.io.TFRecordWriter(path)
        try:
            file.write(file_version_record(time.time()))
            if self._layout is not None:
                file.write(summary_record(time.time(), 0, self._layout))
            file.flush()
        except Exception:  # Disk still full: leave no file with a torn header.
            with contextlib.suppress(Exception):
                file.close()
            with contextlib.suppress(Exception):
                tf.io.gfile.remove(path)
            raise
        self._file, self._path = file, path
        self._next_check = self._clock() + self._recheck_secs
        _open_sinks.add(self)


def _file_name() -> str:
    return (
        f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
        f"{os.getpid()}.{next(_file_numbers):06d}{FILE_SUFFIX}"
    )


# Sinks with a file open or a run begun, closed at interpreter exit (which
# saves the run's last step); weak, so that an unreachable sink is not kept
# alive for this (its file closes with it).
_open_sinks: "weakref.WeakSet[EventFileSink]" = weakref.WeakSet()


@atexit.register
def _close_open_sinks() -> None:
    for sink in list(_open_sinks):
        sink.close()

