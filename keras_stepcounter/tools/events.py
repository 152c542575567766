"""Reading scalars back from event files, through TensorBoard's own reader.

Used by the report command and by the tests; both need the same answer to
"what did the recorders write, at which steps".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List

from tensorboard.backend.event_processing import event_file_loader, io_wrapper
from tensorboard.util import tensor_util


@dataclass(frozen=True)
class ScalarRecord:
    step: int
    value: float
    wall_time: float


def event_files(run_dir: str) -> List[str]:
    """The event files directly in `run_dir`, oldest first."""
    if not os.path.isdir(run_dir):
        return []
    names = sorted(os.listdir(run_dir))
    paths = [os.path.join(run_dir, name) for name in names]
    return [p for p in paths if io_wrapper.IsSummaryEventsFile(p)]


def read_scalars(run_dir: str) -> Dict[str, List[ScalarRecord]]:
    """All scalars in the event files of `run_dir`, by tag, in file order.

    Handles both v2 writers (`tf.summary.scalar`, a tensor value) and v1
    writers (`FileWriter`, a `simple_value`).
    """
    scalars: Dict[str, List[ScalarRecord]] = {}
    for path in event_files(run_dir):
        for event in event_file_loader.EventFileLoader(path).Load():
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                number = _scalar_value(value)
                if number is not None:
                    scalars.setdefault(value.tag, []).append(
                        ScalarRecord(int(event.step), number, event.wall_time)
                    )
    return scalars


def read_runs(logdir: str) -> Dict[str, Dict[str, List[ScalarRecord]]]:
    """Scalars of every run directory under `logdir`, keyed by relative path."""
    runs = {}
    for directory, _ in io_wrapper.ListRecursivelyViaWalking(logdir):
        scalars = read_scalars(directory)
        if scalars:
            relative = os.path.relpath(directory, logdir)
            runs[relative] = scalars
    return runs


def _scalar_value(value) -> "float | None":
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor":
        array = tensor_util.make_ndarray(value.tensor)
        # Text and histogram summaries share the tensor field; skip them.
        if array.size == 1 and array.dtype.kind in "fiub":
            return float(array.reshape(()))
    return None
