"""`GraphStepCounter`: a loop of small steps inside one `tf.function`.

The step is the tiny model's SGD step written out in TensorFlow ops (a
4x8 batch through an 8x1 weight, its gradient, the update, the step
increment), so it costs a few microseconds and any per-step cost of the
recorder shows. The same loop runs with and without `counter(step)` after
each step, in alternating order; the ratio is taken per round.
"""

from __future__ import annotations

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
    verdict,
)

TARGET_RATIO = 1.05
NAME = "`GraphStepCounter` in a `tf.function` loop"


def run(settings: Settings) -> List[Row]:
    try:
        GraphStepCounter = import_recorder("keras_stepcounter", "GraphStepCounter")
    except ImportError as error:
        return [_not_available(error)]
    import tensorflow as tf

    steps = 2_000 if settings.quick else 20_000
    with tempfile.TemporaryDirectory() as log_dir:
        counter = _make_counter(GraphStepCounter, log_dir)
        plain, recorded = _loops(tf, counter)
        plain(tf.constant(10, tf.int64))  # Trace both before timing.
        recorded(tf.constant(10, tf.int64))
        n = tf.constant(steps, tf.int64)
        results = interleave(
            {"plain": _timer(plain, n), "recorded": _timer(recorded, n)},
            settings.rounds,
        )
        close = getattr(counter, "close", None)
        if close is not None:
            close()
    return [_row(results, steps, settings.rounds)]


def _make_counter(GraphStepCounter, log_dir: str):
    # The per-record log line (tf.print to stderr) is turned off where the
    # counter allows it: 2 lines a second of output would bury the table.
    try:
        return GraphStepCounter(every_n_steps=100, output_dir=log_dir, log=False)
    except TypeError:
        return GraphStepCounter(every_n_steps=100, output_dir=log_dir)


def _loops(tf, counter):
    rng = tf.random.Generator.from_seed(0)
    x = rng.normal((4, 8))
    y = rng.normal((4, 1))
    w = tf.Variable(tf.zeros((8, 1)))
    step = tf.Variable(0, dtype=tf.int64)

    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
        w.assign_sub(0.01 * tape.gradient(loss, w))
        step.assign_add(1)

    @tf.function
    def plain(n):
        for _ in tf.range(n):
            train_step()

    @tf.function
    def recorded(n):
        for _ in tf.range(n):
            train_step()
            counter(step.read_value())

    return plain, recorded


def _timer(loop, n) -> Callable[[], Dict[str, float]]:
    def measure() -> Dict[str, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        loop(n)
        return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}

    return measure


def _row(results, steps: int, rounds: int) -> Row:
    plain_wall = median([r["wall"] for r in results["plain"]])
    recorded_wall = median([r["wall"] for r in results["recorded"]])
    per_step_us = [
        (a["wall"] - b["wall"]) / steps * 1e6
        for a, b in zip(results["recorded"], results["plain"])
    ]
    wall_ratios = ratios(results, "recorded", "plain", "wall")
    cpu_ratios = ratios(results, "recorded", "plain", "cpu")
    return Row(
        name=f"{NAME}, {steps:,} tiny SGD steps per call",
        measured=(
            f"{recorded_wall / steps * 1e6:.2f} µs/step with the counter; "
            f"its cost {median(per_step_us):+.2f} µs/step"
        ),
        compared_with=(
            f"same loop without it: {plain_wall / steps * 1e6:.2f} µs/step "
            f"({rounds} interleaved pairs)"
        ),
        result=(
            f"wall ratio {spread(wall_ratios)}; CPU ratio {median(cpu_ratios):.3f}; "
            f"≤ {TARGET_RATIO} for steps ≥ "
            f"{max(median(per_step_us), 0) / (TARGET_RATIO - 1):.0f} µs"
        ),
        target=f"≤ {TARGET_RATIO}",
        verdict=verdict(median(wall_ratios) <= TARGET_RATIO),
    )


def _not_available(error: Exception) -> Row:
    return Row(
        name=NAME,
        measured=NOT_AVAILABLE,
        compared_with="",
        result=f"import failed: {error}",
        target=f"≤ {TARGET_RATIO}",
        verdict=NOT_AVAILABLE,
    )
