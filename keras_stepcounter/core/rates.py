"""Rate arithmetic shared by every recorder, in plain Python.

`RateTracker` turns "the global step is now N" into the scalars to record,
using a `SecondOrStepTimer` for the when and plain division for the what.
The adapters (Keras callback, v1 hook, custom-loop API) only read steps,
hand them here, and pass what comes back to a writer.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Protocol

from keras_stepcounter.core.timer import SecondOrStepTimer

DEFAULT_TAG = "global_step/sec"
EXAMPLES_TAG = "examples/sec"
TIME_TO_FIRST_STEP_TAG = "time_to_first_step"
MFU_TAG = "mfu"

# TensorFlow's own logger, by name: the v1 hook logged through it, and log
# scrapers look for its lines. Naming it avoids importing TensorFlow here.
tf_logger = logging.getLogger("tensorflow")

_MAX_STALL_WARNINGS = 5
_STALL_MESSAGE = (
    "It seems that global step (tf.train.get_global_step) has not "
    "been increased. Current value (could be stable): %s vs previous "
    "value: %s. You could increase the global step by passing "
    "tf.train.get_global_step() to Optimizer.apply_gradients or "
    "Optimizer.minimize."
)


class ScalarSink(Protocol):
    """What a recorder writes through (the writers in `writer/`)."""

    def write(self, step: int, scalars: Dict[str, float]) -> bool: ...


class RateTracker:
    """Decides when to record and computes what is recorded.

    Args:
        timer: The trigger timer (v1 rules).
        tag: Tag of the steps/sec scalar.
        batch_size: Global examples per step; adds `examples/sec`.
        flops_per_step: FLOPs of one training step; with
            `peak_flops_per_sec`, adds `mfu`.
        peak_flops_per_sec: Peak FLOP/s of the hardware used.
    """

    def __init__(
        self,
        timer: SecondOrStepTimer,
        tag: str = DEFAULT_TAG,
        batch_size: Optional[int] = None,
        flops_per_step: Optional[float] = None,
        peak_flops_per_sec: Optional[float] = None,
    ) -> None:
        self.timer = timer
        self.tag = tag
        self.batch_size = batch_size
        self.flops_per_step = flops_per_step
        self.peak_flops_per_sec = peak_flops_per_sec
        self._examples_since_trigger = 0.0
        self._stall_warnings = 0

    def reset(self) -> None:
        """Forgets the baseline; the next observed step starts a new one."""
        self.timer.reset()
        self._examples_since_trigger = 0.0

    def add_examples(self, count: float) -> None:
        """Counts examples (or items) processed since the last trigger."""
        self._examples_since_trigger += count

    def observe(self, step: int) -> Optional[Dict[str, float]]:
        """Applies the trigger rules at `step`.

        Returns the scalars to record at `step`, or `None` when nothing is
        due, when this call only set the baseline, or when the interval is
        empty (no time or no steps elapsed: nothing honest to divide).
        """
        if not self.timer.should_trigger_for_step(step):
            return None
        elapsed_secs, elapsed_steps = self.timer.update_last_triggered_step(step)
        examples = self._examples_since_trigger
        self._examples_since_trigger = 0.0
        if elapsed_secs is None or elapsed_secs <= 0 or elapsed_steps <= 0:
            return None
        return self.scalars(elapsed_steps, elapsed_secs, examples)

    def record(self, sink: ScalarSink, step: int, scalars: Dict[str, float]) -> None:
        """Writes `scalars` at `step`, logs the v1 line, and restarts the clock.

        Recording is not training: the next interval starts once the
        record is written, flushed and logged (SPEC section 3).
        """
        sink.write(step, scalars)
        log_rate(self.tag, scalars[self.tag])
        self.timer.restart_clock()

    def scalars(
        self, elapsed_steps: int, elapsed_secs: float, examples: float = 0.0
    ) -> Dict[str, float]:
        """The scalars for an interval of `elapsed_steps` in `elapsed_secs`."""
        steps_per_sec = elapsed_steps / elapsed_secs
        values = {self.tag: steps_per_sec}
        if self.batch_size is not None:
            values[EXAMPLES_TAG] = steps_per_sec * self.batch_size
        elif examples:
            values[EXAMPLES_TAG] = examples / elapsed_secs
        if self.flops_per_step is not None and self.peak_flops_per_sec:
            values[MFU_TAG] = (
                steps_per_sec * self.flops_per_step / self.peak_flops_per_sec
            )
        return values

    def warn_if_stalled(self, step: int, previous_step: Optional[int]) -> None:
        """Warns, as v1 did and at most 5 times, when the step stood still."""
        if previous_step is None or step != previous_step:
            return
        if self._stall_warnings < _MAX_STALL_WARNINGS:
            self._stall_warnings += 1
            tf_logger.warning(_STALL_MESSAGE, step, previous_step)


def log_rate(tag: str, steps_per_sec: float) -> None:
    """The v1 log line, `global_step/sec: <value>`, at INFO."""
    tf_logger.info("%s: %g", tag, steps_per_sec)
