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

    An interval is booked in parts, at each `fold` (a read between
    records) and at its record, each part's spans then forgotten.

    Args:
        meter: Where the waits come from.

    Example:

    ```python
    share = InputShare(meter)
    share.begin_run(10.0)
    share.fold(11.0, threshold=60.0)  # a read between records
    share.interval_share(12.0, training_secs=2.0, threshold=60.0)  # 0.8
    share.run_share()  # 0.8
    ```
    """

    def __init__(self, meter: InputMeter) -> None:
        self.meter = meter
        self.begin_run(0.0)

    def begin_run(self, t: float) -> None:
        """A run starts at clock time `t`."""
        self._run_measured = self._run_waited = 0.0
        self.restart(t)

    def restart(self, t: float) -> None:
        """A record interval starts at clock time `t`; what came before it
        and was not booked is dropped."""
        self._since = t
        self._stalls: List[Span] = []
        self._measured = self._waited = self._stall_secs = 0.0
        self._seen = False
        self.meter.discard_before(t)

    def stalled(self, start: float, end: float) -> None:
        """A stall from `start` to `end` in the current interval: its waits
        are not input, and its time is not measured input time."""
        self._stalls.append((start, end))

    def fold(self, end: float, threshold: float) -> None:
        """Books the interval's part up to clock time `end` (a read: no wait
        or stall spans it) and forgets its spans."""
        stalls, self._stalls = self._stalls, []
        found = self.meter.waits_between(self._since, end)
        self._since = end
        self.meter.discard_before(end)
        self._stall_secs += sum(b - a for a, b in stalls)
        if found is None:
            return
        self._seen = True
        self._measured += sum(b - a for a, b in found.measured)
        self._waited += sum(
            b - a
            for a, b in found.waits
            if b - a < threshold and not any(s <= a and b <= e for s, e in stalls)
        )

    def interval_share(self, end: float, training_secs: float, threshold: float) -> Optional[float]:
        """The share of the interval up to clock time `end` (`training_secs`
        of training time) spent waiting for input, or None where it was not
        measured. The next interval starts at `end`, unless `restart`ed."""
        self.fold(end, threshold)
        measured = min(self._measured, training_secs - self._stall_secs)
        if not self._seen or measured <= 0:
            self.restart(end)
            return None
        waited = min(self._waited, measured)
        self.restart(end)
        self._run_measured += measured
        self._run_waited += waited
        return waited / measured

    def run_share(self) -> Optional[float]:
        """All measured waits over all measured training time of the run,
        or None when nothing was measured."""
        if self._run_measured <= 0:
            return None
        return self._run_waited / self._run_measured
