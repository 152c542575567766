"""Serialized `Event` records, byte for byte as `tf.summary` writes them.

A scalar record is an `Event` (wall_time = 1, step = 2, summary = 5) whose
`Summary` holds the tag, a float32 scalar tensor and the "scalars" plugin
metadata. For a given tag only the value's four bytes change, so the
`Summary` is serialized once per tag and split around them: about ten
times cheaper than serializing per record, and the same bytes
(tests/test_event_file_sink.py compares them with `tf.summary.scalar`'s).
Other records (the layout, the ledger table) are serialized whole, with
TensorBoard's copies of the protos: no TensorFlow import.
"""

from __future__ import annotations

import math
import struct
from typing import Dict, Tuple

from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2

from keras_stepcounter.summary_protos import scalar_metadata

FILE_VERSION = "brain.Event:2"
WRITER_NAME = "keras_stepcounter"

_WALL_TIME = b"\x09"  # Field 1, 64-bit.
_STEP = b"\x10"  # Field 2, varint.
_PACK_DOUBLE = struct.Struct("<d").pack
_PACK_FLOAT = struct.Struct("<f").pack
_SENTINEL = 1.5  # Any float32 value: its four bytes mark where values go.

# Summary bytes around the value, per tag: (before, after).
_parts_by_tag: Dict[str, Tuple[bytes, bytes]] = {}


def file_version_record(wall_time: float) -> bytes:
    """The header `Event` every event file starts with."""
    event = event_pb2.Event(wall_time=wall_time, file_version=FILE_VERSION)
    event.source_metadata.writer = WRITER_NAME
    return event.SerializeToString()


def summary_record(wall_time: float, step: int, summary: summary_pb2.Summary) -> bytes:
    """One `Event` holding `summary` at `step`."""
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary).SerializeToString()


def scalar_record(wall_time: float, step: int, tag: str, value: float) -> bytes:
    """One scalar `Event`, as `tf.summary.scalar(tag, value, step)` writes it."""
    parts = _parts_by_tag.get(tag)
    if parts is None:
        parts = _parts_by_tag[tag] = _summary_parts(tag)
    return b"".join(
        (_WALL_TIME, _PACK_DOUBLE(wall_time), _step_field(step), parts[0],
         _float32_bytes(value), parts[1])
    )


def _summary_parts(tag: str) -> Tuple[bytes, bytes]:
    """The `summary` field (5) of a scalar event for `tag`, split at the value."""
    metadata = summary_pb2.SummaryMetadata.FromString(scalar_metadata(tag))
    event = event_pb2.Event()
    value = event.summary.value.add(tag=tag, metadata=metadata)
    value.tensor.dtype = types_pb2.DT_FLOAT
    value.tensor.tensor_shape.SetInParent()  # Present and empty: a scalar.
    value.tensor.tensor_content = _PACK_FLOAT(_SENTINEL)
    serialized = event.SerializeToString()  # Only the summary field is set.
    # The tag precedes the tensor and could contain the sentinel's bytes;
    # the metadata after it is fixed, so the last occurrence is the value.
    at = serialized.rfind(_PACK_FLOAT(_SENTINEL))
    return serialized[:at], serialized[at + 4:]


def _step_field(step: int) -> bytes:
    if step == 0:
        return b""  # proto3 leaves a zero field out.
    step &= 0xFFFFFFFFFFFFFFFF  # int64 two's complement, as protobuf encodes it.
    out = bytearray(_STEP)
    while step > 0x7F:
        out.append((step & 0x7F) | 0x80)
        step >>= 7
    out.append(step)
    return bytes(out)


def _float32_bytes(value: float) -> bytes:
    try:
        return _PACK_FLOAT(value)
    except OverflowError:  # Beyond float32: TF's cast gives an infinity.
        return _PACK_FLOAT(math.copysign(math.inf, value))
