"""The input wait inside `fit`: how long each step waited for its batch.

Keras fetches the next batch inside the step it runs, where the batch hooks
cannot see it: in the compiled `train_function` on TensorFlow (the
`IteratorGetNext` op) and in Python inside `train_function(state, iterator)`
on JAX. `InputWaitMeter` wraps `model.train_function` for the length of one
`fit` and measures every wait it can see, in the counter's clock:

* Keras 3 on JAX (3.7 and later): the wrapper hands Keras a proxy of the
  iterator that times each `next()`. Every wait is seen, at a cost of
  under 1 µs a batch; nothing is sampled.
* Keras 3 on PyTorch: `fit` fetches each batch in its epoch loop, between
  one batch's end hook and the next one's begin hook. The meter times that
  gap between the hooks of the callback that attached it (the counter):
  every fetch but each epoch's first (which comes before the epoch's
  steps), and with it the batch-end hooks of the callbacks listed after
  the counter and the batch-begin hooks of those before it (Keras's
  progress bar, at `verbose=1`: about 5 µs a batch, measured). Nothing is
  sampled.
* Keras 3 on TensorFlow, and tf_keras: the wait is an op inside the
  compiled function, so the meter samples. It runs TensorFlow's profiler
  (`tf.profiler.experimental.start`/`stop`, into a temporary directory) for
  a window of `window_calls` calls of `train_function`, marks each call
  with its own event (`CALL_EVENT`), and reads the time spent in
  `IteratorGetNextOp::DoCompute` inside each call's event from the XPlane
  protos the profiler writes (`place_waits`). The first window starts at
  call `FIRST_WINDOW_CALL` of each `fit` (after tracing); the next one
  once the fit has run long enough that the windows cost at most
  `cost_budget` of its time by the meter's own estimate (0.3% by default,
  which keeps the meter under 1% of a long fit of millisecond steps,
  measured; see `InputWaitMeter`).
  With 30 calls of 1 ms, a window's estimated cost is 10-40 ms: one every
  3-13 s.
  `cost_budget=None` turns sampling off: windows follow each other for
  the whole fit (the profiler's cost, 15-70% of a millisecond CPU step,
  all along).

What it measures is time the training thread spent blocked on its next
batch: a lower bound of what a free input would save, `1 - c / s` (`c`
the step on in-memory arrays run back to back, `s` the step with this
input), since a step that has just waited also computes slower (thread
pools parked, caches cooled, the cores lent to other work). With a batch
every 5 ms on a ~1 ms step the share read 0.06-0.15 below `1 - c / s`
and within 0.07 of the time waited (benchmarks/README.md).

Where none of these works (Keras 3.5 and 3.6 on JAX, which fetch the batch
in the epoch loop; a step with no `IteratorGetNext` op in its profile,
such as a multi-device input), the meter says so once and measures
nothing: `waits_between` returns None, never a made-up zero.

Example:

    >>> import time
    >>> meter = InputWaitMeter(time.perf_counter)
    >>> meter.waits_between(0.0, 1.0) is None  # nothing attached: not measured
    True
"""

from __future__ import annotations

import bisect
import collections
import glob
import importlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

from keras_stepcounter.core.watchdog import fit_frame

__all__ = [
    "CALL_EVENT",
    "COST_BUDGET",
    "FIRST_WINDOW_CALL",
    "IN_WINDOW_SLOWDOWN",
    "InputWaitMeter",
    "InputWaits",
    "WAIT_EVENT",
    "WINDOW_CALLS",
    "place_waits",
    "read_events",
]

Clock = Callable[[], float]
Span = Tuple[float, float]

# TensorFlow's logger, as the counter's other warnings (core/rates.py).
_logger = logging.getLogger("tensorflow")

# The sampling defaults (TensorFlow): each is also an `InputWaitMeter`
# argument. A window of 30 calls is about 30-200 ms on a millisecond
# step, and its fixed cost (start, stop, parse: about 20 ms) is a small
# part of it; call 10 is past the tracing of the first calls, so a fit of
# a few hundred steps gets its window.
WINDOW_CALLS = 30
FIRST_WINDOW_CALL = 10
# 0.3% for the windows, by the meter's own estimate of their cost.
# Measured in benchmarks/input_wait.py, a window costs two to three times
# what the estimate sees (the calls just after it are slower too), and
# the wrapper adds a few µs a call: at 0.4% the meter cost 0.8-1.0% of a
# long fit of 0.7 ms steps, at 0.5% 1.0-1.04%.
COST_BUDGET = 0.003
# The profiler slows the calls inside a window (by 15-70% on a
# millisecond CPU step, benchmarks/input_wait.py). The meter books each
# window's calls beyond the usual call outside windows as its cost, on top
# of the start, stop and parse it times itself; before it has timed a call
# outside a window, this share of the window's length.
IN_WINDOW_SLOWDOWN = 0.7
# The op whose `DoCompute` blocks until the next element is ready: the
# input wait of one step, as TensorFlow's own input-pipeline analyzer reads it.
WAIT_EVENT = "IteratorGetNextOp::DoCompute"
# The event the meter puts around each `train_function` call of a window
# (`tf.profiler.experimental.Trace`, about 1 µs): the call in the
# profiler's own clock, where its waits are read (`place_waits`).
CALL_EVENT = "keras_stepcounter.train_function"
# The first Keras whose JAX trainer calls `next(iterator)` inside
# `train_function` (3.5 and 3.6 fetch in the epoch loop, out of reach).
_JAX_ITERATOR_KERAS = (3, 7)


@dataclass(frozen=True)
class InputWaits:
    """What the meter measured inside one clock interval.

    Args:
        measured: the clock spans inside the interval the meter measured
            (from attach to detach on JAX; the profiler windows on
            TensorFlow). They may hold time the counter leaves out of
            training time (an epoch's end inside a window): a caller
            takes both lists' overlap with its own training time.
        waits: each wait of a training step for its batch inside
            `measured`, clipped to it.

    Example:
        >>> waits = InputWaits(measured=((0.0, 1.0),), waits=((0.2, 0.5),))
        >>> round(waits.share, 3)
        0.3
    """

    measured: Tuple[Span, ...]
    waits: Tuple[Span, ...]

    @property
    def measured_secs(self) -> float:
        """Seconds of the interval that were measured."""
        return sum(end - start for start, end in self.measured)

    @property
    def wait_secs(self) -> float:
        """Seconds of the measured time spent waiting for input."""
        return sum(end - start for start, end in self.waits)

    @property
    def share(self) -> float:
        """`wait_secs / measured_secs` (0 when nothing was measured)."""
        measured = self.measured_secs
        return self.wait_secs / measured if measured > 0 else 0.0


class _SpanList:
    """Sorted, non-overlapping clock spans, with clipped look-ups."""

    def __init__(self) -> None:
        self._starts: List[float] = []
        self._ends: List[float] = []

    def add(self, start: float, end: float) -> None:
        # Spans come in time order; one that starts before the last ends
        # (a coarse clock) is merged rather than stored overlapping.
        if self._ends and start < self._ends[-1]:
            self._ends[-1] = max(self._ends[-1], end)
            return
        self._starts.append(start)
        self._ends.append(end)

    def close_last(self, end: float) -> None:
        """Ends the last span (an open one, stored with an infinite end)."""
        if self._ends and self._ends[-1] == float("inf"):
            self._ends[-1] = max(end, self._starts[-1])

    def inside(self, start: float, end: float) -> List[Span]:
        """The spans overlapping [start, end], clipped to it."""
        first = bisect.bisect_right(self._ends, start)
        clipped = []
        for index in range(first, len(self._starts)):
            span_start = self._starts[index]
            if span_start >= end:
                break
            clipped.append((max(span_start, start), min(self._ends[index], end)))
        return [span for span in clipped if span[1] > span[0]]

    def discard_before(self, time_point: float) -> None:
        keep = bisect.bisect_right(self._ends, time_point)
        del self._starts[:keep], self._ends[:keep]

    def __len__(self) -> int:
        return len(self._starts)


def _intersect(spans: Sequence[Span], within: Sequence[Span]) -> List[Span]:
    """Each span of `spans` clipped to the spans of `within` (both sorted)."""
    result = []
    for start, end in spans:
        for within_start, within_end in within:
            clipped = (max(start, within_start), min(end, within_end))
            if clipped[1] > clipped[0]:
                result.append(clipped)
    return result


class _TimedIterator:
    """Passes batches through, timing each `next()` (the JAX wait).

    Holds the clock and the span lists' `append`s themselves: this runs
    once a batch, and each lookup saved is a share of its cost. Waits come
    one after another in the training thread, so they are appended in
    order without the merge check of `_SpanList.add`.
    """

    __slots__ = ("iterator", "_clock", "_append_start", "_append_end")

    def __init__(self, iterator: Iterator[Any], clock: Clock, spans: "_SpanList") -> None:
        self.iterator = iterator
        self._clock = clock
        self._append_start = spans._starts.append
        self._append_end = spans._ends.append

    def __iter__(self) -> "_TimedIterator":
        return self

    def __next__(self) -> Any:
        clock = self._clock
        start = clock()
        batch = next(self.iterator)  # StopIteration ends the epoch: no wait.
        end = clock()
        self._append_start(start)
        self._append_end(end)
        return batch


# No iterator yet: `args[1] is _NO_ITERATOR` is never true.
_NO_ITERATOR = object()


class _TrainFunctionWrapper:
    """Stands in for `model.train_function` while a meter is attached.

    `fit` looks the attribute up at every call (Keras 3 on every backend,
    tf_keras), so an instance attribute set at `on_train_begin` is the
    function it runs; `detach` puts the original back. `call` is the
    meter's method for its backend, swapped for a plain pass-through when
    the meter stops measuring.

    On JAX, Keras passes the same iterator at every call of an epoch: once
    the meter has made its timing proxy (`iterator`, `proxy`), those calls
    take the one-level path in `__call__` (this runs once a batch, beside
    steps of well under a millisecond).
    """

    __slots__ = ("original", "call", "iterator", "proxy")

    def __init__(self, original: Callable[..., Any], call: Callable[..., Any]) -> None:
        self.original = original
        self.call = call
        self.iterator: Any = _NO_ITERATOR
        self.proxy: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 2 and args[1] is self.iterator:
            return self.original(args[0], self.proxy, **kwargs)
        return self.call(self.original, args, kwargs)


# Where TensorFlow wheels ship the XPlane protos (private modules: no
# public path reads a profile; tests/test_input_wait.py fails when none of
# them imports).
XPLANE_MODULES = (
    "tensorflow.tsl.profiler.protobuf.xplane_pb2",
    "tsl.profiler.protobuf.xplane_pb2",
    "tensorflow.core.profiler.protobuf.xplane_pb2",
)


def _xplane_pb2() -> Any:
    """TensorFlow's XPlane protos, from the first place that has them."""
    for name in XPLANE_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"no XPlane protos in this TensorFlow (looked for {', '.join(XPLANE_MODULES)})")


NsSpan = Tuple[int, int]


def read_events(profile_dir: str, names: Sequence[str]) -> Optional[Dict[str, List[NsSpan]]]:
    """The events of a profile with the given names, in the profiler's ns.

    Args:
        profile_dir: the `logdir` given to `tf.profiler.experimental.start`.
        names: the event names to read (`WAIT_EVENT`, `CALL_EVENT`).

    Returns:
        For each name, `(start_ns, end_ns)` of its events, sorted; None when
        the directory holds no profile. The times are the profiler's own
        (absl's estimate of the wall clock, not what `time.time_ns()`
        reads): compare them with each other, not with another clock.

    Example:
        >>> read_events("/nonexistent", [WAIT_EVENT]) is None
        True
    """
    files = sorted(glob.glob(os.path.join(profile_dir, "plugins", "profile", "*", "*.xplane.pb")))
    if not files:
        return None
    xplane_pb2 = _xplane_pb2()
    events: Dict[str, List[NsSpan]] = {name: [] for name in names}
    for path in files:
        space = xplane_pb2.XSpace()
        with open(path, "rb") as file:
            space.ParseFromString(file.read())
        _add_space_events(space, events)
    return {name: sorted(spans) for name, spans in events.items()}


_ABSOLUTE_NS = 10**17


def _add_space_events(space: Any, events: Dict[str, List[NsSpan]]) -> None:
    # Line timestamps are relative to the session's start, which the
    # "Task Environment" plane holds as `profile_start_time` where the
    # TensorFlow writes it (2.16 does not: the times stay relative to
    # the start, one base for every line all the same).
    start_ns = 0
    for plane in space.planes:
        stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        for stat in plane.stats:
            if stat_names.get(stat.metadata_id) == "profile_start_time":
                start_ns = int(stat.uint64_value)
    for plane in space.planes:
        wanted = {key: events[meta.name] for key, meta in plane.event_metadata.items() if meta.name in events}
        if not wanted:
            continue
        for line in plane.lines:
            # Older profilers wrote absolute times (epoch ns, above 1e17).
            base_ns = line.timestamp_ns if line.timestamp_ns > _ABSOLUTE_NS else start_ns + line.timestamp_ns
            for event in line.events:
                spans = wanted.get(event.metadata_id)
                if spans is not None:
                    begin = base_ns + event.offset_ps // 1000
                    spans.append((begin, begin + event.duration_ps // 1000))


def place_waits(
    calls_ns: Sequence[NsSpan], waits_ns: Sequence[NsSpan], call_spans: Sequence[Span]
) -> List[Span]:
    """The waits inside training calls, placed in the counter's clock.

    Each call of a window is in the profile as a `CALL_EVENT`, in the same
    clock as its waits. A wait inside call `i`'s event lies as far from
    that call's start in the counter's clock (`call_spans[i]`), clipped to
    the call. The profiler's clock is never mapped onto the counter's as
    a whole, so no difference between the two (mapped through one
    `time.time_ns()` read, CI once lost 13 of a window's 30 waits out of
    their calls) can move a wait out of its call or into another. A wait
    in no call's event (an evaluation reading its own iterator between
    two training calls) is no training wait.

    Args:
        calls_ns: the window's `CALL_EVENT`s, in the profiler's ns, sorted.
        waits_ns: its `WAIT_EVENT`s, likewise.
        call_spans: the same calls, in the counter's clock, in order.

    Raises:
        ValueError: the profile does not hold each call once.

    Example:
        >>> place_waits([(1000, 5000)], [(2000, 3000)], [(10.0, 10.5)])
        [(10.000001, 10.000002)]
    """
    if len(calls_ns) != len(call_spans):
        raise ValueError(
            f"the profile holds {len(calls_ns)} of the window's {len(call_spans)} train_function calls"
        )
    call_starts_ns = [start for start, _ in calls_ns]
    placed = []
    for wait_start_ns, wait_end_ns in waits_ns:
        index = bisect.bisect_right(call_starts_ns, wait_start_ns) - 1
        if index < 0 or wait_start_ns >= calls_ns[index][1]:
            continue
        began, ended = call_spans[index]
        start = min(began + (wait_start_ns - call_starts_ns[index]) / 1e9, ended)
        end = min(began + (wait_end_ns - call_starts_ns[index]) / 1e9, ended)
        if end > start:
            placed.append((start, end))
    return placed


class InputWaitMeter:
    """Measures the input wait of each step of a `fit`, in the counter's clock.

    Attach it at `on_train_begin` (in the training thread), detach it when
    the fit ends or raised; ask `waits_between(start, end)` for the waits
    inside a clock interval.

    Args:
        clock: the counter's monotonic clock, in seconds (`time.perf_counter`).
            On TensorFlow a wait is placed at its offset (in the
            profiler's clock) from its call's start, so it must tick in
            real seconds there.
        window_calls: `train_function` calls per profiler window
            (TensorFlow); default `WINDOW_CALLS`.
        first_window_call: the call of each fit (1-based) that opens the
            first window; default `FIRST_WINDOW_CALL`.
        cost_budget: the share of the fit's time the windows may cost
            (TensorFlow): after a window that cost C seconds (its start,
            stop and parse, plus its calls' time beyond the usual call's),
            the next opens C / cost_budget seconds later. None: no
            sampling, windows back to back. Default `COST_BUDGET` (0.3%).

    Raises:
        TypeError: `clock` is not callable.
        ValueError: `window_calls` or `first_window_call` is not a positive
            integer, or `cost_budget` is not in (0, 1].

    Example:
        >>> import time
        >>> meter = InputWaitMeter(time.perf_counter, window_calls=20)
        >>> meter.detach()  # idempotent, also when never attached
    """

    def __init__(
        self,
        clock: Clock = time.perf_counter,
        *,
        window_calls: int = WINDOW_CALLS,
        first_window_call: int = FIRST_WINDOW_CALL,
        cost_budget: Optional[float] = COST_BUDGET,
    ) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {clock!r}")
        for name, value in (("window_calls", window_calls), ("first_window_call", first_window_call)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if cost_budget is not None and (
            isinstance(cost_budget, bool)
            or not isinstance(cost_budget, (int, float))
            or not 0 < cost_budget <= 1
        ):
            raise ValueError(f"cost_budget must be in (0, 1] or None, got {cost_budget!r}")
        self.clock = clock
        self.window_calls = window_calls
        self.first_window_call = first_window_call
        self.cost_budget = cost_budget
        self._waits = _SpanList()
        self._measured = _SpanList()
        self._model: Any = None
        self._wrapper: Optional[_TrainFunctionWrapper] = None
        self._mode: Optional[str] = None  # "jax", "torch" or "profiler" while attached
        self._warned = False
        # Profiler sampling (TensorFlow).
        self._calls = 0
        self._next_window_at: Optional[float] = None  # clock time; None: by call
        self._window: Optional[_Window] = None
        # Call times: the open window's calls (its waits are placed from
        # their starts; their length is its cost), and the latest calls
        # outside windows.
        self._window_call_spans: List[Span] = []
        self._outside_call_secs: Deque[float] = collections.deque(maxlen=_USUAL_CALLS)
        # torch: the timer of the gaps between the callback's batch hooks.
        self._gaps: Optional[_BatchGapTimer] = None
        # The frame of the Keras `fit` that attached the meter, while
        # attached: a wrapper that finds it gone (the fit raised, and Keras
        # calls no `on_train_end`) takes itself off. Held no longer than
        # the wrapper (the raised exception's traceback holds it as long).
        self._fit: Optional[FrameType] = None

    # -- public ---------------------------------------------------------

    def attach(self, model: Any, callback: Any = None) -> bool:
        """Starts measuring `model`'s next `fit` (call at `on_train_begin`).

        Args:
            model: the Keras model being fitted; its `train_function` must
                be made (Keras makes it before `on_train_begin`).
            callback: the Keras callback attaching the meter (the counter).
                On the torch backend, where `fit` fetches each batch between
                the callbacks' batch hooks, the meter times the gap from
                this callback's `on_train_batch_end` to its next
                `on_train_batch_begin` (it wraps those two hooks and
                `on_epoch_end` for the fit); without it, torch is not
                measured. Its batch end must run in the training thread:
                Keras runs batch ends in a thread pool on torch unless a
                callback defines `on_train_batch_end` (the counter does,
                `async_safe` False). Other backends do not use it.

        Returns:
            True when this backend can be measured; False (after one warning
            per meter, saying why) when it cannot.
        """
        self.detach()
        mode, reason = _mode_for(model)
        if mode == "torch" and callback is None:
            mode, reason = None, "on the torch backend the meter needs the callback's batch hooks"
        if mode is None:
            self._warn(reason + "; the input wait is not measured")
            return False
        self._model, self._mode = model, mode
        # sys._getframe: the only way to reach the caller's frames.
        self._fit = fit_frame(sys._getframe())
        if mode == "torch":
            self._gaps = _BatchGapTimer(callback, self.clock, self._waits)
            self._measured.add(self.clock(), float("inf"))
            return True
        original = _unwrapped(model.train_function)
        call = self._call_jax if mode == "jax" else self._call_profiled
        self._wrapper = _TrainFunctionWrapper(original, call)
        model.train_function = self._wrapper
        self._calls, self._next_window_at = 0, None
        self._window_call_spans = []
        self._outside_call_secs.clear()
        if mode == "jax":
            self._measured.add(self.clock(), float("inf"))
        return True

    def detach(self) -> None:
        """Stops measuring and puts `model.train_function` back (idempotent;
        stops an open profiler window without reading it)."""
        self._end_timing()
        model = self._model
        wrapper = self._wrapper
        self._model, self._wrapper, self._mode, self._fit = None, None, None, None
        if wrapper is None:
            return
        # Only our own wrapper is taken off: a train_function that Keras
        # (make_train_function(force=True)) or the user set since stays.
        original = wrapper.original
        if getattr(model, "train_function", None) is wrapper:
            model.train_function = original

    def waits_between(self, start: float, end: float) -> Optional[InputWaits]:
        """The measured time and the input waits inside [start, end].

        Args:
            start: the interval's start, in the meter's clock.
            end: its end.

        Returns:
            None when no part of the interval was measured (TensorFlow: no
            profiler window in it; or the backend cannot be measured);
            otherwise `InputWaits`, whose `waits` may be empty.
        """
        measured = self._measured.inside(start, end)
        if not measured:
            return None
        waits = _intersect(self._waits.inside(start, end), measured)
        return InputWaits(measured=tuple(measured), waits=tuple(waits))

    def discard_before(self, time_point: float) -> None:
        """Forgets the spans that ended by `time_point` (bounds the memory
        of a long fit: the JAX path keeps one wait a batch)."""
        self._waits.discard_before(time_point)
        self._measured.discard_before(time_point)

    # -- the wrapped train_function ------------------------------------

    @staticmethod
    def _call_plain(original: Callable[..., Any], args: Tuple[Any, ...], kwargs: Any) -> Any:
        return original(*args, **kwargs)

    def _call_jax(self, original: Callable[..., Any], args: Tuple[Any, ...], kwargs: Any) -> Any:
        # Keras >= 3.7 calls train_function(state, iterator): a new
        # iterator (each epoch's) gets its proxy, which the wrapper then
        # passes itself for the same iterator's calls.
        wrapper = self._wrapper
        if self._fit_left():
            self.detach()
            return original(*args, **kwargs)
        if len(args) == 2 and hasattr(args[1], "__next__") and wrapper is not None:
            proxy = _TimedIterator(args[1], self.clock, self._waits)
            wrapper.iterator, wrapper.proxy = args[1], proxy
            return original(args[0], proxy, **kwargs)
        self._stop_measuring(
            "Keras on JAX called train_function without an iterator; the input wait is not measured"
        )
        return original(*args, **kwargs)

    def _call_profiled(self, original: Callable[..., Any], args: Tuple[Any, ...], kwargs: Any) -> Any:
        self._calls += 1
        if self._window is None and self._window_due():
            if self._fit_left():
                self.detach()
                return original(*args, **kwargs)
            self._open_window()
        window, clock = self._window, self.clock
        began = clock()
        try:
            if window is None:
                return original(*args, **kwargs)
            with window.trace(CALL_EVENT):
                return original(*args, **kwargs)
        finally:
            ended = clock()
            if window is not None:
                self._window_call_spans.append((began, ended))
                if len(self._window_call_spans) >= self.window_calls:
                    self._close_window()
            elif self._calls > 1:  # The first call traces: not a step's time.
                self._outside_call_secs.append(ended - began)

    # -- profiler windows (TensorFlow) ---------------------------------

    def _window_due(self) -> bool:
        if self._next_window_at is None:
            return self._calls >= self.first_window_call
        return self.clock() >= self._next_window_at

    def _open_window(self) -> None:
        try:
            window = _Window.open(self.clock)
        except Exception as error:  # The meter never fails a fit.
            self._stop_measuring(f"the profiler did not start ({error}); the input wait is not measured")
            return
        if window is None:  # Another profiler session runs: try later.
            self._next_window_at = self.clock() + _RETRY_SECS
            return
        self._window = window

    def _close_window(self) -> None:
        window, self._window = self._window, None
        assert window is not None
        call_spans, self._window_call_spans = self._window_call_spans, []
        try:
            result = window.close(call_spans)
        except Exception as error:  # The meter never fails a fit.
            self._stop_measuring(f"the profile could not be read ({error}); the input wait is not measured")
            return
        if result is None:
            self._stop_measuring("the profiler wrote no profile; the input wait is not measured")
            return
        span, waits, own_cost = result
        cost = own_cost + self._slowdown_secs(call_spans, span)
        if not waits:
            # No IteratorGetNext in the step (a multi-device input...):
            # zero would be made up.
            self._stop_measuring(
                f"no {WAIT_EVENT} in the profile of {len(call_spans)} steps; "
                "the input wait is not measured for this input"
            )
            return
        self._measured.add(*span)
        for wait in waits:
            self._waits.add(*wait)
        gap = 0.0 if self.cost_budget is None else cost / self.cost_budget
        self._next_window_at = self.clock() + gap

    def _slowdown_secs(self, call_spans: Sequence[Span], span: Span) -> float:
        """What the profiler added to a window's calls: their time beyond
        the median of the latest calls outside windows (a median: a slow
        call, such as the first after a window, would inflate a mean)."""
        if not self._outside_call_secs:
            return IN_WINDOW_SLOWDOWN * (span[1] - span[0])
        usual = statistics.median(self._outside_call_secs)
        call_secs = sum(ended - began for began, ended in call_spans)
        return max(0.0, call_secs - len(call_spans) * usual)

    # -- helpers --------------------------------------------------------

    def _stop_measuring(self, reason: str) -> None:
        self._warn(reason)
        self._end_timing()
        self._mode = "off"
        if self._wrapper is not None:
            self._wrapper.call = self._call_plain
            self._wrapper.iterator, self._wrapper.proxy = _NO_ITERATOR, None

    def _fit_left(self) -> bool:
        """Whether the `fit` that attached the meter has left this thread's
        stack: it raised, and a later `fit` runs the wrapper. Looked at once
        an epoch (JAX) or before a window (TensorFlow), never per batch."""
        fit = self._fit
        frame: Optional[FrameType] = sys._getframe(1)
        while fit is not None and frame is not None:
            if frame is fit:
                return False
            frame = frame.f_back
        return fit is not None

    def _end_timing(self) -> None:
        """Ends what times the waits: an open profiler window (not read),
        the torch hooks, the span measured since `attach`."""
        if self._window is not None:
            self._window.abandon()
            self._window = None
        if self._gaps is not None:
            self._gaps.remove()
            self._gaps = None
        if self._mode in _EVERY_BATCH_MODES:
            self._measured.close_last(self.clock())

    def _warn(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            _logger.warning("keras_stepcounter: input_stats: %s.", reason)


# TensorFlow's default host tracing: it records the op events read here
# (level 1 also did on TensorFlow 2.21, at no measurable saving).
_HOST_TRACER_LEVEL = 2
# The latest calls outside windows whose median is the usual call.
_USUAL_CALLS = 31
# After a failed start (another profiler session), the next try comes this
# many seconds later.
_RETRY_SECS = 10.0


class _Window:
    """One profiler session into a temporary directory."""

    def __init__(self, clock: Clock, directory: str, began: float, cost: float, trace: Any) -> None:
        self.clock = clock
        self.directory = directory
        self.began = began  # clock, after the profiler started
        self.cost = cost  # seconds spent starting it
        self.trace = trace  # tf.profiler.experimental.Trace: each call's event

    @classmethod
    def open(cls, clock: Clock) -> Optional["_Window"]:
        import tensorflow as tf

        before = clock()
        directory = tempfile.mkdtemp(prefix="keras_stepcounter_input_")
        options = tf.profiler.experimental.ProfilerOptions(
            host_tracer_level=_HOST_TRACER_LEVEL, python_tracer_level=0, device_tracer_level=0
        )
        try:
            tf.profiler.experimental.start(directory, options=options)
        except tf.errors.AlreadyExistsError:  # The user's or TensorBoard's session.
            shutil.rmtree(directory, ignore_errors=True)
            return None
        began = clock()
        return cls(clock, directory, began, began - before, tf.profiler.experimental.Trace)

    def close(self, call_spans: Sequence[Span]) -> Optional[Tuple[Span, List[Span], float]]:
        """Stops the profiler and reads it: (measured span, the waits of
        the training calls `call_spans`, the seconds spent starting,
        stopping and reading it). Raises ValueError when the profile
        does not hold each call once (`place_waits`)."""
        import tensorflow as tf

        ended = self.clock()
        try:
            tf.profiler.experimental.stop()
            events = read_events(self.directory, (CALL_EVENT, WAIT_EVENT))
        except tf.errors.UnavailableError:  # Someone stopped our session.
            return None
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
        if events is None:
            return None
        waits = place_waits(events[CALL_EVENT], events[WAIT_EVENT], call_spans)
        own_cost = self.cost + (self.clock() - ended)
        return (self.began, ended), waits, own_cost

    def abandon(self) -> None:
        import tensorflow as tf

        try:
            tf.profiler.experimental.stop(save=False)
        except Exception:  # Already stopped (UnavailableError), or broken: nothing to keep.
            pass
        shutil.rmtree(self.directory, ignore_errors=True)


# The modes that measure every batch, from attach to detach.
_EVERY_BATCH_MODES = ("jax", "torch")


class _BatchGapTimer:
    """Times the fetch between batches on torch: from the callback's
    `on_train_batch_end` to its next `on_train_batch_begin`.

    Keras 3's torch trainer runs `for ... data in epoch_iterator:
    on_train_batch_begin; train_function(data); on_train_batch_end`, so
    the next batch is fetched between the two hooks. The gap also holds the
    batch-end hooks of the callbacks listed after this one (Keras's
    progress bar, at `verbose=1`) and the batch-begin hooks of those
    before it. An epoch's end resets it: the epoch's last gap (validation,
    the next epoch's first fetch) is no step's wait.

    The hooks are wrapped as instance attributes (Keras calls
    `callback.on_train_batch_end(...)` on the instance, as the counter's
    own hot path relies on) and put back by `remove`.
    """

    _HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_epoch_end")

    def __init__(self, callback: Any, clock: Clock, spans: _SpanList) -> None:
        self.callback = callback
        # What each hook was in the instance's own attributes (None: the class's).
        self._saved = {name: callback.__dict__.get(name) for name in self._HOOKS}
        self._ended: Optional[float] = None
        begin, end, epoch_end = (getattr(callback, name) for name in self._HOOKS)
        append_start, append_end = spans._starts.append, spans._ends.append

        def on_train_batch_begin(batch: Any, logs: Any = None) -> Any:
            ended = self._ended
            if ended is not None:
                self._ended = None
                append_start(ended)
                append_end(clock())
            return begin(batch, logs)

        def on_train_batch_end(batch: Any = None, logs: Any = None) -> Any:
            result = end(batch, logs)
            self._ended = clock()
            return result

        def on_epoch_end(epoch: Any, logs: Any = None) -> Any:
            self._ended = None
            return epoch_end(epoch, logs)

        self._installed = {
            "on_train_batch_begin": on_train_batch_begin,
            "on_train_batch_end": on_train_batch_end,
            "on_epoch_end": on_epoch_end,
        }
        for name, hook in self._installed.items():
            setattr(callback, name, hook)

    def remove(self) -> None:
        """Puts the callback's hooks back (only those still ours)."""
        for name, hook in self._installed.items():
            if self.callback.__dict__.get(name) is not hook:
                continue  # Set since by someone else: theirs stays.
            saved = self._saved[name]
            if saved is None:
                delattr(self.callback, name)
            else:
                setattr(self.callback, name, saved)


def _unwrapped(function: Any) -> Any:
    # A wrapper a meter left behind (a fit that never detached) is not
    # wrapped twice.
    while isinstance(function, _TrainFunctionWrapper):
        function = function.original
    return function


def _mode_for(model: Any) -> Tuple[Optional[str], str]:
    """How this model's input wait is measured, or why it cannot be."""
    if getattr(model, "train_function", None) is None:
        return None, "the model has no train_function yet"
    backend, version = _backend_and_version(model)
    if backend == "tensorflow":
        return "profiler", ""
    if backend == "jax":
        if version >= _JAX_ITERATOR_KERAS:
            return "jax", ""
        return None, (
            f"Keras {'.'.join(map(str, version))} on JAX fetches each batch outside "
            "train_function (Keras 3.7 and later do not)"
        )
    if backend == "torch":
        return "torch", ""
    return None, f"the {backend} backend is not supported"


def _backend_and_version(model: Any) -> Tuple[str, Tuple[int, ...]]:
    module = type(model).__module__.split(".")[0]
    if module == "tf_keras" or _is_tf_keras_model(model):
        return "tensorflow", (2,)
    import keras

    return str(keras.backend.backend()), _version_tuple(keras.__version__)


def _is_tf_keras_model(model: Any) -> bool:
    return any(cls.__module__.split(".")[0] == "tf_keras" for cls in type(model).__mro__)


def _version_tuple(version: str) -> Tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
