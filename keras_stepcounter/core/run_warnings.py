"""What the Keras counter warns about during a run, each said once, in a
message a Keras user can act on (a clear warning beats a quiet zero)."""

from __future__ import annotations

from typing import Any, Optional, Set

from keras_stepcounter.core.rates import RateTracker, tf_logger

OFF_THREAD = (
    "keras_stepcounter: a batch callback ran on another thread than the one "
    "that started training (Keras runs batch callbacks on a thread pool when "
    "fit(callbacks=...) is given a single callback rather than a list). Its "
    "clock and step reads would no longer belong to the batch, so this run "
    "records nothing. Pass callbacks=[counter]."
)
READ_FAILED = (
    "keras_stepcounter: reading the global step failed (%s: %s); this run "
    "records nothing more. Training goes on."
)
NEVER_MOVED = (
    "keras_stepcounter: the global step read from %s has not moved in %d "
    "batches of this run (still %d), so nothing can be recorded. If your "
    "train_step applies gradients with another optimizer than "
    "model.optimizer (a GAN, say), pass the counter that moves: "
    "StepCounter(step_source=generator_optimizer.iterations)."
)
NEVER_MOVED_LOSS_SCALED = (
    "keras_stepcounter: the global step read from %s has not moved in %d "
    "batches of this run (still %d), so nothing can be recorded yet. A "
    "LossScaleOptimizer skips the update of every step whose scaled "
    "gradients overflow, and lowers the loss scale, most often in a run's "
    "first steps: records start once updates apply. If it never moves, the "
    "loss (or its scale) gives non-finite gradients at every step."
)
UNSEEN_CALL_UPDATES = (
    "keras_stepcounter: %s advanced %d over the epoch's last %d batches: Keras "
    "before 3.7 on TensorFlow counts an update more at an epoch's short last "
    "steps_per_execution call, and steps and rates follow its count. Make an "
    "epoch's batches a multiple of steps_per_execution, or use Keras 3.7+."
)
COUNT_FN_FAILED = (
    "keras_stepcounter: count_fn failed (%s); its batches are left out of "
    "examples/sec (warned once)."
)


class RunWarnings:
    """Warns once per counter for each kind of trouble, and v1's stall warning.

    Args:
        rates: Whose v1 "global step has not been increased" warning (at
            most 5 times) is used when the step stood still.
    """

    def __init__(self, rates: RateTracker) -> None:
        self._rates = rates
        self._said: Set[str] = set()
        self._source = "the step source"
        self._never_moved = NEVER_MOVED
        self._calls_per_update = 1
        self._start_step: Optional[int] = None
        self._run_calls = 0

    def run_begins(self, source: Any) -> None:
        self._source = source.description
        self._never_moved = NEVER_MOVED_LOSS_SCALED if source.loss_scaled else NEVER_MOVED
        self._calls_per_update = source.calls_per_update
        self._start_step = None
        self._run_calls = 0

    def started(self, step: int) -> None:
        self._start_step = step

    def calls_read(self, calls: int) -> None:
        self._run_calls += calls

    def check_progress(self, step: int, previous_step: Optional[int], calls: int) -> None:
        """v1's warning when the step stood still over a full update; once, a
        Keras user's when it never moved since the run began."""
        if calls >= self._calls_per_update:
            self._rates.warn_if_stalled(step, previous_step)
        run_calls = self._run_calls + calls
        if step == self._start_step and run_calls > 2 * self._calls_per_update:
            self._once("never_moved", self._never_moved, self._source, run_calls, step)

    def off_thread(self) -> None:
        self._once("off_thread", OFF_THREAD)

    def read_failed(self, error: Exception) -> None:
        tf_logger.warning(READ_FAILED, type(error).__name__, error)

    def unseen_call_updates(self, advanced: int, batches: int) -> None:
        if advanced > batches:  # The update counter ran ahead of the fetch.
            self._once("unseen_call", UNSEEN_CALL_UPDATES, self._source, advanced, batches)

    def count_fn_failed(self, error: Exception) -> None:
        self._once("count_fn", COUNT_FN_FAILED, error)

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._said:
            self._said.add(key)
            tf_logger.warning(message, *args)
