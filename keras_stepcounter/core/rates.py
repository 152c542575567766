"""Rate arithmetic shared by every recorder, in plain Python.

`interval_scalars` is the one formula for what a record holds (steps/sec,
examples/sec, mfu), in arithmetic operators only: Python floats for
`StepCounter` and the v1 hook, graph tensors for `GraphStepCounter`.
`RateTracker` turns "the global step is now N" into a due interval and its
scalars, with a `SecondOrStepTimer` for the when.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Protocol, Tuple

from keras_stepcounter.core.options import RecorderOptions, mfu_per_step_rate
from keras_stepcounter.core.tags import DEFAULT_TAG, EXAMPLES_TAG, MFU_TAG
from keras_stepcounter.core.timer import SecondOrStepTimer

# TensorFlow's own logger, by name: the v1 hook logged through it, and log
# scrapers look for its lines. Naming it avoids importing TensorFlow here.
tf_logger = logging.getLogger("tensorflow")

_MAX_STALL_WARNINGS = 5
STALL_MESSAGE = (
    "It seems that global step (tf.train.get_global_step) has not "
    "been increased. Current value (could be stable): %s vs previous "
    "value: %s. You could increase the global step by passing "
    "tf.train.get_global_step() to Optimizer.apply_gradients or "
    "Optimizer.minimize."
)
WENT_BACK_MESSAGE = (
    "keras_stepcounter: the global step went back from %s to %s (a "
    "checkpoint restore, or an assign to the step counter?); nothing is "
    "recorded for that interval, and a new one starts at step %s."
)


def interval_scalars(
    tag: str,
    elapsed_steps: Any,
    elapsed_secs: Any,
    examples: Any = None,
    *,
    batch_size: Optional[int] = None,
    mfu_per_step_rate: Optional[float] = None,
) -> Dict[str, Any]:
    """The scalars recorded for `elapsed_steps` steps in `elapsed_secs` seconds.

    `tag`: steps/sec. `examples/sec`: `steps/sec * batch_size` with a batch
    size, else `examples / elapsed_secs` when examples are counted
    (`examples` not None). `mfu`: `steps/sec * mfu_per_step_rate`
    (`flops_per_step / peak_flops_per_sec`) when given. Only `/` and `*`:
    the arguments may be Python numbers or tensors. The caller makes sure
    `elapsed_secs` and `elapsed_steps` are positive.
    """
    steps_per_sec = elapsed_steps / elapsed_secs
    values = {tag: steps_per_sec}
    if batch_size is not None:
        values[EXAMPLES_TAG] = steps_per_sec * batch_size
    elif examples is not None:
        values[EXAMPLES_TAG] = examples / elapsed_secs
    if mfu_per_step_rate is not None:
        values[MFU_TAG] = steps_per_sec * mfu_per_step_rate
    return values


class ScalarSink(Protocol):
    """What a recorder writes through (the writers in `writer/`)."""

    def write(self, step: int, scalars: Dict[str, float]) -> bool: ...


class RateTracker:
    """Decides when to record and computes what is recorded.

    Args:
        timer: The trigger timer (v1 rules).
        tag: Tag of the steps/sec scalar.
        batch_size: Global examples per batch; adds `examples/sec`, the
            examples of the applied updates: `steps/sec * batch_size *
            batches_per_step` (`batches_per_step` is the optimizer's
            gradient accumulation steps, set per run; 1 without).
        flops_per_step: FLOPs of one training step; with
            `peak_flops_per_sec`, adds `mfu`.
        peak_flops_per_sec: Peak FLOP/s of the hardware used.
        count_examples: Examples are counted with `add_examples` (a
            `count_fn` was given): `examples/sec` at every record, 0
            included. Default None: from the first `add_examples` on.

    A step below the last one observed (a restore, an assign) records
    nothing for that interval: it becomes the new baseline, with one
    WARNING naming both steps.
    """

    def __init__(
        self,
        timer: SecondOrStepTimer,
        tag: str = DEFAULT_TAG,
        batch_size: Optional[int] = None,
        flops_per_step: Optional[float] = None,
        peak_flops_per_sec: Optional[float] = None,
        count_examples: Optional[bool] = None,
    ) -> None:
        self.timer = timer
        self.tag = tag
        self.batch_size = batch_size
        self.count_examples = bool(count_examples)
        self._count_from_first_add = count_examples is None
        self.mfu_per_step_rate = mfu_per_step_rate(flops_per_step, peak_flops_per_sec)
        # Batches whose examples one step (one applied update) consumes:
        # more than 1 with gradient accumulation.
        self.batches_per_step = 1
        self._examples_since_trigger = 0.0
        self._last_observed_step: Optional[int] = None
        self._stall_warnings = 0

    @classmethod
    def from_options(cls, timer: SecondOrStepTimer, options: RecorderOptions) -> "RateTracker":
        return cls(
            timer,
            tag=options.tag,
            batch_size=options.batch_size,
            flops_per_step=options.flops_per_step,
            peak_flops_per_sec=options.peak_flops_per_sec,
            count_examples=options.count_fn is not None,
        )

    def reset(self) -> None:
        """Forgets the baseline; the next observed step starts a new one."""
        self.timer.reset()
        self._examples_since_trigger = 0.0
        self._last_observed_step = None

    def add_examples(self, count: float) -> None:
        """Counts examples (or items) processed since the last trigger."""
        self._examples_since_trigger += count
        if self._count_from_first_add:
            self.count_examples = True

    def interval(
        self, step: int, now: Optional[float] = None
    ) -> Optional[Tuple[int, float, float]]:
        """`(elapsed_steps, elapsed_secs, examples)` if a record is due at
        `step` at time `now` (default: the timer's clock; the baseline then
        moves to them), else None."""
        if self._went_back(step, now):
            return None
        self._last_observed_step = step
        if not self.timer.should_trigger_for_step(step, now):
            return None
        elapsed_secs, elapsed_steps = self.timer.update_last_triggered_step(step, now)
        examples = self._take_examples()
        if elapsed_secs is None or elapsed_steps is None:
            return None
        if elapsed_secs <= 0 or elapsed_steps <= 0:
            return None
        return elapsed_steps, elapsed_secs, examples

    def scalars(
        self, elapsed_steps: int, elapsed_secs: float, examples: float = 0.0
    ) -> Dict[str, float]:
        """The scalars for an interval of `elapsed_steps` in `elapsed_secs`."""
        return interval_scalars(
            self.tag,
            elapsed_steps,
            elapsed_secs,
            examples if self.count_examples else None,
            batch_size=None if self.batch_size is None else self.batch_size * self.batches_per_step,
            mfu_per_step_rate=self.mfu_per_step_rate,
        )

    def warn_if_stalled(self, step: int, previous_step: Optional[int]) -> None:
        """Warns, as v1 did and at most 5 times, when the step stood still."""
        if previous_step is None or step != previous_step:
            return
        if self._stall_warnings < _MAX_STALL_WARNINGS:
            self._stall_warnings += 1
            tf_logger.warning(STALL_MESSAGE, step, previous_step)

    def _went_back(self, step: int, now: Optional[float]) -> bool:
        last = self._last_observed_step
        if last is None or step >= last:
            return False
        tf_logger.warning(WENT_BACK_MESSAGE, last, step, step)
        self.timer.reset()
        self.timer.update_last_triggered_step(step, now)
        self._examples_since_trigger = 0.0
        self._last_observed_step = step
        return True

    def _take_examples(self) -> float:
        examples, self._examples_since_trigger = self._examples_since_trigger, 0.0
        return examples


def log_rate(
    tag: str, steps_per_sec: float, info: Optional[Callable[..., None]] = None
) -> None:
    """The v1 log line, `global_step/sec: <value>`, at INFO.

    `info`: the logging call to use; default TensorFlow's logger's `info`.
    (The v1 hook passes `tf_logging.info`, which code written for TF1
    patches.)
    """
    (tf_logger.info if info is None else info)("%s: %g", tag, steps_per_sec)
