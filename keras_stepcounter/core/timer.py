"""The trigger timer shared by every recorder, in plain Python.

`SecondOrStepTimer` follows TF1's timer of the same name
(`tf.compat.v1.train.SecondOrStepTimer`) with two changes: time comes
from the `clock` it is given (monotonic by default; the v1 classes pass
TF1's `time.time()`, `StepCounter` its training time) or from the `now` a
caller passes; and `restart_clock` re-takes the baseline time after the
v1 hook's own work. `steps_until_trigger` and `trigger_deadline` say how
soon it could trigger, which lets the callback skip reading the device.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Tuple

Clock = Callable[[], float]


class SecondOrStepTimer:
    """Triggers at most once every `every_secs` seconds or `every_steps` steps.

    The first call to `update_last_triggered_step` only sets the baseline.
    After it, `should_trigger_for_step(step)` is true when
    `step >= last_step + every_steps` or `clock() >= last_time + every_secs`,
    and never for the step of the last trigger.

    Args:
        every_secs: Seconds between triggers, or `None`.
        every_steps: Steps between triggers, or `None`.
        clock: A callable returning seconds from a monotonic clock.

    Exactly one of `every_secs` and `every_steps` must be given (the v1
    messages are kept, since code may match them). Their values are checked
    by the recorders, which know the public argument names.
    """

    def __init__(
        self,
        every_secs: Optional[float] = None,
        every_steps: Optional[int] = None,
        clock: Clock = time.perf_counter,
    ) -> None:
        if every_secs is None and every_steps is None:
            raise ValueError("Either every_secs or every_steps should be provided.")
        if every_secs is not None and every_steps is not None:
            raise ValueError("Can not provide both every_secs and every_steps.")
        self._every_secs = every_secs
        self._every_steps = every_steps
        self._clock = clock
        self.reset()

    @property
    def every_secs(self) -> Optional[float]:
        return self._every_secs

    @property
    def every_steps(self) -> Optional[int]:
        return self._every_steps

    def reset(self) -> None:
        """Forgets the baseline: the next trigger starts a new one."""
        self._last_triggered_step: Optional[int] = None
        self._last_triggered_time: Optional[float] = None

    def should_trigger_for_step(self, step: int, now: Optional[float] = None) -> bool:
        """Whether a trigger is due at `step` (v1 rules), at `now` (default:
        the clock)."""
        if self._last_triggered_step is None:
            return True
        if self._last_triggered_step == step:
            return False
        if self._every_secs is not None and self._last_triggered_time is not None:
            now = self._clock() if now is None else now
            if now >= self._last_triggered_time + self._every_secs:
                return True
        if self._every_steps is not None:
            if step >= self._last_triggered_step + self._every_steps:
                return True
        return False

    def update_last_triggered_step(
        self, step: int, now: Optional[float] = None
    ) -> Tuple[Optional[float], Optional[int]]:
        """Makes (now, step) the baseline; returns (elapsed_secs, elapsed_steps).

        `now` defaults to the clock. Both are `None` on the first call,
        which only sets the baseline.
        """
        now = self._clock() if now is None else now
        if self._last_triggered_time is None or self._last_triggered_step is None:
            elapsed: Tuple[Optional[float], Optional[int]] = (None, None)
        else:
            elapsed = (
                now - self._last_triggered_time,
                step - self._last_triggered_step,
            )
        self._last_triggered_time = now
        self._last_triggered_step = step
        return elapsed

    def last_triggered_step(self) -> Optional[int]:
        return self._last_triggered_step

    # Extensions over v1. -------------------------------------------------

    def restart_clock(self) -> None:
        """Re-takes the baseline time now, keeping the baseline step.

        Called after a record has been written, so that the next interval
        starts when training resumes rather than when the record was taken.
        """
        if self._last_triggered_time is not None:
            self._last_triggered_time = self._clock()

    def steps_until_trigger(self, step: int) -> float:
        """Steps after `step` before a step trigger can be due (`inf`: never).

        0 means a trigger may be due now (no baseline yet, or the step
        threshold is reached).
        """
        if self._last_triggered_step is None:
            return 0
        if self._every_steps is None:
            return math.inf
        return max(0, self._last_triggered_step + self._every_steps - step)

    def trigger_deadline(self) -> float:
        """Clock time from which a seconds trigger can be due (`inf`: never)."""
        if self._last_triggered_time is None:
            return -math.inf
        if self._every_secs is None:
            return math.inf
        return self._last_triggered_time + self._every_secs
