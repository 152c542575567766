"""Reading scalars back from event files, without TensorFlow.

Used by the report command and by the tests; both need the same answer to
"what did the recorders write, at which steps".

A file is read at once and its records framed and CRC-checked with numpy
(`record_frames`: both CRCs of every record, like TensorFlow's reader; a
truncated record told from a damaged one, nothing after either read).
Records in the counter's fixed scalar layout (the bytes `tf.summary.scalar`
writes) are decoded many at a time (`scalar_layout`); every other record is
parsed with the `Event` proto of `tensorboard.compat.proto`, the general
parser. TensorBoard's `EventFileLoader` is not used: it picks its reader
through `tensorboard.compat.tf`, which imports the real TensorFlow when
installed (seconds, and C++ start-up lines on stderr), and it drops read
errors silently. What it costs: benchmarks/README.md ("report").
"""

from __future__ import annotations

import importlib
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2

from keras_stepcounter.tools.record_frames import TRUNCATED, frame_records
from keras_stepcounter.tools.scalar_layout import Decoded, decode_scalars

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

from tensorboard.util import tensor_util  # noqa: E402

# Records turned into Python objects at a time.
_CHUNK = 1 << 16

# TensorBoard's rule for an event file name (io_wrapper.IsSummaryEventsFile).
EVENT_FILE_MARK = "tfevents"


@dataclass(frozen=True, slots=True)  # Slots: a million records fit in memory.
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
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        read.problem = f"cannot read: {error.strerror or error}"
        return read
    frames = frame_records(data)
    read.events_read = len(frames.starts)
    if frames.problem is not None:
        read.problem = _data_loss_text(frames.problem)
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoded = decode_scalars(buffer, frames.starts, frames.lengths, _one_scalar)
    scalars: Dict[int, List[Tuple[str, ScalarRecord]]] = {}
    others = np.sort(np.concatenate(decoded.others)) if decoded.others else None
    for index in [] if others is None else others.tolist():
        start, length = int(frames.starts[index]), int(frames.lengths[index])
        try:
            event = event_pb2.Event.FromString(data[start:start + length])
        except DecodeError:
            read.problem = f"record {index + 1} is not an Event (damaged)"
            read.events_read = index
            break
        scalars[index] = list(_scalars_of(event))
    del buffer, data  # The file's bytes are no longer needed: free them first.
    read.scalars = _in_file_order(decoded, scalars, read.events_read)
    return read


def _in_file_order(
    decoded: Decoded, parsed: Dict[int, List[Tuple[str, ScalarRecord]]], records: int
) -> List[Tuple[str, ScalarRecord]]:
    """The decoded and the parsed scalars of the first `records` records,
    in file order."""
    if decoded.index:
        index = np.concatenate(decoded.index)
        order = np.argsort(index, kind="stable")
        index = index[order]
        keep = index < records
        order, index = order[keep], index[keep]
        columns = [np.concatenate(c)[order] for c in (
            decoded.tag_ids, decoded.steps, decoded.values, decoded.walls)]
        names = decoded.tags
        fast: List[Tuple[str, ScalarRecord]] = []
        # A chunk at a time: Python numbers for all columns at once would
        # hold four lists of a million objects beside the records.
        for begin in range(0, len(order), _CHUNK):
            part = [c[begin:begin + _CHUNK].tolist() for c in columns]
            fast.extend(
                (names[t], ScalarRecord(s, v, w)) for t, s, v, w in zip(*part)
            )
        positions = index.tolist()
    else:
        fast, positions = [], []
    if not parsed:
        return fast
    merged: List[Tuple[str, ScalarRecord]] = []
    slow = sorted((i, found) for i, found in parsed.items() if i < records)
    at = 0
    for i, found in slow:
        while at < len(positions) and positions[at] < i:
            merged.append(fast[at])
            at += 1
        merged.extend(found)
    merged.extend(fast[at:])
    return merged


def _one_scalar(record: bytes) -> Optional[Tuple[str, int, float, float]]:
    """(tag, step, value, wall time) of a record holding one scalar, else None."""
    try:
        event = event_pb2.Event.FromString(record)
    except DecodeError:
        return None
    found = list(_scalars_of(event))
    if len(found) != 1 or len(event.summary.value) != 1:
        return None
    tag, scalar = found[0]
    return tag, scalar.step, scalar.value, scalar.wall_time


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


def _data_loss_text(problem: str) -> str:
    if problem == TRUNCATED:
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
