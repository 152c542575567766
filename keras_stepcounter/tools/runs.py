"""Finding the runs under a LOGDIR, as TensorBoard does, and telling runs apart.

A run is a directory holding event files, named by its path relative to
LOGDIR (`.` for LOGDIR itself). Links to directories are followed (each
directory read once, under its own name where it is also reached as
itself). LOGDIR may also be a single event file.

One directory can hold several runs one after the other: the same
`output_dir` used by two trainings whose steps start over (a second script
run, a restart from an older checkpoint). TensorBoard draws such records as
one line that jumps back; averaging them as one run would be wrong. So the
records of a directory (its event files merged in the order they were
written, by wall time) are cut wherever a recorder tag's step goes below
the highest step so far, and each stretch becomes its own run, named
`<dir>#1`, `<dir>#2`, ... (usually one per event file), with a notice.
Steps that go on in a new event file (a resumed training), and two
writers recording at the same time, stay one run.

Everything that could not be read, or was read only in part, becomes a
one-line notice naming the file; the rest is still read.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from keras_stepcounter.tools.events import (
    EventFileRead,
    ScalarRecord,
    is_event_file_name,
    read_event_file,
)
from keras_stepcounter.tools.tags import STALL_SECS_TAG, is_recorder_tag


@dataclass
class Run:
    """The scalars of one run, by tag, and the event files they came from."""

    name: str
    directory: str
    files: List[str] = field(default_factory=list)
    scalars: Dict[str, List[ScalarRecord]] = field(default_factory=dict)


@dataclass
class LogdirRead:
    runs: List[Run]
    notices: List[str]


def logdir_problem(logdir: str) -> Optional[str]:
    """Why `logdir` itself cannot be read (one line), or None."""
    if not os.path.exists(logdir):
        if os.path.islink(logdir):
            return f"LOGDIR {logdir!r} is a dangling link."
        return f"LOGDIR {logdir!r} does not exist."
    if not os.path.isdir(logdir):
        if is_event_file_name(logdir):
            return None
        return (
            f"LOGDIR {logdir!r} is not a directory (nor an event file: "
            "their names hold 'tfevents')."
        )
    try:
        os.scandir(logdir).close()
    except OSError as error:
        return f"cannot read LOGDIR {logdir!r}: {error.strerror or error}."
    return None


def read_logdir(logdir: str) -> LogdirRead:
    """Every run under `logdir` (a directory or one event file), and notices.

    Runs without any scalar are left out. Never raises for what is under
    `logdir`; `logdir_problem` checks `logdir` itself.
    """
    notices: List[str] = []
    runs: List[Run] = []
    if not os.path.isdir(logdir):
        file_runs = _split_runs(os.path.basename(logdir), logdir, [logdir], notices)
        return LogdirRead(file_runs, notices)
    for directory, names in _walk(logdir, notices):
        paths = [os.path.join(directory, n) for n in names if is_event_file_name(n)]
        if paths:
            name = os.path.relpath(directory, logdir)
            runs.extend(_split_runs(name, directory, paths, notices))
    return LogdirRead(runs, notices)


def _walk(logdir: str, notices: List[str]) -> Iterator[Tuple[str, List[str]]]:
    """(directory, sorted names in it), top-down; links followed, once each.

    A directory reached both as itself and through a link is read once,
    under its own name (directories before links, so a `latest` link to
    a run does not list it twice).
    """
    seen: Set[str] = set()

    def unreadable(error: OSError) -> None:
        notices.append(f"{error.filename}: cannot list: {error.strerror or error}")

    for directory, dirnames, filenames in os.walk(
        logdir, onerror=unreadable, followlinks=True
    ):
        real = os.path.realpath(directory)
        if real in seen:  # A link back up the tree, or a second link to it.
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort(key=lambda d: (os.path.islink(os.path.join(directory, d)), d))
        yield directory, sorted(dirnames + filenames)


def _split_runs(
    name: str, directory: str, paths: Sequence[str], notices: List[str]
) -> List[Run]:
    reads: List[EventFileRead] = []
    for path in paths:
        read = read_event_file(path)
        if read.problem is not None:
            notices.append(read.notice())
        reads.append(read)
    stretches: List[Run] = [Run(name, directory)]
    highest: Optional[int] = None
    restarts: List[str] = []
    for path, tag, record in _in_time_order(reads):
        if _counts_for_order(tag):
            if highest is not None and record.step < highest:
                restarts.append(
                    f"step {record.step} of {tag} in {os.path.basename(path)} "
                    f"after step {highest}"
                )
                stretches.append(Run(name, directory))
                highest = None
            highest = record.step if highest is None else max(highest, record.step)
        run = stretches[-1]
        run.scalars.setdefault(tag, []).append(record)
        if path not in run.files:
            run.files.append(path)
    runs = [run for run in stretches if run.scalars]
    if len(runs) > 1:
        for number, run in enumerate(runs, start=1):
            run.name = f"{name}#{number}"
        notices.append(
            f"{directory}: holds {len(runs)} runs, its steps start over "
            f"({restarts[0]}); reported apart as "
            f"{', '.join(run.name for run in runs)}, never averaged as one"
        )
    return runs


def _in_time_order(
    reads: Sequence[EventFileRead],
) -> Iterator[Tuple[str, str, ScalarRecord]]:
    """(path, tag, record) of all files, merged by wall time, each file in order.

    Files written at the same time (two writers) interleave as written;
    files written one after the other follow each other.
    """
    streams = [
        [(read.path, tag, record) for tag, record in read.scalars] for read in reads
    ]
    return heapq.merge(*streams, key=lambda item: item[2].wall_time)


def _counts_for_order(tag: str) -> bool:
    """Whether a tag's steps show the order of training.

    A recorder writes in time order, its steps never going back, so a step
    below the highest so far means a new training. `stall_secs` is left
    out: it names the step where training resumed, which may be written
    once later steps are.
    """
    return is_recorder_tag(tag) and tag != STALL_SECS_TAG
