"""`RecorderOptions`: the settings every recorder shares, checked once.

`StepCounter`, `GraphStepCounter` and `compat.v1.StepCounterHook` take the
same timing and extras arguments. Each builds one `RecorderOptions` from
them, so a wrong value fails the same way (the same error type and
message, naming the argument) whichever recorder it was given to.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional

from keras_stepcounter.core import checks as _checks
from keras_stepcounter.core.tags import DEFAULT_TAG


@dataclass(frozen=True)
class RecorderOptions:
    """The validated shared settings of a recorder.

    Constructing one runs every shared check (`core/checks.py`, in the
    order of `__post_init__`); a failed one raises `ValueError` or
    `TypeError` naming the argument.

    Args:
        every_n_steps: Record every N global steps (v1 default 100).
        every_n_secs: Record every N seconds instead.
        tag: Tag of the steps/sec scalar.
        batch_size: Global examples per step; adds `examples/sec`.
        count_fn: A function counting the examples (or items) of a batch;
            adds `examples/sec`. What it is given is the recorder's
            business (batch logs for `StepCounter`, the batch for
            `GraphStepCounter`).
        flops_per_step: FLOPs of one training step; with
            `peak_flops_per_sec`, adds `mfu`.
        peak_flops_per_sec: Peak FLOP/s of the hardware used.
        time_to_first_step: Record `time_to_first_step` at the first step.

    Example:

    ```python
    options = RecorderOptions(every_n_steps=50, batch_size=32)
    options.writes_examples  # True
    ```
    """

    every_n_steps: Optional[int] = 100
    every_n_secs: Optional[float] = None
    tag: str = DEFAULT_TAG
    batch_size: Optional[int] = None
    count_fn: Optional[Callable[[Any], Any]] = None
    flops_per_step: Optional[float] = None
    peak_flops_per_sec: Optional[float] = None
    time_to_first_step: bool = False

    def __post_init__(self) -> None:
        _checks.check_every(self.every_n_steps, self.every_n_secs)
        _checks.check_tag(self.tag)
        _checks.check_callable("count_fn", self.count_fn)
        _checks.check_extras(
            self.batch_size, self.count_fn, self.flops_per_step, self.peak_flops_per_sec
        )
        # Normalized values (an int for steps, floats for seconds and FLOPs).
        normalized = {
            "every_n_steps": _checks.check_optional_positive_int(
                "every_n_steps", self.every_n_steps
            ),
            "every_n_secs": _checks.check_optional_positive_number(
                "every_n_secs", self.every_n_secs
            ),
            "batch_size": _checks.check_optional_positive_int("batch_size", self.batch_size),
            "flops_per_step": _checks.check_optional_positive_number(
                "flops_per_step", self.flops_per_step
            ),
            "peak_flops_per_sec": _checks.check_optional_positive_number(
                "peak_flops_per_sec", self.peak_flops_per_sec
            ),
            "time_to_first_step": _checks.check_bool(
                "time_to_first_step", self.time_to_first_step
            ),
        }
        for name, value in normalized.items():
            object.__setattr__(self, name, value)  # Frozen: set once, here.

    @classmethod
    def pick(cls, arguments: Mapping[str, Any]) -> "RecorderOptions":
        """The options among a recorder's constructor `arguments` (its
        `locals()`), checked: each recorder passes them the same way."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls) if f.name in arguments})

    @property
    def writes_examples(self) -> bool:
        """Whether `examples/sec` is written (at every record)."""
        return self.batch_size is not None or self.count_fn is not None

    @property
    def mfu_per_step_rate(self) -> Optional[float]:
        """`mfu` per unit of steps/sec, or None when MFU is not asked for."""
        return mfu_per_step_rate(self.flops_per_step, self.peak_flops_per_sec)


def mfu_per_step_rate(
    flops_per_step: Optional[float], peak_flops_per_sec: Optional[float]
) -> Optional[float]:
    """`flops_per_step / peak_flops_per_sec`: `mfu` is steps/sec times this.
    None unless both are given."""
    if flops_per_step is None or not peak_flops_per_sec:
        return None
    return flops_per_step / peak_flops_per_sec
