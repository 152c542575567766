"""Graph-side pieces of `GraphStepCounter`: summary and log ops written from
inside a graph, and the checks and wrappers its graph needs."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf

from keras_stepcounter.summary_protos import SCALAR_METADATA

try:  # Private, but the only way to see an XLA context at trace time.
    from tensorflow.python.ops.control_flow_util import (
        GraphOrParentsInXlaContext as _in_xla_context,
    )
except ImportError:  # pragma: no cover - a TF without it: XLA fails later.

    def _in_xla_context(graph: Any) -> bool:
        return False


_XLA_MESSAGE = (
    "GraphStepCounter was called inside an XLA-compiled function "
    "(tf.function(jit_compile=True), or a TPU computation): tf.timestamp() "
    "and tf.summary ops have no XLA kernels, so it cannot run there. Call "
    "the counter outside the compiled function: keep the training step in "
    "its own jit_compile=True tf.function, and call that step and then the "
    "counter from a plain tf.function (or eager) loop."
)

def write_scalars_in_graph(
    writer: Optional[tf.summary.SummaryWriter], step: tf.Tensor, scalars: Dict[str, Any]
) -> List[Any]:
    """Summary ops writing `scalars` at `step`, then a flush, in that order.

    Tags are written exactly as given, whatever `tf.name_scope` is active
    (`tf.summary.scalar` would prefix `while/cond/...` inside a loop), and
    whatever `tf.summary.record_if` the caller set. With `writer` None, the
    default writer active at trace time is used. Unlike the sinks of
    `make_sink`, nothing can catch a failure inside a graph.
    """
    as_default = contextlib.nullcontext() if writer is None else writer.as_default()
    with as_default, tf.summary.record_if(True):
        ops = [
            tf.summary.write(
                tag=tag, tensor=tf.cast(value, tf.float32), step=step, metadata=SCALAR_METADATA
            )
            for tag, value in scalars.items()
        ]
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


def after(*ops: Any) -> tf.Tensor:
    """`True`, once `ops` (graph ops, or None when run eagerly) have run."""
    with tf.control_dependencies(graph_ops(list(ops))):
        return tf.constant(True)


def check_not_in_xla() -> None:
    """Raises, at trace time, inside an XLA-compiled function (no kernels)."""
    if _in_xla_context(tf.compat.v1.get_default_graph()):
        raise RuntimeError(_XLA_MESSAGE)


def one_op_function(fn: Callable[..., Any], *signature: tf.TensorSpec) -> Callable[..., Any]:
    """`fn` as a function the caller's graph calls as one op, never inlined.

    In a `tf.cond` of a loop (lowered to Switch/Merge), the executor still
    walks every node of the branch not taken on every iteration, so a
    branch of many nodes costs on every call where nothing is due. As one
    call node it costs one node, whatever `fn` does (measured with
    `benchmarks/graph_step_counter.py`). `_noinline` is a private function
    attribute (Grappler and the graph runtime honour it) and the only way
    to keep a nested `tf.function` call from being inlined; a test checks
    that the call op carries it.
    """
    return tf.function(
        fn,
        input_signature=list(signature),
        autograph=False,
        experimental_attributes={"_noinline": True},
    )
