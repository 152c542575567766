"""A stall watchdog: says when training stops making progress, and where.

A process that hangs (an input pipeline waiting forever, a lock, a
collective one worker never joins) looks alive: no error, no log line.
`StallWatchdog` runs a daemon thread that compares the run's last progress
(the timeline's last step end, `None` while paused) with the clock. When no
step has ended for the threshold, it logs one warning with the step
training is at and the Python stack of the training thread, so the line
training is stuck in shows in the log, and asks the recorder to read the
step at the next batch end. That batch end ends the stall: the recorder
takes it (`take_stall`) and books it on the timeline.

What the two threads share is this object's stall state (`_pending`, the
start of a reported stall not yet taken, and `_reported`, the progress
time already warned about), under one lock; the watchdog thread otherwise
only reads floats through its callables and never touches TensorFlow.

The watchdog belongs to its run. Keras does not call `on_train_end` when
`fit` raises (an error, Ctrl-C), so besides `stop()` the thread watches the
training thread's stack: when the frame that started the run (`fit`, or a
custom loop's function) has left it, the run is over, and the thread ends
without a word, within `MAX_WAKE_SECS`.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable, Optional, Union

from keras_stepcounter.core.checks import check_positive_number
from keras_stepcounter.core.rates import tf_logger

AUTO = "auto"
AUTO_FACTOR = 10.0  # "auto": this many typical steps...
AUTO_MIN_SECS = 60.0  # ...but never less than this.
MIN_WAKE_SECS = 0.05
# At most this long between two looks: how late a stall can be noticed
# beyond a tenth of its threshold, and how long the thread outlives a run
# that ended without stop().
MAX_WAKE_SECS = 1.0
_JOIN_TIMEOUT_SECS = 10.0
THREAD_NAME = "keras_stepcounter-stall-watchdog"

StallSecs = Union[float, str]


def check_stall_secs(stall_secs: Any) -> Optional[StallSecs]:
    """`None` (off), `"auto"`, or a positive finite number of seconds.

    Raises ValueError/TypeError naming `stall_secs` otherwise, so the
    recorders can fail at construction.
    """
    if stall_secs is None:
        return None
    if isinstance(stall_secs, str):
        if stall_secs == AUTO:
            return AUTO
        raise ValueError(
            f'stall_secs must be a positive number of seconds or "auto", '
            f"got {stall_secs!r}."
        )
    return check_positive_number("stall_secs", stall_secs)


@dataclass
class _Watch:
    """One run's watch: the training thread, the frame that started the run,
    and the event that stops the thread."""

    thread_id: int
    anchor: Optional[FrameType]
    stopped: threading.Event = field(default_factory=threading.Event)


class StallWatchdog:
    """Warns once per stall, with the training thread's stack.

    Args:
        stall_secs: Seconds without a step end that make a stall, or
            `"auto"`: ten times `typical_step_secs()`, at least 60 s (60 s
            while the typical time is unknown).
        progress: Returns the clock time since which a step end is awaited
            (the last step end, or when steps began), or `None` while
            paused.
        step_text: Says which global step training is at, for the warning.
        typical_step_secs: Returns a typical step time in seconds, or
            `None`; used only by `"auto"`. These three are called from the
            watchdog thread: let them read attributes, nothing more.
        on_stall: Called from the watchdog thread after a stall is found;
            must be cheap and thread-safe (set a number).
        clock: The clock `progress` times come from.
        logger: Where the warning and the resume line go.
        warn: Log the warning and the resume line. False finds stalls for
            the goodput ledger alone.
        process: Names this process in a multi-process job (its lines then
            say which process they come from).

    Example:

    ```python
    watchdog = StallWatchdog(300, progress=lambda: timeline.last_end,
                             step_text=lambda: f"global step {step}")
    watchdog.start(threading.get_ident(), anchor=sys._getframe(1))
    ...  # At each batch end that reads the step:
    start = watchdog.take_stall(now)   # A stall's start, once it ended.
    watchdog.stop()
    ```
    """

    def __init__(
        self,
        stall_secs: StallSecs,
        *,
        progress: Callable[[], Optional[float]],
        step_text: Callable[[], str] = lambda: "an unknown global step",
        typical_step_secs: Callable[[], Optional[float]] = lambda: None,
        on_stall: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.perf_counter,
        logger: logging.Logger = tf_logger,
        warn: bool = True,
        process: Optional[str] = None,
    ) -> None:
        checked = check_stall_secs(stall_secs)
        if checked is None:
            raise TypeError('stall_secs must be a positive number or "auto", got None.')
        self._stall_secs = checked
        self._progress = progress
        self._step_text = step_text
        self._typical_step_secs = typical_step_secs
        self._on_stall = on_stall
        self._clock = clock
        self._logger = logger
        self._who = "keras_stepcounter"
        self._warn_on = warn
        self.process = process
        self._lock = threading.Lock()
        self._reported: Optional[float] = None
        self._pending: Optional[float] = None
        self._watch: Optional[_Watch] = None
        self._thread: Optional[threading.Thread] = None
        self._start_failure_said = False

    @property
    def process(self) -> Optional[str]:
        """This process's name in a job of several, for the lines; or None."""
        return self._process

    @process.setter
    def process(self, process: Optional[str]) -> None:
        self._process = process
        self._in_process = "" if process is None else f" in {process}"

    @property
    def warns(self) -> bool:
        """Logs its warning and resume line (else it finds stalls for the
        ledger alone)."""
        return self._warn_on

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pending(self) -> bool:
        """A stall was found and has not ended yet (read by the training thread)."""
        return self._pending is not None

    def threshold_secs(self) -> float:
        """The stall threshold now (`"auto"` follows the typical step time)."""
        if not isinstance(self._stall_secs, str):
            return self._stall_secs
        typical = self._typical_step_secs()
        if typical is None or not math.isfinite(typical) or typical <= 0:
            return AUTO_MIN_SECS
        return max(AUTO_MIN_SECS, AUTO_FACTOR * typical)

    def wake_secs(self) -> float:
        """Seconds between looks: a tenth of the threshold, bounded."""
        return min(MAX_WAKE_SECS, max(MIN_WAKE_SECS, self.threshold_secs() / 10))

    # The training thread. --------------------------------------------------

    def start(self, thread_id: int, anchor: Optional[FrameType] = None) -> None:
        """Starts watching the training thread `thread_id` for one run.

        `anchor` is the frame that started the run: once it has left that
        thread's stack, the run is over and the thread ends. A running
        watch is stopped first, and stall state is forgotten. A thread
        that cannot start is one warning (per counter); training goes on.
        """
        self.stop()
        with self._lock:
            self._reported = self._pending = None
        watch = self._watch = _Watch(thread_id, anchor)
        thread = threading.Thread(
            target=self._run_watch, args=(watch,), name=THREAD_NAME, daemon=True
        )
        try:
            thread.start()
        except Exception as error:  # RuntimeError: can't start new thread.
            self._watch = None
            watch.anchor = None
            if not self._start_failure_said:
                self._start_failure_said = True
                self._logger.warning(
                    "%s: the stall watchdog's thread could not start (%r); "
                    "training goes on without it.", self._who, error,
                )
            return
        self._thread = thread

    def stop(self) -> None:
        """Stops and joins the thread, and forgets the run's stall state (a
        stall its run left open is nobody's to end); safe to repeat, or if
        never started."""
        watch, self._watch = self._watch, None
        thread, self._thread = self._thread, None
        if watch is not None:
            watch.stopped.set()
            watch.anchor = None  # Holds the run's frame (and its locals) no longer.
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_SECS)
        with self._lock:
            self._reported = self._pending = None

    def take_stall(self, now: float) -> Optional[float]:
        """The start of a found stall that a step end at `now` ended, once.

        None (one attribute read) when no stall is pending, or when it
        started at `now` itself (the counter's work on that very batch end
        is what hangs: the next step end ends it).
        """
        if self._pending is None:
            return None
        with self._lock:
            start = self._pending
            if start is None or now <= start:
                return None
            self._pending = None
        return start

    def cancel_stall(self) -> Optional[float]:
        """Forgets a pending stall (steps paused: the wait is pause time by
        the timeline's rule); returns its start, or None."""
        with self._lock:
            start, self._pending = self._pending, None
        return start

    def log_resumed(self, seconds: float, step: Optional[int]) -> None:
        if self._warn_on:
            self._logger.info(
                "%s: training resumed%s after a %.1f s stall, at global step %s.",
                self._who, self._in_process, seconds, step,
            )

    def log_stall_at_pause(self, seconds: float) -> None:
        if self._warn_on:
            self._logger.info(
                "%s: the %.1f s without a step%s ended at an epoch end (or a "
                "paused() block); it is counted as epoch-boundary time, not "
                "as a stall.", self._who, seconds, self._in_process,
            )

    # The watchdog thread. --------------------------------------------------

    def poll(self) -> bool:
        """One look (what the thread does at each wake).

        Returns True when it found a new stall: one warning (if warning),
        then `on_stall()`.
        """
        with self._lock:
            waited = self._new_stall()
        if waited is None:
            return False
        watch = self._watch
        if watch is not None and not _run_alive(watch):
            return False  # The run ended meanwhile: not its stall.
        if self._warn_on:
            self._warn(waited, watch)
        self._on_stall()
        return True

    def _new_stall(self) -> Optional[float]:
        """Seconds waited, when a stall not yet reported is due."""
        last = self._progress()
        if last is None or last == self._reported:
            return None
        waited = self._clock() - last
        if waited < self.threshold_secs():
            return None
        self._reported = self._pending = last
        return waited

    def _warn(self, waited: float, watch: Optional[_Watch]) -> None:
        self._logger.warning(
            "%s: no training step has ended%s for %.1f s (stall_secs: %.1f); "
            "%s. Stack of the training thread (most recent call last):\n%s",
            self._who,
            self._in_process,
            waited,
            self.threshold_secs(),
            self._step_text(),
            _stack_of(None if watch is None else watch.thread_id),
        )

    def _run_watch(self, watch: _Watch) -> None:
        try:
            while not watch.stopped.wait(self.wake_secs()):
                if not _run_alive(watch):
                    return
                self.poll()
        except Exception as error:  # Never let a watchdog bug reach training.
            self._logger.warning(
                "%s: the stall watchdog stopped after an error: %r", self._who, error
            )
        finally:
            watch.anchor = None


def _run_alive(watch: _Watch) -> bool:
    """Whether the training thread runs, with the run's frame on its stack."""
    # sys._current_frames() is the standard library's only way to read
    # another thread's current frame from Python (faulthandler can dump it,
    # but only to a file descriptor). It is documented in the sys module
    # and implemented by CPython and PyPy.
    frame: Optional[FrameType] = sys._current_frames().get(watch.thread_id)
    if frame is None:
        return False
    anchor = watch.anchor
    if anchor is None:
        return not watch.stopped.is_set()
    while frame is not None:
        if frame is anchor:
            return True
        frame = frame.f_back
    return False


def _stack_of(thread_id: Optional[int]) -> str:
    frame = sys._current_frames().get(-1 if thread_id is None else thread_id)
    if frame is None:
        return "  (the training thread is not running)"
    return "".join(traceback.format_stack(frame)).rstrip("\n")


def run_anchor(frame: Optional[FrameType]) -> Optional[FrameType]:
    """The frame that started a run: the first caller of `frame` outside
    this package, Keras's callback dispatch and `contextlib` (`fit` itself,
    or the function of a custom loop), or None."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_DISPATCH_MODULES):
            return frame
        frame = frame.f_back
    return None


# Modules whose frames only pass a run's start on: the anchor is above them.
_DISPATCH_MODULES = (
    "keras_stepcounter.",
    "keras.src.callbacks",
    "keras.callbacks",
    "tf_keras.src.callbacks",
    "tf_keras.callbacks",
    "contextlib",
)
