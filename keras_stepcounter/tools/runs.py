"""Finding the runs under a LOGDIR, as TensorBoard does, and telling runs apart.

A run is a directory holding event files, named by its path relative to
LOGDIR (`.` for LOGDIR itself). Links to directories are followed (each
directory read once, under its own name where it is also reached as
itself). LOGDIR may also be a single event file.

One directory can hold several runs, and averaging two as one would be
wrong, so the report never does; it splits them, with a notice:

* One after the other: the same `output_dir` used by two trainings whose
  steps start over (a second script run, a restart from an older
  checkpoint). TensorBoard draws such records as one line that jumps back.
  The records of one writer's files, merged in the order they were written
  (by wall time), are cut wherever a recorder tag's step goes below the
  highest step so far; the stretches are named `<dir>#1`, `<dir>#2`, ...
  (usually one per event file).
* At the same time: two event files whose records were written over the
  same wall-clock time and hold the same recorder tag at overlapping steps
  (two processes writing at once, two runs started at once). Each writer's
  files become runs of their own, named `<dir>#<event file>` after the
  first file of each (its name after `tfevents.`).

Steps that go on in a new event file stay one run, and so does a training
resumed from a checkpoint (restored above step 0) into the same directory,
as TensorBoard draws it: its steps went back, but the counter marked the
restore (a `baseline_step` above the run's first, or `goodput/rerun_steps`),
and the steps run again are kept in `Run.reruns`. A new training from step
0 is a new run (the ledger's lineage rule). Two files written at the same
time with different tags (a `GraphStepCounter` and a `StepCounter` with
another `tag=`, or Keras's `TensorBoard` callback beside the counter) stay
one run too: nothing in them is averaged.

Everything that could not be read, or was read only in part, becomes a
one-line notice naming the file; the rest is still read.
"""

from __future__ import annotations

import functools
import heapq
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from keras_stepcounter.tools.events import (
    EVENT_FILE_MARK,
    EventFileRead,
    is_event_file_name,
    read_event_file,
)
from keras_stepcounter.tools.scalar_columns import ScalarColumns
from keras_stepcounter.tools.scalar_table import ScalarTable, concatenate
from keras_stepcounter.tools.tags import (
    BASELINE_STEP_TAG,
    RERUN_STEPS_TAG,
    STALL_SECS_TAG,
    is_rate_tag,
    is_recorder_tag,
)


@dataclass(frozen=True)
class Rerun:
    """Steps run again after a restore: training went back to `from_step`
    having reached `to_step`."""

    from_step: int
    to_step: int


@dataclass
class Run:
    """The scalars of one run, by tag, the event files they came from, and
    the steps it ran again after restores (`reruns`).

    Each tag's records are `ScalarColumns`: numpy columns that read as a
    sequence of `ScalarRecord`s, in the order written."""

    name: str
    directory: str
    files: List[str] = field(default_factory=list)
    scalars: Dict[str, ScalarColumns] = field(default_factory=dict)
    reruns: List[Rerun] = field(default_factory=list)


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
    writers, overlap = _writers(reads)
    restarts: List[str] = []
    stretches = [
        run for files in writers for run in _stretches(directory, files, restarts)
    ]
    runs = [run for run in stretches if run.scalars]
    if len(runs) == 1:
        runs[0].name = name
    elif len(writers) == 1:
        for number, run in enumerate(runs, start=1):
            run.name = f"{name}#{number}"
    else:
        runs.sort(key=_first_time)
        _name_by_first_file(name, runs)
    if len(runs) > 1:
        reasons = [] if overlap is None else [
            f"{len(writers)} writers recorded at the same time ({overlap})"
        ]
        if restarts:
            reasons.append(f"its steps start over ({restarts[0]})")
        notices.append(
            f"{directory}: holds {len(runs)} runs, {'; '.join(reasons)}; "
            f"reported apart as {', '.join(run.name for run in runs)}, "
            "never averaged as one"
        )
    return runs


def _stretches(
    directory: str, reads: Sequence[EventFileRead], restarts: List[str]
) -> List[Run]:
    """One writer's records cut where a recorder tag's step goes back,
    but where training was resumed (`_resumes`): that stays one run, with
    the steps run again in `Run.reruns`.

    Each cut is described in `restarts`. The runs are not named yet.
    """
    table, source = _in_time_order(reads)
    paths = [read.path for read in reads]
    cuts: List[int] = [0]
    reruns: List[List[Rerun]] = [[]]
    baseline = table.tag_id(BASELINE_STEP_TAG)
    baselines = np.nonzero(table.tag_ids == baseline)[0] if baseline >= 0 else None
    for at, highest in _steps_back(table):
        tag, step = table.tags[int(table.tag_ids[at])], int(table.steps[at])
        first_baseline = None
        if baselines is not None:
            # The run's first baseline so far: at or after its start.
            found = int(np.searchsorted(baselines, cuts[-1], side="left"))
            if found < len(baselines) and baselines[found] <= at:
                first_baseline = int(table.steps[baselines[found]])
        if _resumes(tag, step, first_baseline):
            reruns[-1].append(Rerun(step, highest))
            continue
        restarts.append(
            f"step {step} of {tag} in {os.path.basename(paths[int(source[at])])} "
            f"after step {highest}"
        )
        cuts.append(at)
        reruns.append([])
    ends = cuts[1:] + [len(table)]
    stretches = []
    for begin, end, stretch_reruns in zip(cuts, ends, reruns):
        files = _in_order_of_first(source[begin:end])
        run = Run("", directory, [paths[i] for i in files],
                  table.select(slice(begin, end)).by_tag(), stretch_reruns)
        stretches.append(run)
    return stretches


def _steps_back(table: ScalarTable) -> Iterator[Tuple[int, int]]:
    """Each record (its index in `table`) of a tag that shows the order of
    training (`_counts_for_order`) whose step is below the highest such step
    since the last record found (or the start), with that highest step.

    Searched a window at a time with numpy, the window growing while none
    is found: a run whose steps never go back is one pass.
    """
    ordered = np.array([_counts_for_order(t) for t in table.tags], dtype=bool)
    if not len(table) or not ordered.any():
        return
    (where,) = np.nonzero(ordered[table.tag_ids])
    if not len(where):
        return
    steps = table.steps[where]
    begin, window = 0, _FIRST_WINDOW
    highest = int(steps[0])  # The first record sets it: nothing is below it.
    while begin < len(steps):
        part = steps[begin:begin + window]
        running = np.maximum.accumulate(part)
        # The highest step before each record of the window.
        before = np.maximum(np.concatenate([[highest], running[:-1]]), highest)
        (back,) = np.nonzero(part < before)
        if not len(back):
            highest = max(highest, int(running[-1]))
            begin += len(part)
            window *= 2
            continue
        k = int(back[0])
        yield int(where[begin + k]), int(before[k])
        highest = int(part[k])
        begin += k + 1
        window = _FIRST_WINDOW


# Records searched at first for a step going back.
_FIRST_WINDOW = 4096


def _in_order_of_first(source: np.ndarray) -> List[int]:
    """The distinct values of `source`, in the order they first appear."""
    present, first = np.unique(source, return_index=True)
    return [int(v) for v in present[np.argsort(first)]]


def _resumes(tag: str, step: int, first_baseline: Optional[int]) -> bool:
    """Whether a record whose step went back marks a resumed training (the
    ledger's lineage rule: restored above step 0) rather than a new one.

    `goodput/rerun_steps` is written only when a fit resumes a run; a
    `baseline_step` above the run's first one is a restore above step 0 (a
    new training from step 0 takes its first baseline where the run did).
    Files without either cannot tell, and are cut as a new run.
    """
    if tag == RERUN_STEPS_TAG:
        return True
    return (
        tag == BASELINE_STEP_TAG and first_baseline is not None
        and step > first_baseline
    )


def _first_time(run: Run) -> float:
    return min(float(np.min(c.wall_times)) for c in run.scalars.values() if len(c))


def _name_by_first_file(name: str, runs: Sequence[Run]) -> None:
    """`<dir>#<first event file>` for each run (`#2`, ... where one repeats)."""
    seen: Dict[str, int] = {}
    for run in runs:
        base = os.path.basename(run.files[0])
        short = base.split(EVENT_FILE_MARK + ".", 1)[-1]
        run.name = f"{name}#{short}"
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name += f"#{seen[run.name]}"


@dataclass(frozen=True)
class _Span:
    """When a file's recorder records were written, and at which steps."""

    first_time: float
    last_time: float
    steps: Dict[str, Tuple[int, int]]


def _span(read: EventFileRead) -> Optional[_Span]:
    # Reductions with `where=`: no copy of a million records' columns.
    table = read.table
    ordered = np.array([_counts_for_order(t) for t in table.tags], dtype=bool)
    kept = ordered[table.tag_ids] if len(table) else np.zeros(0, dtype=bool)
    if not kept.any():
        return None
    steps = {}
    for number in np.nonzero(ordered)[0].tolist():
        mine = table.tag_ids == number
        if mine.any():
            steps[table.tags[number]] = (
                int(np.min(table.steps, where=mine, initial=_MAX_STEP)),
                int(np.max(table.steps, where=mine, initial=_MIN_STEP)),
            )
    times = table.wall_times
    return _Span(float(np.min(times, where=kept, initial=np.inf)),
                 float(np.max(times, where=kept, initial=-np.inf)), steps)


_MAX_STEP = np.iinfo(np.int64).max
_MIN_STEP = np.iinfo(np.int64).min


def _overlap(a: _Span, b: _Span) -> Optional[str]:
    """How two files' records overlap, if written at the same time with
    the same tag at the same steps; else None."""
    if not (a.first_time < b.last_time and b.first_time < a.last_time):
        return None
    # A rate tag first: the overlap a reader recognises.
    for tag in sorted(a.steps.keys() & b.steps.keys(), key=lambda t: (not is_rate_tag(t), t)):
        low = max(a.steps[tag][0], b.steps[tag][0])
        high = min(a.steps[tag][1], b.steps[tag][1])
        if low <= high:
            return f"{tag} at steps {low}-{high} in both"
    return None


def _writers(
    reads: Sequence[EventFileRead],
) -> Tuple[List[List[EventFileRead]], Optional[str]]:
    """The files of each writer, and how the first two at once overlap.

    In the order they began, each file joins the first writer none of whose
    files it overlaps (`_overlap`), else starts a writer of its own. Files
    without recorder records join the first writer.
    """
    spans = [(read, _span(read)) for read in reads]
    timed = sorted(
        ((read, span) for read, span in spans if span is not None),
        key=lambda item: item[1].first_time,
    )
    writers: List[List[Tuple[EventFileRead, _Span]]] = []
    first_overlap: Optional[str] = None
    for read, span in timed:
        for writer in writers:
            overlaps = [(r, _overlap(s, span)) for r, s in writer]
            found = [(r, text) for r, text in overlaps if text is not None]
            if not found:
                writer.append((read, span))
                break
            if first_overlap is None:
                other, text = found[0]
                first_overlap = (
                    f"{text} {os.path.basename(other.path)} and "
                    f"{os.path.basename(read.path)}"
                )
        else:
            writers.append([(read, span)])
    files = [[read for read, _ in writer] for writer in writers] or [[]]
    files[0].extend(read for read, span in spans if span is None)
    return files, first_overlap


def _in_time_order(reads: Sequence[EventFileRead]) -> Tuple[ScalarTable, np.ndarray]:
    """The scalars of all files merged by wall time, each file in order
    (`heapq.merge`'s order: at equal times, the earlier file first); and
    the file (index in `reads`) each came from.

    Files written at the same time with different tags interleave as
    written; files written one after the other follow each other.
    """
    if len(reads) == 1:  # Nothing to merge: the file's own order.
        table = reads[0].table
        return table, np.zeros(len(table), dtype=np.int64)
    table, source = concatenate([read.table for read in reads])
    walls = table.wall_times
    if all(bool(np.all(np.diff(read.table.wall_times) >= 0)) for read in reads):
        # Each file in time order: merging is a stable sort by time.
        order = np.argsort(walls, kind="stable")
    else:  # Times going back (or NaN) within a file: merge as heapq does.
        bounds = np.concatenate([[0], np.cumsum([len(r.table) for r in reads])])
        times = walls.tolist()
        order = np.fromiter(heapq.merge(
            *(range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])),
            key=times.__getitem__,
        ), dtype=np.int64, count=len(walls))
    return table.select(order), source[order]


@functools.lru_cache(maxsize=4096)  # Asked once a record: a tag's answer is kept.
def _counts_for_order(tag: str) -> bool:
    """Whether a tag's steps show the order of training.

    A recorder writes in time order, its steps never going back, so a step
    below the highest so far means a new training. `stall_secs` is left
    out: it names the step where training resumed, which may be written
    once later steps are.
    """
    return is_recorder_tag(tag) and tag != STALL_SECS_TAG
