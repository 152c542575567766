"""Summary and log ops for `GraphStepCounter`, written from inside a graph."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tensorboard.plugins.scalar import metadata as scalar_metadata

# What makes TensorBoard show a tensor summary as a scalar.
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(
    display_name=None, description=None
)


def write_scalars_in_graph(
    writer: Optional[tf.summary.SummaryWriter], step: tf.Tensor, scalars: Dict[str, Any]
) -> List[Any]:
    """Summary ops writing `scalars` at `step`, then a flush, in that order.

    Tags are written exactly as given, whatever `tf.name_scope` is active
    (`tf.summary.scalar` would prefix it: `while/cond/...` inside a loop).
    The writes happen whatever recording condition the caller set
    (`tf.summary.record_if(False)`, or `record_if(step % 10 == 0)`): a
    record the counter takes always reaches the file. With `writer` None,
    the default writer active at trace time is used. Unlike `ScalarWriter`,
    nothing can catch a failure inside a graph.
    """

    def write_all() -> List[Any]:
        with tf.summary.record_if(True):
            return [
                tf.summary.write(
                    tag=tag,
                    tensor=tf.cast(value, tf.float32),
                    step=step,
                    metadata=_SCALAR_METADATA,
                )
                for tag, value in scalars.items()
            ]

    if writer is not None:
        with writer.as_default():
            ops = write_all()
    else:
        ops = write_all()
    with tf.control_dependencies(graph_ops(ops)):
        flush = tf.summary.flush(writer=writer)
    return ops + [flush]


def print_rate_line(tag: str, rate: tf.Tensor) -> Any:
    """Prints v1's log line, `<tag>: <rate>`, to stderr (`%g` formatting)."""
    value = tf.strings.as_string(rate, shortest=True)
    return tf.print(tf.strings.join([tag, ": ", value]), output_stream=sys.stderr)


def print_went_back_warning(baseline_step: tf.Tensor, step: tf.Tensor) -> Any:
    """Prints, to stderr, the warning for a global step below the baseline."""
    line = tf.strings.format(
        "WARNING: keras_stepcounter: the global step went back: {} is below "
        "{}, the step of the last baseline (a checkpoint restore, or an "
        "assign to the step counter?); nothing is recorded for that "
        "interval, and a new one starts at step {}.",
        (step, baseline_step, step),
    )
    return tf.print(line, output_stream=sys.stderr)


def graph_ops(ops: List[Any]) -> List[Any]:
    """The graph ops among `ops` (run eagerly, print and flush give None)."""
    return [op for op in ops if op is not None]
