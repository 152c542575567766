"""A stall watchdog: says when training stops making progress, and where.

A hung process (an input pipeline waiting forever, a lock, a collective a
worker never joins) looks alive. `StallWatchdog` runs a daemon thread that
compares the run's last progress (the last step end; None while paused)
with the clock and, once no step has ended for the threshold, logs one
warning with the step training is at and the training thread's stack. It
only warns: whether a gap was a stall is decided by the recorder, by its
length when it ends, never by when this thread happened to look.

The watchdog belongs to its run, from `start` to `stop`. Keras skips
`on_train_end` when `fit` raises, so when a `fit` call started the run the
thread also ends, silently, once that call has left the training thread's
stack (within `MAX_WAKE_SECS`), whatever frames run the steps. The two
threads share the watch (a token: a look at a replaced or stopped watch
says nothing) and the progress already warned about, under one lock.
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


def stall_threshold(stall_secs: Optional[StallSecs], typical_step_secs: Optional[float]) -> float:
    """Seconds without a step end that make a stall: `stall_secs`, or for
    `"auto"` ten times the typical step time, at least 60 s (60 s while it
    is unknown); infinite for None (no stalls)."""
    if stall_secs is None:
        return math.inf
    if not isinstance(stall_secs, str):
        return stall_secs
    typical = typical_step_secs
    if typical is None or not math.isfinite(typical) or typical <= 0:
        return AUTO_MIN_SECS
    return max(AUTO_MIN_SECS, AUTO_FACTOR * typical)


@dataclass
class _Watch:
    """One run's watch: the training thread, the `fit` call's frame (None:
    the run ends only at `stop`), and the event that stops the thread."""

    thread_id: int
    fit: Optional[FrameType]
    stopped: threading.Event = field(default_factory=threading.Event)


class StallWatchdog:
    """Warns once per stall, with the training thread's stack.

    Args:
        stall_secs: Seconds without a step end that make a stall, or
            `"auto"` (see `stall_threshold`).
        progress: Returns the clock time since which a step end is awaited
            (the last step end, or when steps resumed), or `None` while no
            step is awaited (startup, paused).
        step_text: Says which global step training is at, for the warning.
        typical_step_secs: Returns a typical step time in seconds, or
            `None`; used only by `"auto"`. These three are called from the
            watchdog thread: let them read attributes, nothing more.
        clock: The clock `progress` times come from.
        logger: Where the warning and the resume line go.
        process: Names this process in a multi-process job (its lines then
            say which process they come from).

    Example:

    ```python
    watchdog = StallWatchdog(300, progress=lambda: last_step_end,
                             step_text=lambda: f"global step {step}")
    watchdog.start(threading.get_ident())   # The run begins.
    ...
    watchdog.stop()                         # The run ends.
    ```
    """

    def __init__(
        self,
        stall_secs: StallSecs,
        *,
        progress: Callable[[], Optional[float]],
        step_text: Callable[[], str] = lambda: "an unknown global step",
        typical_step_secs: Callable[[], Optional[float]] = lambda: None,
        clock: Callable[[], float] = time.perf_counter,
        logger: logging.Logger = tf_logger,
        process: Optional[str] = None,
    ) -> None:
        checked = check_stall_secs(stall_secs)
        if checked is None:
            raise TypeError('stall_secs must be a positive number or "auto", got None.')
        self._stall_secs = checked
        self._progress = progress
        self._step_text = step_text
        self._typical_step_secs = typical_step_secs
        self._clock = clock
        self._logger = logger
        self._who = "keras_stepcounter"
        self.process = process  # Named in the lines, in a job of several.
        self._lock = threading.Lock()
        self._reported: Optional[float] = None
        self._watch: Optional[_Watch] = None
        self._thread: Optional[threading.Thread] = None
        self._start_failure_said = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _in_process(self) -> str:
        return "" if self.process is None else f" in {self.process}"

    def threshold_secs(self) -> float:
        """The stall threshold now (`"auto"` follows the typical step time)."""
        return stall_threshold(self._stall_secs, self._typical_step_secs())

    def wake_secs(self) -> float:
        """Seconds between looks: a tenth of the threshold, bounded."""
        return min(MAX_WAKE_SECS, max(MIN_WAKE_SECS, self.threshold_secs() / 10))

    # The training thread. --------------------------------------------------

    def start(self, thread_id: int, fit: Optional[FrameType] = None) -> None:
        """Starts watching the training thread `thread_id` for one run.

        `fit`: the frame of the `fit` call that started the run, if one
        did: once it has left that thread's stack, the run is over and the
        thread ends. A running watch is stopped first. A thread that cannot
        start is one warning (per watchdog); training goes on.
        """
        self.stop()
        watch = _Watch(thread_id, fit)
        thread = threading.Thread(
            target=self._run_watch, args=(watch,), name=THREAD_NAME, daemon=True
        )
        with self._lock:
            self._watch, self._reported = watch, None
        try:
            thread.start()
        except Exception as error:  # RuntimeError: can't start new thread.
            self.stop()
            if not self._start_failure_said:
                self._start_failure_said = True
                self._logger.warning(
                    "%s: the stall watchdog's thread could not start (%r); "
                    "training goes on without it.", self._who, error,
                )
            return
        self._thread = thread

    def stop(self) -> None:
        """Stops and joins the thread; a look it takes meanwhile says
        nothing. Safe to repeat, or if never started."""
        with self._lock:
            watch, self._watch = self._watch, None
            self._reported = None
        thread, self._thread = self._thread, None
        if watch is not None:
            watch.stopped.set()
            watch.fit = None  # Holds the run's frame (and its locals) no longer.
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_SECS)

    def log_resumed(self, seconds: float, step: Optional[int]) -> None:
        self._logger.info(
            "%s: training resumed%s after a %.1f s stall, at global step %s.",
            self._who, self._in_process(), seconds, step,
        )

    def log_if_warned_before_pause(self, since: float, now: float) -> None:
        """Steps paused with no step end since `since`: if that wait was
        warned about, says that it is boundary time, not a stall."""
        with self._lock:
            warned = self._reported == since
            self._reported = None
        if warned:
            self._logger.info(
                "%s: the %.1f s without a step%s ended at an epoch end (or a "
                "paused() block); it is counted as epoch-boundary time, not "
                "as a stall.", self._who, now - since, self._in_process(),
            )

    # The watchdog thread. --------------------------------------------------

    def poll(self, watch: Optional[_Watch] = None) -> bool:
        """One look (what the thread does at each wake) for `watch` (default:
        the current one). Returns True when it warned of a new stall."""
        with self._lock:
            watch = self._watch if watch is None else watch
            if watch is None or watch is not self._watch:
                return False  # The run ended: not its stall.
            waited = self._new_stall()
        if waited is None or not _run_alive(watch):
            return False
        self._warn(waited, watch)
        return True

    def _new_stall(self) -> Optional[float]:
        """Seconds waited, when a stall not yet warned about is due."""
        last = self._progress()
        if last is None or last == self._reported:
            return None
        waited = self._clock() - last
        if waited < self.threshold_secs():
            return None
        self._reported = last
        return waited

    def _warn(self, waited: float, watch: _Watch) -> None:
        self._logger.warning(
            "%s: no training step has ended%s for %.1f s (stall_secs: %.1f); "
            "%s. Stack of the training thread (most recent call last):\n%s",
            self._who,
            self._in_process(),
            waited,
            self.threshold_secs(),
            self._step_text(),
            _stack_of(watch.thread_id),
        )

    def _run_watch(self, watch: _Watch) -> None:
        try:
            while not watch.stopped.wait(self.wake_secs()):
                if not _run_alive(watch):
                    return
                self.poll(watch)
        except Exception as error:  # Never let a watchdog bug reach training.
            self._logger.warning(
                "%s: the stall watchdog stopped after an error: %r", self._who, error
            )
        finally:
            watch.fit = None


def _run_alive(watch: _Watch) -> bool:
    """Whether the run goes on: not stopped, the training thread running,
    and the `fit` call that started it (if one did) on its stack."""
    if watch.stopped.is_set():
        return False
    # sys._current_frames() is the standard library's only way to read
    # another thread's current frame from Python (faulthandler can dump it,
    # but only to a file descriptor). It is documented in the sys module
    # and implemented by CPython and PyPy.
    frame: Optional[FrameType] = sys._current_frames().get(watch.thread_id)
    if frame is None:
        return False
    fit = watch.fit
    if fit is None:
        return True
    while frame is not None:
        if frame is fit:
            return True
        frame = frame.f_back
    return False


def _stack_of(thread_id: int) -> str:
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "  (the training thread is not running)"
    return "".join(traceback.format_stack(frame)).rstrip("\n")


def fit_frame(frame: Optional[FrameType]) -> Optional[FrameType]:
    """The frame of the Keras `fit` call that `frame` runs in (the first
    caller named `fit` in a Keras module, whatever frames lie between), or
    None: a custom loop, a `CallbackList` driven by hand.
    `tests/test_watchdog_run.py` fails if Keras renames or moves `fit`.
    """
    while frame is not None:
        code = frame.f_code
        if code.co_name == "fit" and frame.f_globals.get("__name__", "").startswith(
            _KERAS_MODULES
        ):
            return frame
        frame = frame.f_back
    return None


# Modules whose `fit` is a Keras `fit` call.
_KERAS_MODULES = ("keras.", "tf_keras.")
