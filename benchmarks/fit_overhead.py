"""`fit` overhead: a tiny model's `fit` with and without a step-rate callback.

Each round runs one `fit` per variant (no callback, `StepCounter`, the
naive per-batch reader, Keras's `TensorBoard` at `update_freq=100` and at
`update_freq=1`), in alternating order; each variant's ratio is taken
against the no-callback `fit` of the same round. The figure is the median
ratio of CPU time (`time.process_time`: all threads of this process, so a
busy neighbour on a shared machine disturbs it less than wall time); the
wall-time ratio is shown beside it.

The model is the test suite's: one Dense layer on 8 features, batch 4, so a
step is as cheap as Keras can make it and any per-batch cost shows.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Dict, List

from benchmarks._common import (
    Row,
    Settings,
    interleave,
    median,
    ratios,
    spread,
    timed_hooks as _timed_hooks,
    tiny_data,
    tiny_model,
    verdict,
)

TARGET_RATIO = 1.01
BATCH_SIZE = 4


def run(settings: Settings) -> List[Row]:
    import tensorflow as tf

    import keras_stepcounter

    keras: Any = tf.keras
    steps = 200 if settings.quick else 2_000
    x, y = tiny_data(steps * BATCH_SIZE)
    model = tiny_model(keras)
    model.fit(x, y, batch_size=BATCH_SIZE, verbose=0)  # Trace and warm up.
    iterations = model.optimizer.iterations

    class Empty(keras.callbacks.Callback):
        pass

    class Naive(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.step = int(iterations)

    with tempfile.TemporaryDirectory() as log_dir:
        def make(name: str, factory: Callable[[str], list]):
            directory = os.path.join(log_dir, name)
            return _fit_timer(model, x, y, lambda: factory(directory))

        results = interleave(
            {
                "none": make("none", lambda d: []),
                "StepCounter": make(
                    "sc", lambda d: [keras_stepcounter.StepCounter(output_dir=d)]
                ),
                # The same, with its hooks timed from outside: a direct
                # measure of its own cost, free of the noise between fits.
                "StepCounter_timed": make(
                    "sc_timed",
                    lambda d: [
                        _timed_hooks(Empty()),
                        _timed_hooks(keras_stepcounter.StepCounter(output_dir=d)),
                    ],
                ),
                "naive": make("naive", lambda d: [Naive()]),
                "tb100": make(
                    "tb100",
                    lambda d: [
                        keras.callbacks.TensorBoard(
                            d, update_freq=100, write_steps_per_second=True
                        )
                    ],
                ),
                "tb1": make(
                    "tb1",
                    lambda d: [
                        keras.callbacks.TensorBoard(
                            d, update_freq=1, write_steps_per_second=True
                        )
                    ],
                ),
            },
            settings.rounds,
        )
    return _rows(results, steps, settings.rounds)


def _fit_timer(model, x, y, make_callbacks) -> Callable[[], Dict[str, float]]:
    def measure() -> Dict[str, float]:
        callbacks = make_callbacks()  # Built outside the timed region.
        cpu, wall = time.process_time(), time.perf_counter()
        model.fit(x, y, batch_size=BATCH_SIZE, verbose=0, callbacks=callbacks)
        return {
            "cpu": time.process_time() - cpu,
            "wall": time.perf_counter() - wall,
            # Seconds inside the last callback beyond those inside the first
            # (an empty one, timed the same way: what any callback costs).
            "inside": _inside(callbacks),
        }

    return measure


def _inside(callbacks) -> float:
    timed = [c.seconds_inside for c in callbacks if hasattr(c, "seconds_inside")]
    return timed[-1] - timed[0] if len(timed) == 2 else 0.0


_LABELS = {
    "StepCounter": "`StepCounter()` (every 100 steps, to a file)",
    "naive": "naive callback: `int(iterations)` every batch",
    "tb100": "Keras `TensorBoard(update_freq=100, write_steps_per_second=True)`",
    "tb1": "Keras `TensorBoard(update_freq=1, write_steps_per_second=True)`",
}


def _rows(results, steps: int, rounds: int) -> List[Row]:
    base_cpu = median([r["cpu"] for r in results["none"]])
    base_wall = median([r["wall"] for r in results["none"]])
    rows = []
    for name, label in _LABELS.items():
        cpu_ratios = ratios(results, name, "none", "cpu")
        wall_ratios = ratios(results, name, "none", "wall")
        cpu = median([r["cpu"] for r in results[name]])
        if name == "StepCounter":
            target = f"≤ {TARGET_RATIO}"
            outcome = verdict(median(cpu_ratios) <= TARGET_RATIO)
        else:
            target = "(for comparison)"
            outcome = "reference"
        rows.append(
            Row(
                name=f"`fit` {steps:,} steps: {label}",
                measured=(
                    f"CPU {cpu:.2f} s, {(cpu - base_cpu) / steps * 1e6:+.1f} µs/step"
                ),
                compared_with=(
                    f"no callback: CPU {base_cpu:.2f} s, wall {base_wall:.2f} s "
                    f"({rounds} interleaved pairs)"
                ),
                result=(
                    f"CPU ratio {spread(cpu_ratios)}; "
                    f"wall ratio {median(wall_ratios):.3f}"
                ),
                target=target,
                verdict=outcome,
            )
        )
        if name == "StepCounter":
            rows.append(_inside_row(results["StepCounter_timed"], steps, rounds))
    return rows


def _inside_row(timed_runs, steps: int, rounds: int) -> Row:
    inside = [r["inside"] for r in timed_runs]
    # The fit without the counter's own time, and the ratio that adding it gives.
    implied = [1 + r["inside"] / (r["wall"] - r["inside"]) for r in timed_runs]
    return Row(
        name=f"`fit` {steps:,} steps: time inside `StepCounter`'s hooks (timed in place)",
        measured=(
            f"{median(inside) * 1e3:.1f} ms per fit above an empty callback timed "
            f"the same way, {median(inside) / steps * 1e6:.2f} µs/step "
            f"(all hooks, {steps // 100 - 1} records included)"
        ),
        compared_with=(
            f"the rest of the same fit: wall "
            f"{median([r['wall'] - r['inside'] for r in timed_runs]):.2f} s ({rounds} fits)"
        ),
        result=f"implied ratio {spread(implied, '{:.4f}')}",
        target=f"≤ {TARGET_RATIO}",
        verdict=verdict(median(implied) <= TARGET_RATIO),
    )
