"""`EventFileSink`: scalar records written straight to an event file."""

from __future__ import annotations

import atexit
import itertools
import os
import socket
import time
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

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
# A local index is updated in place by every record. It is saved at once at
# `begin_run`, `reached` and `close`.
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
    False, one `RuntimeWarning` per outage (each outage's text differs, so
    Python's warning filter shows every one). A failed write may have left
    a torn record at the end of the file, which no reader gets past; so the
    file is closed, never written again (truncating it is not possible on
    remote filesystems and would race live readers), and the next record
    opens a new event file: TensorBoard and the report read every record
    written once space is back. An attempt that fails while opening a new
    file removes that file, so an outage leaves no empty files behind.
    "writing records resumed" is logged with the new file's name.

    The lineage index (`writer/lineage.py`): `begin_run(start_step)` at the
    start of each run says how many steps it computes again, measured
    against the latest run that wrote to `output_dir`, and makes this run
    the latest; `reached(step)` (epoch ends, a run's end) and every record
    (its step) move this run's last step on. The index is saved at
    `begin_run`, `reached` and `close`; in a local directory every record
    updates it in place (a few microseconds), so after a kill the last step
    saved is short by fewer than `every_n_steps` (the steps since the last
    record). A remote index is saved by a record at most once per
    `REMOTE_INDEX_SECS` (300 s: an object store takes a whole upload), so
    there it can also be short by the steps of those 300 s.

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
        self._failures = FailureReporter(
            "event file writer", "the next records go to a new event file once this works"
        )
        # This run in the lineage index: (start step, last step read), and
        # when a record saves it next; None before `begin_run`.
        self._run: Optional[Tuple[int, int]] = None
        self._last_step = 0
        self._index: Optional[int] = None  # A local index's descriptor.
        self._index_secs = REMOTE_INDEX_SECS
        self._next_index_save = 0.0

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

    def begin_run(self, start_step: int) -> Optional[int]:
        """A run starts at `start_step`: returns the steps it computes again
        (None: none), and makes it the latest run in `output_dir`'s index.

        Steps are computed again when `start_step` is above 0 and below the
        last step read by the latest run in the index (this sink's previous
        run, saved first, or another counter's or process's, read from the
        index: one small file). A start at 0 is a new run. Never raises.
        """
        if self._run is not None:
            saved = self._save_index()
            latest = latest_run(self._output_dir) if saved else self._run
        else:
            latest = latest_run(self._output_dir)
        self._run, self._last_step = (start_step, start_step), start_step
        self._close_index()
        if self._save_index():
            self._index = open_index(self._output_dir)
        _open_sinks.add(self)  # Its last step is saved at exit, file or not.
        return rerun_steps(start_step, None if latest is None else latest[1])

    def reached(self, step: int) -> None:
        """The run read `step` (an epoch's end, the run's end): saved in the
        index at once. Never raises."""
        self._last_step = step
        if self._index is not None and self._run is not None:
            update_index(self._index, self._run[0], step)  # The file stays: no stale descriptor.
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
        if self._index is not None and self._run is not None:
            update_index(self._index, self._run[0], step)
        if self._failures.failing:
            self._failures.succeeded(self._path or "")
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
        if self._run is not None:
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
            if self._index is None and self._run is not None and now >= self._next_index_save:
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
            try:
                file.close()  # Frees the handle; may fail again: the same outage.
            except Exception:
                pass

    def _save_index(self) -> bool:
        """Saves this run, with its last step read, as the latest in the index."""
        if self._run is None:
            return False
        self._run = (self._run[0], self._last_step)
        self._next_index_save = self._clock() + self._index_secs
        return save_latest_run(self._output_dir, *self._run)

    def _close_index(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            try:
                os.close(index)
            except OSError:
                pass

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
        except Exception:
            _discard(file, path)  # Disk still full: leave no torn header.
            raise
        self._file, self._path = file, path
        self._next_check = self._clock() + self._recheck_secs
        _open_sinks.add(self)


def _discard(file: Any, path: str) -> None:
    """Closes and removes an event file that holds no record of ours."""
    try:
        file.close()
    except Exception:
        pass
    try:
        tf.io.gfile.remove(path)
    except Exception:
        pass


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

