"""Reading scalars back from event files, without TensorFlow.

Used by the report command and by the tests; both need the same answer to
"what did the recorders write, at which steps".

A file is read a block at a time and its records framed and CRC-checked
with numpy (`record_frames`: both CRCs of every record, like TensorFlow's
reader; a truncated record told from a damaged one, nothing after either
read). Records in the counter's fixed scalar layout (the bytes
`tf.summary.scalar` writes) are decoded many at a time (`scalar_layout`);
every other record is parsed with the `Event` proto of
`tensorboard.compat.proto`, the general parser. Both land in the same
columns (`scalar_table.ScalarTable`), never one object per scalar.
TensorBoard's `EventFileLoader` is not used: it picks its reader through
`tensorboard.compat.tf`, which imports the real TensorFlow when installed
(seconds, and C++ start-up lines on stderr), and it drops read errors
silently. What it costs: benchmarks/README.md ("report").
"""

from __future__ import annotations

import importlib
import os
import stat
import struct
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2

from keras_stepcounter.tools.record_frames import TRUNCATED, Frames, frame_records
from keras_stepcounter.tools.scalar_columns import ScalarRecord
from keras_stepcounter.tools.scalar_layout import Decoded, decode_scalars
from keras_stepcounter.tools.scalar_table import ScalarTable, TableBuilder

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

# Bytes read from a file at a time: the reader holds one block's bytes and
# the columns of what it decoded, never the whole file (a million records
# are 76 MB of bytes).
_BLOCK = 1 << 21

# Bytes of the smallest record holding a scalar: the 16 bytes around every
# record and an `Event` of one summary value, with an empty tag, a
# `simple_value` and no wall time (9). A record of several scalars can hold
# more: the columns then grow.
_SMALLEST_RECORD = 25

# TensorBoard's rule for an event file name (io_wrapper.IsSummaryEventsFile).
EVENT_FILE_MARK = "tfevents"


@dataclass
class EventFileRead:
    """What could be read from one event file.

    `table` holds its scalars in file order, as columns (`ScalarTable`);
    `scalars` gives them as `(tag, record)` pairs. `events_read` counts
    the records (events) read. `problem` is None when the whole file was
    read, else why it was not (read in part or not at all).
    """

    path: str
    table: ScalarTable = field(default_factory=ScalarTable)
    events_read: int = 0
    problem: Optional[str] = None

    @property
    def scalars(self) -> List[Tuple[str, ScalarRecord]]:
        """`(tag, record)` pairs in file order (made on each call: for a few
        records; the report reads `table`)."""
        return list(self.table.pairs())

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
        for tag, record in read_event_file(path).table.pairs():
            scalars.setdefault(tag, []).append(record)
    return scalars


def read_event_file(path: str) -> EventFileRead:
    """Every scalar of the event file at `path`; never raises for a bad file.

    The file is read a block (`_BLOCK` bytes) at a time: each block's whole
    records are framed, CRC-checked and decoded, and a record cut by the
    block's end is carried into the next. The first problem found (a
    damaged or truncated record, or one that is not an `Event`) ends the
    reading, as it would reading the file at once.
    """
    read = EventFileRead(path)
    read.problem = _unreadable_reason(path)
    if read.problem is not None:
        return read
    try:
        with open(path, "rb") as file:
            # Room for a scalar per smallest record (`_SMALLEST_RECORD`).
            builder = TableBuilder(os.fstat(file.fileno()).st_size // _SMALLEST_RECORD)
            _read_blocks(file, read, builder)
    except OSError as error:
        read.problem = f"cannot read: {error.strerror or error}"
        read.events_read = 0
        return read
    read.table = builder.table()
    return read


def _read_blocks(file: BinaryIO, read: EventFileRead, builder: TableBuilder) -> None:
    """Reads `file` to its end or its first problem, into `builder`;
    `read.events_read` and `read.problem` say how far it got."""
    carry = b""
    want = _BLOCK
    while True:
        block = file.read(want)
        final = len(block) < want  # A regular file reads short only at its end.
        data = carry + block if carry else block
        del carry, block  # One copy of the bytes at a time.
        frames = frame_records(data)
        whole = frames.problem != TRUNCATED or final
        if not _decode_block(data, frames, read, builder):
            return  # A record that is not an Event: nothing after it read.
        read.events_read += len(frames.starts)
        if frames.problem is not None and whole:
            read.problem = _data_loss_text(frames.problem)
            return
        if final:
            return
        consumed = _end_of(frames)
        carry = data[consumed:]
        want = max(_BLOCK, _still_needed(carry))


def _end_of(frames: Frames) -> int:
    """The offset just past the last whole record framed."""
    if not len(frames.starts):
        return 0
    return int(frames.starts[-1]) + int(frames.lengths[-1]) + 4


def _still_needed(carry: bytes) -> int:
    """The bytes to read for the record begun in `carry` to be whole (its
    length field's CRC already checked), so that a long record is read in
    one go, not copied block after block."""
    if len(carry) < 12:  # The length's CRC not checked yet: not trusted.
        return 0
    (length,) = struct.unpack_from("<Q", carry)
    return 16 + int(length) - len(carry)


def _decode_block(
    data: bytes, frames: Frames, read: EventFileRead, builder: TableBuilder
) -> bool:
    """Decodes the framed records of one block into `builder`; False (and
    `read` says why) where one is not an `Event`: those before it are kept."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoded = decode_scalars(buffer, frames.starts, frames.lengths, _one_scalar)
    parsed: Dict[int, List[Tuple[str, ScalarRecord]]] = {}
    records = len(frames.starts)
    others = np.sort(np.concatenate(decoded.others)) if decoded.others else None
    for index in [] if others is None else others.tolist():
        start, length = int(frames.starts[index]), int(frames.lengths[index])
        try:
            event = event_pb2.Event.FromString(data[start:start + length])
        except DecodeError:
            read.problem = (
                f"record {read.events_read + index + 1} is not an Event (damaged)"
            )
            records = index
            break
        parsed[index] = list(_scalars_of(event))
    del buffer
    _add_in_file_order(builder, decoded, parsed, records)
    if records < len(frames.starts):
        read.events_read += records
        return False
    return True


def _add_in_file_order(
    builder: TableBuilder,
    decoded: Decoded,
    parsed: Dict[int, List[Tuple[str, ScalarRecord]]],
    records: int,
) -> None:
    """Adds the decoded and the parsed scalars of a block's first `records`
    records to `builder`, in file order."""
    names = list(decoded.tags)
    number = {tag: i for i, tag in enumerate(names)}
    slow = [(i, tag, r) for i, found in sorted(parsed.items()) if i < records
            for tag, r in found]
    for _, tag, _ in slow:
        if tag not in number:
            number[tag] = len(names)
            names.append(tag)
    # The parsed scalars as one more piece after the decoded ones' pieces.
    index = [*decoded.index, np.array([i for i, _, _ in slow], dtype=np.int64)]
    tag_ids = [*decoded.tag_ids,
               np.array([number[t] for _, t, _ in slow], dtype=np.int32)]
    steps = [*decoded.steps, np.array([r.step for _, _, r in slow], dtype=np.int64)]
    values = [*decoded.values,
              np.array([r.value for _, _, r in slow], dtype=np.float64)]
    walls = [*decoded.walls,
             np.array([r.wall_time for _, _, r in slow], dtype=np.float64)]
    at = np.concatenate(index)
    # Stable: a parsed record's several scalars keep their order.
    order = np.argsort(at, kind="stable")
    order = order[at[order] < records]
    columns = [np.concatenate(c)[order] for c in (tag_ids, steps, values, walls)]
    builder.add(names, *columns)


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
