"""One tag's records as numpy columns: what a run holds per tag.

A `ScalarRecord` object costs about 200 bytes with its list slot; a
million records of one tag held as objects took 190 MB before any
statistic (issue 28). `ScalarColumns` holds them as three arrays (24 bytes
a record) and is still a sequence of `ScalarRecord`s, made one at a time
where a caller iterates or indexes, so code written for lists keeps
working; the statistics read the arrays (`steps`, `values`, `wall_times`)
instead. `columns_of` gives the columns of any sequence of records.

Example:

    records = ScalarColumns.of([ScalarRecord(10, 2.5, 100.0)])
    print(records[0], records.steps, len(records))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Iterable, Iterator, Sequence, Union, overload

import numpy as np

# Records turned into Python numbers at a time while iterating: bounds the
# memory an iteration holds.
_CHUNK: Final = 1 << 14


@dataclass(frozen=True, slots=True)  # Slots: small, where made in numbers.
class ScalarRecord:
    """One scalar: the step it was written at, its value, its wall time."""

    step: int
    value: float
    wall_time: float


class ScalarColumns(Sequence[ScalarRecord]):
    """One tag's records, in the order written, as three equal-length
    arrays: `steps` (int64), `values` and `wall_times` (float64).

    Args:
        steps, values, wall_times: The columns (converted to those dtypes).

    Raises:
        ValueError: The columns are not one-dimensional of one length.

    Example:

        records = ScalarColumns(np.array([1, 2]), np.array([0.5, 0.7]),
                                np.array([10.0, 11.0]))
        [r.value for r in records]  # [0.5, 0.7]
    """

    __slots__ = ("steps", "values", "wall_times")

    def __init__(self, steps: Any, values: Any, wall_times: Any) -> None:
        self.steps: np.ndarray = np.asarray(steps, dtype=np.int64)
        self.values: np.ndarray = np.asarray(values, dtype=np.float64)
        self.wall_times: np.ndarray = np.asarray(wall_times, dtype=np.float64)
        shapes = {self.steps.shape, self.values.shape, self.wall_times.shape}
        if len(shapes) != 1 or self.steps.ndim != 1:
            raise ValueError(
                "steps, values and wall_times must be 1-D arrays of one length, "
                f"got shapes {self.steps.shape}, {self.values.shape}, "
                f"{self.wall_times.shape}."
            )

    @classmethod
    def of(cls, records: Iterable[ScalarRecord]) -> "ScalarColumns":
        """The columns of `records` (any iterable of `ScalarRecord`)."""
        found = list(records)
        return cls(
            np.fromiter((r.step for r in found), dtype=np.int64, count=len(found)),
            np.fromiter((r.value for r in found), dtype=np.float64, count=len(found)),
            np.fromiter(
                (r.wall_time for r in found), dtype=np.float64, count=len(found)
            ),
        )

    @classmethod
    def empty(cls) -> "ScalarColumns":
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, index: int) -> ScalarRecord: ...

    @overload
    def __getitem__(self, index: slice) -> "ScalarColumns": ...

    def __getitem__(
        self, index: Union[int, slice]
    ) -> Union[ScalarRecord, "ScalarColumns"]:
        if isinstance(index, slice):
            return ScalarColumns(
                self.steps[index], self.values[index], self.wall_times[index]
            )
        return ScalarRecord(
            int(self.steps[index]), float(self.values[index]),
            float(self.wall_times[index]),
        )

    def __iter__(self) -> Iterator[ScalarRecord]:
        for begin in range(0, len(self), _CHUNK):
            end = begin + _CHUNK
            for step, value, wall in zip(
                self.steps[begin:end].tolist(), self.values[begin:end].tolist(),
                self.wall_times[begin:end].tolist(),
            ):
                yield ScalarRecord(step, value, wall)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same records (a list included)."""
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # Mutable arrays: unhashable.

    def __repr__(self) -> str:
        return f"ScalarColumns({list(self)!r})"


def columns_of(records: Sequence[ScalarRecord]) -> ScalarColumns:
    """`records` as columns: themselves where already `ScalarColumns`."""
    if isinstance(records, ScalarColumns):
        return records
    return ScalarColumns.of(records)
