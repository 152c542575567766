"""TF1's `SecondOrStepTimer`, with TF1's clock."""

from __future__ import annotations

import time
from typing import Optional

from keras_stepcounter.core.timer import Clock
from keras_stepcounter.core.timer import SecondOrStepTimer as _CoreTimer


def wall_clock() -> float:
    """`time.time()`, looked up at each call, as TF1's timer reads it.

    Looking `time.time` up when called (not binding it at import) is what
    lets code written for TF1, and TF's own tests, drive the v1 classes
    with `mock.patch.object(time, "time")`.
    """
    return time.time()


class SecondOrStepTimer(_CoreTimer):
    """Triggers at most once every N seconds or once every N steps (TF1's).

    The methods and rules of `tf.compat.v1.train.SecondOrStepTimer`
    (`should_trigger_for_step`, `update_last_triggered_step`,
    `last_triggered_step`, `reset`), reading `time.time()` when called as
    it does; plus the shared timer's extensions (`restart_clock`,
    `steps_until_trigger`, `trigger_deadline`).

    Args:
        every_secs: Seconds between triggers, or None.
        every_steps: Steps between triggers, or None.
        clock: Seconds now (keyword-only). Default: `time.time()`, looked
            up when called.

    Example:

    ```python
    timer = SecondOrStepTimer(every_steps=100)
    if timer.should_trigger_for_step(step):
        elapsed_secs, elapsed_steps = timer.update_last_triggered_step(step)
    ```
    """

    def __init__(
        self,
        every_secs: Optional[float] = None,
        every_steps: Optional[int] = None,
        *,
        clock: Clock = wall_clock,
    ) -> None:
        super().__init__(every_secs=every_secs, every_steps=every_steps, clock=clock)
