"""The v1 hook: ours against TensorFlow's own in the same `MonitoredSession` loop.

A graph-mode tiny model (the 4x8 batch, 8x1 weight SGD step, with the
global step incremented by the optimizer) trained by a
`tf.compat.v1.train.MonitoredSession` loop of `session.run(train_op)`:
with no hook, with `tf.compat.v1.train.StepCounterHook`, and with
`keras_stepcounter.compat.v1.StepCounterHook`, in alternating order. Only
the loop is timed (not the graph or session set-up); each ratio is taken
against a run of the same round.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable, Dict, List

from benchmarks._common import (
    NOT_AVAILABLE,
    Row,
    Settings,
    import_recorder,
    interleave,
    median,
    ratios,
    spread,
)

NAME = "v1 hook: `compat.v1.StepCounterHook` in a `MonitoredSession` loop"


def run(settings: Settings) -> List[Row]:
    try:
        StepCounterHook = import_recorder("keras_stepcounter.compat.v1", "StepCounterHook")
    except ImportError as error:
        return [
            Row(
                name=NAME,
                measured=NOT_AVAILABLE,
                compared_with="",
                result=f"import failed: {error}",
                target="≈ TF's hook (no target set)",
                verdict=NOT_AVAILABLE,
            )
        ]
    import tensorflow as tf

    steps = 300 if settings.quick else 3_000
    with tempfile.TemporaryDirectory() as log_dir:
        def hooked(name: str, make_hook) -> Callable[[], Dict[str, float]]:
            directory = os.path.join(log_dir, name)
            return lambda: _session_loop(tf, steps, lambda: make_hook(directory))

        results = interleave(
            {
                "none": hooked("none", lambda d: None),
                "tf": hooked("tf", lambda d: tf.compat.v1.train.StepCounterHook(output_dir=d)),
                "ours": hooked("ours", lambda d: StepCounterHook(output_dir=d)),
            },
            settings.rounds,
        )
    return [_row(results, steps, settings.rounds)]


def _session_loop(tf, steps: int, make_hook) -> Dict[str, float]:
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        global_step = v1.train.get_or_create_global_step()
        weight = v1.get_variable("w", (8, 1), initializer=v1.zeros_initializer())
        x = tf.constant(0.5, shape=(4, 8))
        y = tf.constant(1.0, shape=(4, 1))
        loss = tf.reduce_mean(tf.square(tf.matmul(x, weight) - y))
        train_op = v1.train.GradientDescentOptimizer(0.01).minimize(
            loss, global_step=global_step
        )
        hook = make_hook()
        with v1.train.MonitoredSession(hooks=[hook] if hook else []) as session:
            session.run(train_op)  # First run: the hooks set their baselines.
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(steps):
                session.run(train_op)
            return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


def _row(results, steps: int, rounds: int) -> Row:
    def per_run_us(name: str) -> float:
        return median([r["cpu"] for r in results[name]]) / steps * 1e6

    ours_vs_tf = ratios(results, "ours", "tf", "cpu")
    ours_vs_none = ratios(results, "ours", "none", "cpu")
    tf_vs_none = ratios(results, "tf", "none", "cpu")
    return Row(
        name=f"{NAME}, {steps:,} `session.run` calls",
        measured=(
            f"ours {per_run_us('ours'):.1f} µs/run CPU "
            f"(×{median(ours_vs_none):.3f} over no hook)"
        ),
        compared_with=(
            f"TF's hook {per_run_us('tf'):.1f} µs/run "
            f"(×{median(tf_vs_none):.3f}); no hook {per_run_us('none'):.1f} µs/run "
            f"({rounds} interleaved rounds)"
        ),
        result=f"CPU ratio ours/TF's {spread(ours_vs_tf)}",
        target="≈ TF's hook (no target set)",
        verdict="reference",
    )
