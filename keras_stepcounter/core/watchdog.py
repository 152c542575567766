"""A stall watchdog: says when training stops making progress, and where.

A process that hangs (an input pipeline waiting forever, a lock, a
collective one worker never joins) looks alive: no error, no log line. The
recorder already notes the clock time of each batch end; `StallWatchdog`
runs a daemon thread that only compares that time with the clock. When no
step has ended for `stall_secs`, it logs one warning with the last global
step and the Python stack of the training thread, so the line training is
stuck in shows in the log. When a step ends again, the recorder asks
`end_stall` for the stall's length (written as the scalar `stall_secs`).

The thread never touches TensorFlow and never takes a lock the training
thread holds on its hot path: it reads a float through `last_progress`.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional, Tuple, Union

from keras_stepcounter.core.checks import check_positive_number
from keras_stepcounter.core.rates import tf_logger
from keras_stepcounter.core.tags import STALL_SECS_TAG
AUTO = "auto"
AUTO_FACTOR = 10.0  # "auto": this many typical steps...
AUTO_MIN_SECS = 60.0  # ...but never less than this.
MIN_WAKE_SECS = 0.05
MAX_WAKE_SECS = 15.0
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


class StallWatchdog:
    """Warns once per stall, with the training thread's stack.

    Args:
        stall_secs: Seconds without a step end that make a stall, or
            `"auto"`: ten times `typical_step_secs()`, at least 60 s (60 s
            while the typical time is unknown).
        last_progress: Returns the clock time since which a step end is
            awaited (the last batch end, or when steps resumed after a
            pause), or `None` while paused (validation, epoch boundaries).
        last_step: Returns the last global step known, for the messages.
        typical_step_secs: Returns a typical step time in seconds, or
            `None`; used only by `"auto"`. These three are called from the
            watchdog thread: let them read attributes, nothing more.
        on_stall: Called from the watchdog thread after a stall is
            reported; must be cheap and thread-safe (e.g. set a flag).
        clock: The clock `last_progress` times come from.
        logger: Where the warning and the resume line go.
        process: Names this process in both lines ("JAX process 1 of 2"),
            so the logs of a job of several processes tell the one stuck
            in its own code from those waiting on it; None in a single
            process. Also an attribute, set again at each run.

    Example:

    ```python
    watchdog = StallWatchdog(300, last_progress=lambda: counter.last_end,
                             last_step=lambda: counter.step)
    watchdog.start(threading.get_ident())  # From the training thread.
    ...  # At each step end, after updating counter.last_end:
    stall = watchdog.end_stall(now, step)  # Seconds, after a stall.
    watchdog.stop()
    ```
    """

    def __init__(
        self,
        stall_secs: StallSecs,
        *,
        last_progress: Callable[[], Optional[float]],
        last_step: Callable[[], Optional[int]],
        typical_step_secs: Callable[[], Optional[float]] = lambda: None,
        on_stall: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.perf_counter,
        logger: logging.Logger = tf_logger,
        process: Optional[str] = None,
    ) -> None:
        checked = check_stall_secs(stall_secs)
        if checked is None:
            raise TypeError('stall_secs must be a positive number or "auto", got None.')
        self._stall_secs = checked
        self._last_progress = last_progress
        self._last_step = last_step
        self._typical_step_secs = typical_step_secs
        self._on_stall = on_stall
        self._clock = clock
        self._logger = logger
        self.process = process
        # Guards the stall state between `poll` (watchdog thread) and
        # `end_stall` (training thread, only after a stall is reported).
        self._lock = threading.Lock()
        self._reported_progress: Optional[float] = None
        self._stall_start: Optional[float] = None
        self._thread: Optional[threading.Thread] = None
        self._stopped = threading.Event()
        self._thread_id: Optional[int] = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def threshold_secs(self) -> float:
        """The stall threshold now (`"auto"` follows the typical step time)."""
        if not isinstance(self._stall_secs, str):
            return self._stall_secs
        typical = self._typical_step_secs()
        if typical is None or not math.isfinite(typical) or typical <= 0:
            return AUTO_MIN_SECS
        return max(AUTO_MIN_SECS, AUTO_FACTOR * typical)

    def wake_secs(self) -> float:
        """Seconds between checks: a quarter of the threshold, bounded."""
        return min(MAX_WAKE_SECS, max(MIN_WAKE_SECS, self.threshold_secs() / 4))

    def start(self, thread_id: int) -> None:
        """Starts watching; `thread_id` is the training thread's ident.

        A running watchdog is stopped first, and stall state is forgotten.
        """
        self.stop()
        self._thread_id = thread_id
        self._reported_progress = None
        self._stall_start = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, args=(self._stopped,), name=THREAD_NAME, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops and joins the thread; safe to repeat, or if never started.

        The thread also ends by itself once the training thread has ended.
        """
        thread, self._thread = self._thread, None
        self._stopped.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_SECS)

    def poll(self) -> bool:
        """One check (what the thread does at each wake).

        Returns True when it reported a new stall: one warning, then
        `on_stall()`.
        """
        with self._lock:
            stall = self._new_stall()
        if stall is None:
            return False
        self._warn(*stall)
        self._on_stall()
        return True

    def end_stall(self, now: float, step: Optional[int] = None) -> Optional[float]:
        """After a reported stall: its length, from the last progress to `now`.

        Logs one INFO line with it and `step` (default `last_step()`).
        Returns None, at the cost of one attribute read, when no stall is
        pending.
        """
        if self._stall_start is None:
            return None
        with self._lock:
            start, self._stall_start = self._stall_start, None
        if start is None:
            return None
        seconds = now - start
        if step is None:
            step = self._last_step()
        self._logger.info(
            "keras_stepcounter: training resumed%s after a %.1f s stall, "
            "at global step %s.",
            self._in_process(),
            seconds,
            step,
        )
        return seconds

    def _new_stall(self) -> Optional[Tuple[float, float]]:
        """(waited, threshold) when a stall not yet reported is due."""
        last = self._last_progress()
        if last is None or last == self._reported_progress:
            return None
        waited = self._clock() - last
        threshold = self.threshold_secs()
        if waited < threshold:
            return None
        self._reported_progress = self._stall_start = last
        return waited, threshold

    def _warn(self, waited: float, threshold: float) -> None:
        self._logger.warning(
            "keras_stepcounter: no training step has ended%s for %.1f s "
            "(stall_secs: %.1f); last global step read: %s. "
            "Stack of the training thread (most recent call last):\n%s",
            self._in_process(),
            waited,
            threshold,
            self._last_step(),
            self._training_stack(),
        )

    def _in_process(self) -> str:
        return f" in {self.process}" if self.process else ""

    def _training_stack(self) -> str:
        # sys._current_frames() is the standard library's only way to read
        # another thread's current frame from Python (faulthandler can dump
        # it, but only to a file descriptor, not into a log record). It is
        # documented in the sys module and implemented by CPython and PyPy.
        frame = sys._current_frames().get(self._thread_id or -1)
        if frame is None:
            return "  (the training thread is not running)"
        return "".join(traceback.format_stack(frame)).rstrip("\n")

    def _watch(self, stopped: threading.Event) -> None:
        try:
            while not stopped.wait(self.wake_secs()):
                if self._thread_id not in sys._current_frames():
                    return  # The training thread ended without stop().
                self.poll()
        except Exception as error:  # Never let a watchdog bug reach training.
            self._logger.warning(
                "keras_stepcounter: the stall watchdog stopped after an "
                "error: %r",
                error,
            )
