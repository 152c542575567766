"""`StepStretches`: the stretches of training steps in a run, and the pauses
between them (validation, checkpoints, other callbacks' epoch work)."""

from __future__ import annotations

from typing import Optional


class StepStretches:
    """Tracks when steps run, so pauses between epochs can be left out.

    A stretch runs from `begin` (an epoch's first batch, or a loop's start)
    to `pause` (the first hook after the epoch's last batch). With
    `pause_between_epochs`, the time from a pause to the next `begin` is
    returned by `begin`, for the timer to leave out.

    Args:
        pause_between_epochs: Leave pauses out of the rates.

    Example:

    ```python
    stretches = StepStretches(pause_between_epochs=True)
    stretches.begin(now=0.0, step=0)
    stretches.pause(now=10.0)
    stretches.rate(step=100, now=10.0)      # 10.0 steps/sec
    stretches.begin(now=12.0, step=100)     # 2.0: seconds to leave out
    ```
    """

    def __init__(self, pause_between_epochs: bool = True) -> None:
        self._pause_between_epochs = pause_between_epochs
        self.reset()

    def reset(self) -> None:
        """A new run: no stretch, no pause."""
        self.running = False
        self.start = 0.0
        self._start_step: Optional[int] = None
        self._paused_since: Optional[float] = None

    def begin(self, now: float, step: Optional[int]) -> float:
        """A stretch starts at `now`, `step`; returns the pause to leave out."""
        excluded = 0.0
        if self._paused_since is not None:
            excluded = now - self._paused_since
            self._paused_since = None
        self.running, self.start, self._start_step = True, now, step
        return excluded

    def pause(self, now: float) -> None:
        """The stretch ends at `now`."""
        self.running = False
        if self._pause_between_epochs:
            self._paused_since = now

    def rate(self, step: int, now: float) -> Optional[float]:
        """Mean steps per second of the stretch, from its start to (now, step)."""
        seconds = now - self.start
        if self._start_step is None or seconds <= 0 or step <= self._start_step:
            return None
        return (step - self._start_step) / seconds
