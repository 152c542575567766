"""When the device counter must be read: the per-batch test, precomputed.

A step read costs microseconds to a hundred inside `fit`, a batch end well
under one: the step is read only where a record can be due, with the
result of a read at every batch (no call covers more than
`steps_per_call` steps, so the step never passes a trigger unseen).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

from keras_stepcounter.core.timer import SecondOrStepTimer


class ReadSchedule:
    """Says after how many batch calls, or from what time, to read again.

    After each read, `next_read` gives the two numbers the per-batch test
    compares against: read when `calls_since_read >= calls_until_read` or
    `now >= deadline`.

    Args:
        timer: The trigger timer, whose baseline and period decide when a
            record can next be due.
        steps_per_call: The most global steps one batch call can cover
            (the model's `steps_per_execution`, fewer with gradient
            accumulation).
        max_calls: Read at least every this many calls, due or not (the
            bound of `StepTimes`' buffer); default never.

    A step seen to advance more per call than `steps_per_call` (a
    `train_step` applying gradients twice) widens the bound to what was
    seen. A run's first read is its baseline, never an advance.

    Example:

    ```python
    schedule = ReadSchedule(timer, steps_per_call=1)
    calls_until_read, deadline = schedule.next_read(step, calls_since_read=5,
                                                    previous_step=step - 5)
    ```
    """

    FIRST_READ = (1, -math.inf)  # The first batch end of a run reads.

    def __init__(
        self, timer: SecondOrStepTimer, steps_per_call: int = 1, max_calls: float = math.inf
    ) -> None:
        self._timer = timer
        self.steps_per_call = steps_per_call
        self._max_calls = max_calls

    def next_read(
        self, step: int, calls_since_read: int, previous_step: Optional[int]
    ) -> Tuple[float, float]:
        """(calls until the next read, clock time from which to read)."""
        self._widen_if_outrun(step, calls_since_read, previous_step)
        steps_left = self._timer.steps_until_trigger(step)
        if math.isinf(steps_left):
            calls_until_read = math.inf
        else:
            calls_until_read = max(1, math.ceil(steps_left / self.steps_per_call))
        return min(calls_until_read, self._max_calls), self._timer.trigger_deadline()

    def _widen_if_outrun(
        self, step: int, calls_since_read: int, previous_step: Optional[int]
    ) -> None:
        if previous_step is None or calls_since_read <= 0:
            return
        advance = step - previous_step
        if advance > calls_since_read * self.steps_per_call:
            self.steps_per_call = math.ceil(advance / calls_since_read)
