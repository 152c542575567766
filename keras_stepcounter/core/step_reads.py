"""`StepReads`: reading the global step during a run, safely.

A read is a device read, done only when a record may be due. It must come
from the thread that runs training (a batch callback run on a thread pool
no longer belongs to its batch), inside a run, and a failure must never
stop training.
"""

from __future__ import annotations

import threading
from typing import Optional

from keras_stepcounter.core.run_source import StepRead
from keras_stepcounter.core.run_warnings import RunWarnings

OUTSIDE_A_RUN = (
    "step_done() was called outside a run: call it inside "
    "`with counter.track():` (or drive the counter through a "
    "keras.callbacks.CallbackList, starting with on_train_begin)."
)


class StepReads:
    """Reads the step for one run at a time; None where a read must not count.

    Args:
        warnings: Where an off-thread call or a failed read is reported.

    Example:

    ```python
    reads = StepReads(RunWarnings(rates))
    reads.start(lambda: int(step_variable.numpy()))  # from the training thread
    step = reads.read()   # None: do not record (and stop recording this run)
    reads.stop()
    ```
    """

    def __init__(self, warnings: RunWarnings) -> None:
        self._warnings = warnings
        self.stop()

    def start(self, read: StepRead) -> None:
        """A run starts on this thread, reading with `read`."""
        self._read: Optional[StepRead] = read
        self._thread: Optional[int] = threading.get_ident()

    def stop(self) -> None:
        """Outside a run: a read is a usage error."""
        self._read = None
        self._thread = None

    @property
    def in_run(self) -> bool:
        return self._read is not None

    def read(self, first: bool = False) -> Optional[int]:
        """The step, or None when it must not be used: read from another
        thread, or reading failed (both warned). The run should then record
        nothing more.

        Raises:
            RuntimeError: outside a run (`step_done()` without `track()`).
            TypeError: on a run's `first` read, a step source of the wrong
                kind (it returns floats, say): bad input, before any step.
        """
        if self._read is None:
            raise RuntimeError(OUTSIDE_A_RUN)
        if threading.get_ident() != self._thread:
            self._warnings.off_thread()
            return None
        try:
            return self._read()
        except Exception as error:  # A measuring tool must not stop training.
            if first and isinstance(error, TypeError):
                raise
            self._warnings.read_failed(error)
            return None
