"""`InputShare`: the share of training time spent waiting for input.

A meter (`keras_stepcounter.input_wait.InputWaitMeter` in `fit`) says, in
the counter's clock, which spans it measured and when a step waited for
its batch inside them (every span on JAX, profiler windows on TensorFlow).
From them come `time_frac/input` at each measured record interval (None,
so no tag, where it was not measured) and the run's share, which the
ledger applies to its step time as the `input` bucket (an estimate where
it samples). A wait of at least the stall threshold, or inside a stall, is
the stall's, never input; measured time is at most the interval's
training time less its stalls.
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence, Tuple

Span = Tuple[float, float]


class MeasuredWaits(Protocol):
    """What a meter measured inside an interval (`InputWaits`)."""

    @property
    def measured(self) -> Sequence[Span]: ...

    @property
    def waits(self) -> Sequence[Span]: ...


class InputMeter(Protocol):
    """Measures the waits for the next batch inside the steps (`input_stats`)."""

    def waits_between(self, start: float, end: float) -> Optional[MeasuredWaits]: ...

    def discard_before(self, time_point: float) -> None: ...

    def detach(self) -> None: ...


class InputShare:
    """The input wait's share, per record interval and for the run.

    Args:
        meter: Where the waits come from.

    Example:

    ```python
    share = InputShare(meter)
    share.begin_interval(clock_start=10.0)
    share.interval_share(10.0, 12.0, training_secs=2.0, threshold=60.0)  # 0.8
    share.run_share()  # 0.8
    ```
    """

    def __init__(self, meter: InputMeter) -> None:
        self.meter = meter
        self.begin_run()

    def begin_run(self) -> None:
        self._measured = self._waited = 0.0
        self._stalls: List[Span] = []

    def stalled(self, start: float, end: float) -> None:
        """A stall from `start` to `end` in the current interval: its waits
        are not input, and its time is not measured input time."""
        self._stalls.append((start, end))

    def interval_share(
        self, start: float, end: float, training_secs: float, threshold: float
    ) -> Optional[float]:
        """The share of the interval from `start` to `end` (clock times;
        `training_secs` of training time) spent waiting for input, or None
        where it was not measured. The next interval starts at `end`."""
        stalls, self._stalls = self._stalls, []
        found = self.meter.waits_between(start, end)
        self.meter.discard_before(start)
        if found is None:
            return None
        stall_secs = sum(b - a for a, b in stalls)
        measured = min(sum(b - a for a, b in found.measured), training_secs - stall_secs)
        if measured <= 0:
            return None
        waited = sum(
            b - a
            for a, b in found.waits
            if b - a < threshold and not any(s <= a and b <= e for s, e in stalls)
        )
        waited = min(waited, measured)
        self._measured += measured
        self._waited += waited
        return waited / measured

    def run_share(self) -> Optional[float]:
        """All measured waits over all measured training time of the run,
        or None when nothing was measured."""
        return self._waited / self._measured if self._measured > 0 else None
