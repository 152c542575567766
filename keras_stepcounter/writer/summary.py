"""`make_sink`, which picks the sink of `StepCounter`, and its `tf.summary` sink.

Every sink has the same methods: `open()` (idempotent and cheap when
open), `write(step, scalars) -> bool` (flushed before it returns; False
when the record was lost, which warned), `write_text(step, tag, markdown)
-> bool` (the same, for a Markdown text), `flush()`, `close()`, and for
re-run steps `begin_run(start_step) -> Optional[int]` and `reached(step)`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, TypeVar, Union

import numpy as np
import tensorflow as tf

from keras_stepcounter.dashboard import DashboardTags, dashboard_summary
from keras_stepcounter.summary_protos import scalar_metadata, text_summary
from keras_stepcounter.writer._failures import FailureReporter
from keras_stepcounter.writer.checks import opens_own_writer
from keras_stepcounter.writer.event_file import EventFileSink
from keras_stepcounter.writer.lineage import rerun_steps

T = TypeVar("T")


def write_layout(writer: Optional[tf.summary.SummaryWriter], dashboard: DashboardTags) -> bool:
    """Writes the Custom Scalars layout of `dashboard` at step 0 to `writer`
    (None: the default writer, if any) and flushes; True if written. Eager
    only (outside a `tf.function`); failures are the caller's."""
    serialized = dashboard_summary(dashboard).SerializeToString()
    return _with_writer(writer, lambda: _write_raw(0, serialized))


class SummarySink:
    """Writes scalars through a v2 `tf.summary` writer, flushed at once.

    Args:
        summary_writer: A writer owned by the caller (flushed, never
            closed), or None for the default writer active when a record
            is taken (`with writer.as_default():`); with none active the
            record goes nowhere.
        dashboard: The tags the counter writes, for its Custom Scalars
            layout; None writes no layout.

    Tags are written exactly as given (`tf.summary.write` with the scalar
    plugin's metadata: `tf.summary.scalar` without its `tf.name_scope`
    prefix). Values and steps go in as numpy values: TF would cache each
    Python number as a constant (memory growing per record). The layout is
    written at the first `open` that finds a writer. Re-run steps
    (`begin_run`) are measured against this sink's previous run only: a
    writer's directory has no lineage index of the counter's.
    """

    def __init__(
        self,
        summary_writer: Optional[tf.summary.SummaryWriter] = None,
        dashboard: Optional[DashboardTags] = None,
    ) -> None:
        self._writer = summary_writer
        self._dashboard = dashboard
        self._layout_due = dashboard is not None
        self._failures = FailureReporter("summary writer")
        self._run_begun = False
        self._last_step = 0  # Read by this run.

    def begin_run(self, start_step: int) -> Optional[int]:
        """A run starts at `start_step`: the steps it computes again after
        this sink's previous run (None: none). Never raises."""
        last = self._last_step if self._run_begun else None
        self._run_begun, self._last_step = True, start_step
        return rerun_steps(start_step, last)

    def reached(self, step: int) -> None:
        """The run read `step` (an epoch's end, the run's end)."""
        self._last_step = step

    def open(self) -> None:
        """Writes the layout, unless it was written (nothing else to open:
        the writer is the caller's)."""
        if not self._layout_due or self._dashboard is None:
            return
        try:
            self._layout_due = not write_layout(self._writer, self._dashboard)
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)

    def write(self, step: int, scalars: Dict[str, float]) -> bool:
        """Writes and flushes `scalars` at `step`; True if no error came."""
        self._last_step = step
        return self._written(lambda: self._write_all(step, scalars))

    def write_text(self, step: int, tag: str, markdown: str) -> bool:
        """Writes and flushes `markdown` as a text summary at `step`; True if
        no error came."""
        serialized = text_summary(tag, markdown).SerializeToString()
        return self._written(lambda: _write_raw(step, serialized))

    def _written(self, write: Callable[[], Any]) -> bool:
        try:
            _with_writer(self._writer, write)
        except Exception as error:  # Training must go on.
            self._failures.failed("write", error)
            return False
        self._failures.succeeded()
        return True

    @staticmethod
    def _write_all(step: int, scalars: Dict[str, float]) -> None:
        step_value = np.asarray(step, np.int64)
        with tf.summary.record_if(True):  # See `_write_raw`.
            for tag, value in scalars.items():
                tf.summary.write(
                    tag,
                    np.asarray(value, np.float32),
                    step=step_value,
                    metadata=scalar_metadata(tag),
                )

    def flush(self) -> None:
        try:
            if self._writer is not None:
                self._writer.flush()
        except Exception as error:
            self._failures.failed("flush", error)

    def close(self) -> None:
        """Flushes; the caller's writer stays open."""
        self.flush()

    def __deepcopy__(self, memo: Dict[int, Any]) -> "SummarySink":
        """Shares the caller's writer (a writer cannot be copied)."""
        return SummarySink(self._writer, self._dashboard)


def _with_writer(writer: Optional[tf.summary.SummaryWriter], write: Callable[[], T]) -> T:
    """`write()` with `writer` as the default (None: the one active), flushed."""
    if writer is None:
        written = write()
        tf.summary.flush()
        return written
    with writer.as_default():  # Flushes on exit.
        return write()


def _write_raw(step: int, serialized_summary: bytes) -> bool:
    """Writes a serialized `Summary` at `step`; False with no default writer."""
    # record_if(True): Keras's TensorBoard callback with an integer
    # update_freq leaves `record_if(its step % freq == 0)` active around
    # every batch, which would drop our records.
    with tf.summary.record_if(True):
        return bool(
            tf.summary.experimental.write_raw_pb(
                np.asarray(serialized_summary), step=np.asarray(step, np.int64)
            )
        )


def make_sink(
    output_dir: Optional[str] = None,
    summary_writer: Optional[tf.summary.SummaryWriter] = None,
    dashboard: Optional[DashboardTags] = None,
) -> Union[EventFileSink, SummarySink]:
    """The sink `StepCounter` writes its records to, chosen once.

    Args:
        output_dir: Directory for an event file of its own (`EventFileSink`).
        summary_writer: A `tf.summary` writer of the caller's (`SummarySink`);
            never closed here.
        dashboard: The tags the counter writes, for their Custom Scalars
            layout; None writes no layout.

    With neither, records go to the default `tf.summary` writer active
    when they are taken, if any. A given `summary_writer` wins.

    Example:

    ```python
    sink = make_sink(output_dir=tmp)
    sink.open()
    rerun = sink.begin_run(0)  # None: a run from step 0 is a new run
    sink.write(100, {"global_step/sec": 12.5})
    sink.close()
    ```
    """
    if opens_own_writer(output_dir, summary_writer):
        return EventFileSink(output_dir, dashboard=dashboard)
    return SummarySink(summary_writer, dashboard)

