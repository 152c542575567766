"""Reading scalars back from event files, without TensorFlow.

Used by the report command and by the tests; both need the same answer to
"what did the recorders write, at which steps".

The records are read with TensorBoard's pure-Python record reader, the one
its no-TensorFlow mode uses (`tensorboard.compat.tensorflow_stub`'s
`PyRecordReader_New`), and parsed with the `Event` proto of
`tensorboard.compat.proto`. Why that reader: it is maintained with
TensorBoard (which every TensorFlow install has), checks both CRCs of every
record like TensorFlow's own reader, tells a truncated record from a damaged
one, and needs no TensorFlow (importing it all takes about 0.7 s here).
TensorBoard's `EventFileLoader` is not used: it picks its reader through
`tensorboard.compat.tf`, which imports the real TensorFlow when installed
(seconds, and C++ start-up lines on stderr), and it drops read errors
silently. The cost of the reader chosen, measured on the development
machine (2 cores, busy with other work) on a 4.4 MB file of 60,000
`tf.summary.scalar` records (74 bytes each): 0.38 to 0.43 s per MB, two
thirds of it in the reader (its pure-Python CRC alone 0.13 s per MB), the
rest parsing. So a run's rate records (a few hundred KB at most) read in
well under a second, and a directory with MBs of other summaries
(histograms, graphs) in seconds.
"""

from __future__ import annotations

import importlib
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from tensorboard.compat.proto import event_pb2, summary_pb2

# Modules the stub's gfile imports, if installed, for s3:// and other remote
# paths, which the report never reads (it lists directories with `os`):
# boto3 alone costs about 0.9 s, half of a small report, on the development
# machine. Hidden from that one import, and only in the command line's own
# process (`python -m keras_stepcounter`), which trains nothing: in any
# other process (a notebook reading scalars after `fit`, a training script)
# `sys.modules` is left alone, since a thread importing boto3 at that moment
# would fail.
_REMOTE_CLIENTS = ("boto3", "botocore", "fsspec")
_COMMAND_LINE = "keras_stepcounter.__main__"


def _in_command_line() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == _COMMAND_LINE


def _import_stub_without_remote_clients() -> None:
    hidden = [name for name in _REMOTE_CLIENTS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # Import fails.
    try:
        importlib.import_module("tensorboard.compat.tensorflow_stub")
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


if _in_command_line():
    _import_stub_without_remote_clients()

from tensorboard.compat.tensorflow_stub import errors as tb_errors  # noqa: E402
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

# TensorBoard's rule for an event file name (io_wrapper.IsSummaryEventsFile).
EVENT_FILE_MARK = "tfevents"


@dataclass(frozen=True)
class ScalarRecord:
    step: int
    value: float
    wall_time: float


@dataclass
class EventFileRead:
    """What could be read from one event file.

    `scalars` holds `(tag, record)` pairs in file order. `events_read` counts
    the records (events) read. `problem` is None when the whole file was
    read, else why it was not (read in part or not at all).
    """

    path: str
    scalars: List[Tuple[str, ScalarRecord]] = field(default_factory=list)
    events_read: int = 0
    problem: Optional[str] = None

    def notice(self) -> str:
        """One line naming the file and what went wrong, for stderr."""
        if not self.events_read:
            return f"{self.path}: {self.problem}"
        records = f"{self.events_read} record{'' if self.events_read == 1 else 's'}"
        return f"{self.path}: {self.problem}; read {records} before it"


def is_event_file_name(path: str) -> bool:
    return EVENT_FILE_MARK in os.path.basename(path)


def event_files(run_dir: str) -> List[str]:
    """The event files directly in `run_dir`, in name (so time) order."""
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return []
    paths = [os.path.join(run_dir, name) for name in names]
    return [p for p in paths if is_event_file_name(p) and not os.path.isdir(p)]


def read_scalars(run_dir: str) -> Dict[str, List[ScalarRecord]]:
    """All scalars in the event files of `run_dir`, by tag, in file order.

    Lenient: what cannot be read (a damaged or missing file) is left out
    without a word; the report, which must say so, uses `read_event_file`.
    """
    scalars: Dict[str, List[ScalarRecord]] = {}
    for path in event_files(run_dir):
        for tag, record in read_event_file(path).scalars:
            scalars.setdefault(tag, []).append(record)
    return scalars


def read_event_file(path: str) -> EventFileRead:
    """Every scalar of the event file at `path`; never raises for a bad file."""
    read = EventFileRead(path)
    read.problem = _unreadable_reason(path)
    if read.problem is not None:
        return read
    try:
        for event in _events(path, read):
            read.scalars.extend(_scalars_of(event))
    except tb_errors.DataLossError as error:
        read.problem = _data_loss_text(str(error))
    except DecodeError:
        read.problem = f"record {read.events_read + 1} is not an Event (damaged)"
    except OSError as error:
        read.problem = f"cannot read: {error.strerror or error}"
    return read


def _unreadable_reason(path: str) -> Optional[str]:
    """Why `path` cannot be opened as an event file, checked before opening.

    Opening a FIFO would wait for a writer forever, so only regular files
    (or links to them) are opened.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"dangling link (to {os.readlink(path)!r})"
        return "vanished while being read"
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "is a directory, not an event file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device), not read"
    return None


def _events(path: str, read: EventFileRead) -> Iterator[event_pb2.Event]:
    reader = pywrap_tensorflow.PyRecordReader_New(path, 0, None, None)
    while True:
        try:
            reader.GetNext()
        except tb_errors.OutOfRangeError:  # The end of the file.
            return
        event = event_pb2.Event.FromString(reader.record())
        read.events_read += 1
        yield event


def _data_loss_text(message: str) -> str:
    if "truncated" in message:
        return (
            "truncated (its last record is incomplete: still being written, "
            "or its writer was killed)"
        )
    return "damaged (a record failed its CRC check), the rest of it not read"


def _scalars_of(event: event_pb2.Event) -> Iterator[Tuple[str, ScalarRecord]]:
    if not event.HasField("summary"):
        return
    for value in event.summary.value:
        number = _scalar_value(value)
        if number is not None:
            yield value.tag, ScalarRecord(int(event.step), number, event.wall_time)


def _scalar_value(value: summary_pb2.Summary.Value) -> Optional[float]:
    """The number of a v1 (`simple_value`) or v2 (scalar tensor) summary."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor":
        try:
            array = tensor_util.make_ndarray(value.tensor)
        except (TypeError, ValueError):
            return None  # A dtype numpy has no type for: not a scalar of ours.
        # Text and histogram summaries share the tensor field; skip them.
        if array.size == 1 and array.dtype.kind in "fiub":
            return float(array.reshape(()))
    return None
