"""Decoding many scalar `Event` records of one fixed layout at once.

The counter writes every scalar record the same way (the bytes
`tf.summary.scalar` writes, `writer.event_records`): the wall time
(field 1, a double), the step (field 2, a varint), then the summary, whose
bytes for one tag are the same in every record but for the four bytes of
the float32 value. So records of one length whose bytes match a template
record's everywhere except the wall time, the step and the value hold the
template's tag, and those three fields can be read for all of them at once
with numpy. The template is parsed with the protobuf parser, so what it
says is what that parser says; records that match no template (other
summaries, other writers' layouts) are left to it too.

Example:

    found = decode_scalars(buffer, frames.starts, frames.lengths)
    print(found.tags, found.index[:5], found.steps[:5])
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Final, List, Optional, Tuple

import numpy as np

# Templates tried per record length at most (one per tag of that length).
_MAX_TEMPLATES: Final = 64
_CHUNK: Final = 1 << 14


@dataclass(frozen=True)
class Template:
    """Where a record's variable fields lie, and its tag."""

    tag: str
    data: np.ndarray  # The template record's bytes.
    step_bytes: int  # The step varint's length (0: step 0, left out).
    value_at: int

    def variable(self) -> np.ndarray:
        """A mask of the bytes that may differ: wall time, step, value."""
        mask = np.zeros(len(self.data), dtype=bool)
        mask[1:9] = True
        mask[10:10 + self.step_bytes] = True
        mask[self.value_at:self.value_at + 4] = True
        return mask


@dataclass
class Decoded:
    """The records decoded as scalars (`index` in the file's record order)
    and the indices of those left to the general parser."""

    tags: List[str] = field(default_factory=list)
    index: List[np.ndarray] = field(default_factory=list)
    tag_ids: List[np.ndarray] = field(default_factory=list)
    steps: List[np.ndarray] = field(default_factory=list)
    values: List[np.ndarray] = field(default_factory=list)
    walls: List[np.ndarray] = field(default_factory=list)
    others: List[np.ndarray] = field(default_factory=list)


# What the general parser makes of one record: (tag, step, value, wall
# time) where it is one scalar, else None.
ParseOne = Callable[[bytes], Optional[Tuple[str, int, float, float]]]


def template_of(record: bytes, parse: ParseOne) -> Optional[Template]:
    """The layout of `record`, if it is one scalar with its wall time and
    step in front (as the counter and `tf.summary` write them)."""
    parsed = parse(record)
    if parsed is None or len(record) < 14 or record[0] != 0x09:
        return None
    tag, step, value, _ = parsed
    step_bytes = 0
    if record[9] == 0x10:
        while step_bytes < 10 and record[10 + step_bytes] & 0x80:
            step_bytes += 1
        step_bytes += 1
    elif step != 0:
        return None
    try:
        packed = struct.pack("<f", value)
    except OverflowError:
        return None
    at = record.rfind(packed, 10 + step_bytes)
    if at < 0 or struct.unpack("<f", packed)[0] != struct.unpack(
        "<f", record[at:at + 4]
    )[0]:
        return None
    template = Template(tag, np.frombuffer(record, dtype=np.uint8), step_bytes, at)
    steps, values, walls = _fields(template.data[None, :], template)
    same_value = values[0] == value or (value != value and values[0] != values[0])
    if int(steps[0]) != step or not same_value or float(walls[0]) != parsed[3]:
        return None  # The parser reads it otherwise: leave it to the parser.
    return template


def _rows(buffer: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    return buffer[starts[:, None] + np.arange(length)[None, :]]


def _matches(rows: np.ndarray, template: Template) -> np.ndarray:
    fixed = ~template.variable()
    same = (rows[:, fixed] == template.data[fixed]).all(axis=1)
    n = template.step_bytes
    for j in range(n - 1):
        same &= (rows[:, 10 + j] & 0x80) != 0
    if n:
        same &= rows[:, 10 + n - 1] < 0x80
    return same


def _fields(rows: np.ndarray, template: Template) -> Tuple[np.ndarray, ...]:
    walls = np.ascontiguousarray(rows[:, 1:9]).view("<f8").ravel()
    steps = np.zeros(len(rows), dtype=np.uint64)
    for j in range(template.step_bytes):
        part = (rows[:, 10 + j] & 0x7F).astype(np.uint64)
        steps |= part << np.uint64(7 * j)
    at = template.value_at
    values = np.ascontiguousarray(rows[:, at:at + 4]).view("<f4").ravel()
    return steps.view(np.int64), values.astype(np.float64), walls


def decode_scalars(
    buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, parse: ParseOne
) -> Decoded:
    """Every record of `buffer` (data at `starts`, `lengths` long) that
    matches a scalar template, decoded; the rest in `others`."""
    found = Decoded()
    tag_ids: dict = {}
    for length in np.unique(lengths):
        (members,) = np.nonzero(lengths == length)
        for begin in range(0, len(members), _CHUNK):
            _decode_group(
                buffer, starts, int(length), members[begin:begin + _CHUNK],
                parse, found, tag_ids,
            )
    return found


def _decode_group(
    buffer: np.ndarray,
    starts: np.ndarray,
    length: int,
    members: np.ndarray,
    parse: ParseOne,
    found: Decoded,
    tag_ids: dict,
) -> None:
    rows = _rows(buffer, starts[members], length)
    left = np.ones(len(members), dtype=bool)
    for _ in range(_MAX_TEMPLATES):
        if not left.any():
            return
        first = int(np.argmax(left))
        template = template_of(rows[first].tobytes(), parse)
        if template is None:
            found.others.append(members[first:first + 1])
            left[first] = False
            continue
        matched = left & _matches(rows, template)
        matched[first] = True
        left &= ~matched
        steps, values, walls = _fields(rows[matched], template)
        tag_id = tag_ids.setdefault(template.tag, len(found.tags))
        if tag_id == len(found.tags):
            found.tags.append(template.tag)
        found.index.append(members[matched])
        found.tag_ids.append(np.full(int(matched.sum()), tag_id, dtype=np.int32))
        found.steps.append(steps)
        found.values.append(values)
        found.walls.append(walls)
    found.others.append(members[left])
