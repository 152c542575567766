"""Summary ops for `GraphStepCounter`, written from inside a graph."""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf
from tensorboard.plugins.scalar import metadata as scalar_metadata

# What makes TensorBoard show a tensor summary as a scalar.
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(
    display_name=None, description=None
)


def write_scalars_in_graph(
    writer: Optional[tf.summary.SummaryWriter], step: tf.Tensor, scalars: Dict[str, Any]
) -> list:
    """Summary ops writing `scalars` at `step`, then a flush, in that order.

    Tags are written as given: `tf.summary.scalar` would prefix the graph's
    name scope (`while/cond/...` inside a loop). With `writer` None, the
    default writer active at trace time is used. Unlike `ScalarWriter`,
    nothing can catch a failure inside a graph.
    """

    def write_all() -> list:
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


def graph_ops(ops: list) -> list:
    """The graph ops among `ops` (run eagerly, print and flush give None)."""
    return [op for op in ops if op is not None]
