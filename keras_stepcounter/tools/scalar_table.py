"""Every scalar of one or more event files, in one order, as numpy columns.

An event file's scalars are a sequence of (tag, step, value, wall time);
held as Python objects, a million of them took 190 MB (issue 28). A
`ScalarTable` holds them as columns (a tag number into `tags`, the step,
the value, the wall time: 28 bytes a scalar), in file order as read, or
merged by wall time for a run; `by_tag` splits it into one
`ScalarColumns` per tag, in the order tags first appear. `TableBuilder`
gathers a table from pieces (an event file read a block at a time).

Example:

    builder = TableBuilder()
    builder.add(["loss"], np.zeros(2, np.int32), np.array([1, 2]),
                np.array([0.5, 0.4]), np.array([10.0, 11.0]))
    table = builder.table()
    print(table.tags, len(table), table.by_tag()["loss"].values)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import numpy as np

from keras_stepcounter.tools.scalar_columns import ScalarColumns, ScalarRecord


@dataclass
class ScalarTable:
    """Scalars in one order: scalar `i` is tag `tags[tag_ids[i]]` at
    `steps[i]`, with `values[i]`, written at `wall_times[i]`."""

    tags: List[str] = field(default_factory=list)
    tag_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    wall_times: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.tag_ids)

    def pairs(self) -> Iterator[Tuple[str, ScalarRecord]]:
        """(tag, record) of every scalar, in the table's order."""
        for tag_id, record in zip(self.tag_ids.tolist(), self._records()):
            yield self.tags[tag_id], record

    def _records(self) -> Iterator[ScalarRecord]:
        return iter(ScalarColumns(self.steps, self.values, self.wall_times))

    def select(self, keep: Union[slice, np.ndarray]) -> "ScalarTable":
        """The scalars `keep` picks (a slice, a mask or indices), same tags."""
        return ScalarTable(
            self.tags, self.tag_ids[keep], self.steps[keep], self.values[keep],
            self.wall_times[keep],
        )

    def tag_id(self, tag: str) -> int:
        """The number of `tag` in `tags`, or -1 where absent."""
        return self.tags.index(tag) if tag in self.tags else -1

    def by_tag(self) -> Dict[str, ScalarColumns]:
        """One `ScalarColumns` per tag present, in the order tags first
        appear, each in the table's order."""
        if not len(self):
            return {}
        order = np.argsort(self.tag_ids, kind="stable")
        ids = self.tag_ids[order]
        present, first = np.unique(self.tag_ids, return_index=True)
        bounds = np.searchsorted(ids, present, side="left").tolist() + [len(ids)]
        spans = {
            int(t): (bounds[k], bounds[k + 1]) for k, t in enumerate(present.tolist())
        }
        found: Dict[str, ScalarColumns] = {}
        for t in present[np.argsort(first, kind="stable")].tolist():
            picked = order[spans[t][0]:spans[t][1]]
            found[self.tags[t]] = ScalarColumns(
                self.steps[picked], self.values[picked], self.wall_times[picked]
            )
        return found


def concatenate(tables: Sequence[ScalarTable]) -> Tuple[ScalarTable, np.ndarray]:
    """`tables` one after the other, tags merged; and which table each
    scalar came from (its index in `tables`)."""
    builder = TableBuilder()
    for table in tables:
        builder.add(table.tags, table.tag_ids, table.steps, table.values,
                    table.wall_times)
    source = np.repeat(np.arange(len(tables)), [len(t) for t in tables])
    return builder.table(), source


class TableBuilder:
    """A `ScalarTable` gathered from pieces, each with its own tag list,
    written into columns that grow as needed.

    Args:
        capacity: Scalars to make room for at first (an upper bound where
            known: an event file's size over the smallest record's). Room
            never written costs address space only, not memory: the
            system gives a page of a large array memory when it is first
            written. Growing copies the columns, so a good bound avoids it.

    Example:

        builder = TableBuilder()
        builder.add(["a", "b"], np.array([1, 0]), np.array([5, 5]),
                    np.array([1.0, 2.0]), np.array([0.0, 0.0]))
        builder.table().tags  # ["a", "b"], tag_ids [0, 1]
    """

    _DTYPES = (np.int32, np.int64, np.float64, np.float64)

    def __init__(self, capacity: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {capacity!r}.")
        if capacity < 0:
            raise ValueError(f"capacity must be at least 0, got {capacity}.")
        self._tags: List[str] = []
        self._numbers: Dict[str, int] = {}
        # One big array per column, not a piece per block: pieces kept
        # among freed temporaries leave the heap holed, and a process's
        # resident memory then stays at twice what it holds.
        self._columns = [np.empty(capacity, dtype) for dtype in self._DTYPES]
        self._size = 0

    def add(
        self,
        tags: Sequence[str],
        tag_ids: np.ndarray,
        steps: np.ndarray,
        values: np.ndarray,
        wall_times: np.ndarray,
    ) -> None:
        """Appends scalars whose tag numbers index `tags`."""
        count = len(tag_ids)
        if not count:
            return
        mapping = np.array([self._number(tag) for tag in tags], dtype=np.int32)
        end = self._size + count
        if end > len(self._columns[0]):
            self._grow(max(end, 2 * len(self._columns[0])))
        for column, piece in zip(
            self._columns, (mapping[tag_ids], steps, values, wall_times)
        ):
            column[self._size:end] = piece
        self._size = end

    def _number(self, tag: str) -> int:
        if tag not in self._numbers:
            self._numbers[tag] = len(self._tags)
            self._tags.append(tag)
        return self._numbers[tag]

    def _grow(self, capacity: int) -> None:
        for index, column in enumerate(self._columns):
            grown = np.empty(capacity, column.dtype)
            grown[:self._size] = column[:self._size]
            self._columns[index] = grown

    def table(self) -> ScalarTable:
        """Everything added, in order (views of the builder's columns)."""
        return ScalarTable(
            list(self._tags), *(column[:self._size] for column in self._columns)
        )
