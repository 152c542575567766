"""`RunSource`: what a run reads its step from (the step readers make it;
the adapters add how steps relate to batch calls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

StepRead = Callable[[], int]


@dataclass(frozen=True)
class RunSource:
    """What a run reads its step from, and how steps relate to batch calls.

    Args:
        read: Returns the global step (a device read: called rarely).
        description: What `read` reads, in words, for warnings.
        batches_per_call: Batches one batch-end call covers
            (`steps_per_execution`).
        steps_per_call: Most global steps one call can advance.
        calls_per_update: Calls per applied update (gradient accumulation).
        batches_per_epoch: Batches in an epoch (Keras's `params["steps"]`),
            or None where unknown: tells the epoch's last batch call.
        loss_scaled: The step counts the updates of a `LossScaleOptimizer`,
            which skips the update of a step whose gradients overflow.
    """

    read: StepRead
    description: str = "the step source"
    batches_per_call: int = 1
    steps_per_call: int = 1
    calls_per_update: int = 1
    batches_per_epoch: Optional[int] = None
    loss_scaled: bool = False
