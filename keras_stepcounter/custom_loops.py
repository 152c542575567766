"""The custom-loop half of `StepCounter`: `track()`, `step_done()`, `paused()`,
timed blocks.

For training loops written by hand (the Keras guide's "Writing a training
loop from scratch"), without a `CallbackList`. `StepCounter` mixes these in;
they only call its recorder.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Dict, Iterable, Iterator, Optional, TypeVar

from keras_stepcounter._step_readers import iterations_reader, step_source_reader
from keras_stepcounter.core.run_source import RunSource

T = TypeVar("T")
Self = TypeVar("Self", bound="CustomLoopMethods")


class CustomLoopMethods:
    """`track()`, `step_done()`, `paused()`, `timed()` and `timed_iter()` of
    `StepCounter`.

    Example:

    ```python
    counter = keras_stepcounter.StepCounter(every_n_steps=100, output_dir="logs")
    with counter.track(optimizer.iterations):
        for batch in counter.timed_iter(dataset):
            train_step(batch)
            counter.step_done()
    ```
    """

    # Provided by StepCounter.
    _recorder: Any
    _step_source: Optional[RunSource]
    model: Any

    def _begin_run(self, reader: RunSource) -> None:
        raise NotImplementedError

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def track(self: Self, step_source: Any = None) -> Iterator[Self]:
        """Brackets a custom training loop: begin on entry, end on exit.

        Args:
            step_source: An integer `tf.Variable` (e.g. `optimizer.iterations`)
                or a callable returning the global step, for this block
                only. Default: the constructor's, else
                `model.optimizer.iterations`.

        Call `step_done()` after each training step (or each call of a
        function running several steps) inside the block, from any frame
        of the thread that entered it (a helper function, a generator).
        The run, and its stall watchdog, last from entering the block to
        leaving it; a block lives in one notebook cell.
        """
        if step_source is not None:
            reader = step_source_reader(step_source)
        else:
            reader = self._step_source or iterations_reader(self.model)
        self._begin_run(reader)
        self._recorder.begin_steps()
        try:
            yield self
        finally:
            self.on_train_end()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A block that is not training (an evaluation inside `track()`).

        From the end of the last step before it to the end of the block, the
        clock pauses for every instrument: the rate, step times, time
        fractions and the goodput ledger (as epoch-boundary time) leave it
        out, and the stall watchdog never counts it as a stall. Outside a
        run, or nested in another `paused()`, it does nothing.

        Example:

        ```python
        with counter.track(optimizer.iterations):
            for step, batch in enumerate(dataset):
                train_step(batch)
                counter.step_done()
                if step % 1000 == 0:
                    with counter.paused():
                        evaluate(model)
        ```
        """
        paused = self._recorder.pause_steps(epoch_end=False)
        try:
            yield
        finally:
            if paused:
                self._recorder.begin_steps()

    def timed(self, name: str) -> ContextManager[None]:
        """A context manager timing a named block: `time_frac/<name>` at each
        record is the share of that record's interval spent inside it.
        Timed in the run's training time: pauses and the counter's own work
        inside the block are left out, as from the interval.

        Example:

        ```python
        with counter.track(optimizer.iterations):
            for batch in dataset:
                with counter.timed("step"):
                    train_step(batch)
                counter.step_done()
        ```
        """
        return self._recorder.sections.timed(name)

    def timed_iter(self, iterable: Iterable[T], name: str = "input") -> Iterator[T]:
        """Yields the items of `iterable`, timing each `next()` as `name`, so
        a loop's input wait shows as `time_frac/input`."""
        return self._recorder.sections.timed_iter(iterable, name)

    def step_done(self, batch: Any = None, logs: Optional[Dict[str, Any]] = None) -> None:
        """One training step (or call of several) of a custom loop ended.

        Costs what the hot path of `fit` costs. Call it inside `track()`
        (or a run begun with `on_train_begin`), on the thread that began
        the run; `RuntimeError` outside a run.
        """
        self._recorder.batch_end(batch, logs)
