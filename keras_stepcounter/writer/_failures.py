"""Write failures: reported once per outage, never raised into training."""

from __future__ import annotations

import warnings

from keras_stepcounter.core.rates import tf_logger


class FailureReporter:
    """Turns write failures into one `RuntimeWarning` per outage.

    The first failure warns; later ones are quiet until a write succeeds
    again, which logs that writing resumed. Training never sees an error.

    Args:
        what: The writer, as named in the warning ("summary writer").
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self.failing = False

    def failed(self, action: str, error: Exception) -> None:
        if self.failing:
            return
        self.failing = True
        warnings.warn(
            f"keras_stepcounter: could not {action} the {self._what} "
            f"({type(error).__name__}: {error}); training goes on, and "
            "records are written again once this works.",
            RuntimeWarning,
            stacklevel=4,
        )

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            tf_logger.warning("keras_stepcounter: writing records resumed.")
