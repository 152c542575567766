"""Write failures: reported once per outage, never raised into training."""

from __future__ import annotations

import itertools
import warnings

from keras_stepcounter.core.rates import tf_logger

# Outages numbered across the process: every warning's text differs, so
# Python's default filter (once per text and place) shows each outage, the
# second of a counter's as well as another counter's with the same error.
_outage_numbers = itertools.count(1)


class FailureReporter:
    """Turns write failures into one `RuntimeWarning` per outage: the first
    failure warns, later ones are quiet until a write works again.

    Args:
        what: The writer, as named in the warning ("summary writer").
        when_back: What happens once writing works again, for the warning.

    Example:

    ```python
    failures = FailureReporter("summary writer")
    failures.failed("write", OSError("No space left on device"))  # warns
    failures.failed("write", OSError("No space left on device"))  # quiet
    failures.succeeded()  # logs "keras_stepcounter: writing records resumed."
    ```
    """

    def __init__(
        self, what: str, when_back: str = "records are written again once this works"
    ) -> None:
        self._what = what
        self._when_back = when_back
        self.failing = False

    def failed(self, action: str, error: Exception) -> None:
        if self.failing:
            return
        self.failing = True
        warnings.warn(
            f"keras_stepcounter: could not {action} the {self._what} "
            f"({type(error).__name__}: {error}); training goes on, and "
            f"{self._when_back} (write outage {next(_outage_numbers)} in "
            "this process).",
            RuntimeWarning,
            stacklevel=4,
        )

    def succeeded(self, where: str = "") -> None:
        """A write worked: ends an outage, if one is on; `where` names the
        new event file, if the records now go to one."""
        if self.failing:
            self.failing = False
            tf_logger.warning(
                "keras_stepcounter: writing records resumed%s.",
                f", in a new event file {where}" if where else "",
            )
