"""When the device counter must be read: the per-batch test, precomputed.

Reading the global step costs a device read (microseconds to a hundred
microseconds inside `fit`); a batch costs well under one. So the counter is
read only on batches where a record can be due, and the result equals what
a read on every batch would give: the step can never pass the trigger
threshold unseen, because no batch call covers more than `steps_per_call`
steps.
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

    If the counter is seen to advance more per call than `steps_per_call`
    (a custom `train_step` applying gradients twice, say), the bound widens
    to what was seen, so that no record lands late. A step that jumped
    forward on a run's first read (a restore) is not seen here: the first
    read of a run is its baseline, not an advance.

    Example:

    ```python
    schedule = ReadSchedule(timer, steps_per_call=1)
    calls_until_read, deadline = schedule.next_read(step, calls_since_read=5,
                                                    previous_step=step - 5)
    ```
    """

    FIRST_READ = (1, -math.inf)  # The first batch end of a run reads.

    def __init__(self, timer: SecondOrStepTimer, steps_per_call: int = 1) -> None:
        self._timer = timer
        self.steps_per_call = steps_per_call

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
        return calls_until_read, self._timer.trigger_deadline()

    def _widen_if_outrun(
        self, step: int, calls_since_read: int, previous_step: Optional[int]
    ) -> None:
        if previous_step is None or calls_since_read <= 0:
            return
        advance = step - previous_step
        if advance > calls_since_read * self.steps_per_call:
            self.steps_per_call = math.ceil(advance / calls_since_read)
