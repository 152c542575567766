"""Hot path: one batch-callback call on a batch where no record can be due.

Direct, timeit-style calls on a real `StepCounter` attached to a real
compiled model, after `on_train_begin` and the first batch end (which sets
the baseline). `every_n_steps` is set far beyond the calls timed, so every
timed call takes the between-triggers path, the same code every batch runs
between two records at the default `every_n_steps=100`.

Compared with an empty callback (Python's cost of calling a method at all)
and a naive callback that reads `int(model.optimizer.iterations)` on every
batch, as a per-batch step reader would.
"""

from __future__ import annotations

import tempfile
import timeit
from typing import Any, Callable, Dict, List

from benchmarks._common import Row, Settings, interleave, median, spread, verdict

TARGET_US = 0.5
STEP_TIMES_TARGET_US = 0.2


def run(settings: Settings) -> List[Row]:
    import tensorflow as tf

    import keras_stepcounter
    from benchmarks._common import tiny_model

    keras: Any = tf.keras
    model = tiny_model(keras)
    iterations = model.optimizer.iterations

    class Empty(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            pass

        def on_train_batch_end(self, batch, logs=None):
            pass

    class Naive(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.step = int(iterations)

    with tempfile.TemporaryDirectory() as log_dir:
        counter = keras_stepcounter.StepCounter(every_n_steps=10**9, output_dir=log_dir)
        timed = keras_stepcounter.StepCounter(
            every_n_steps=10**9, output_dir=log_dir, step_time_stats=True
        )
        callbacks: List[Any] = [Empty(), Naive(), counter, timed]
        for callback in callbacks:
            callback.set_model(model)
        for started in (counter, timed):
            started.on_train_begin()
            started.on_epoch_begin(0)
            started.on_train_batch_begin(0)
            started.on_train_batch_end(0, {})  # The baseline; now between triggers.

        calls = 20_000 if settings.quick else 200_000
        naive_calls = max(1, calls // 100)  # ~20 µs each: fewer calls suffice.
        empty, naive = callbacks[0], callbacks[1]
        results = interleave(
            {
                "empty_end": _timer(empty.on_train_batch_end, calls),
                "ours_end": _timer(counter.on_train_batch_end, calls),
                "timed_end": _timer(timed.on_train_batch_end, calls),
                "naive_end": _timer(naive.on_train_batch_end, naive_calls),
                "empty_begin": _timer(empty.on_train_batch_begin, calls),
                "ours_begin": _timer(counter.on_train_batch_begin, calls),
            },
            settings.rounds,
        )
        for started in (counter, timed):
            started.on_train_end()
            started.close()
    return _rows(results, calls)


def _timer(method: Callable, calls: int) -> Callable[[], Dict[str, float]]:
    """Seconds per call: the best of 3 timeit runs, as `timeit` itself reports."""
    timer = timeit.Timer("method(1, logs)", globals={"method": method, "logs": {}})

    def measure() -> Dict[str, float]:
        return {"per_call": min(timer.repeat(repeat=3, number=calls)) / calls}

    return measure


def _per_call_us(results, name: str) -> List[float]:
    return [r["per_call"] * 1e6 for r in results[name]]


def _rows(results, calls: int) -> List[Row]:
    empty_end = _per_call_us(results, "empty_end")
    ours_end = _per_call_us(results, "ours_end")
    naive_end = _per_call_us(results, "naive_end")
    over_empty = [o - e for o, e in zip(ours_end, empty_end)]
    naive_over_ours = [n / o for n, o in zip(naive_end, ours_end)]
    timed_over_ours = [t - o for t, o in zip(_per_call_us(results, "timed_end"), ours_end)]
    empty_begin = _per_call_us(results, "empty_begin")
    ours_begin = _per_call_us(results, "ours_begin")
    begin_over_empty = [o - e for o, e in zip(ours_begin, empty_begin)]
    return [
        Row(
            name="hot path: `StepCounter.on_train_batch_end`, no record due",
            measured=f"{median(ours_end):.3f} µs/call ({calls:,} calls × 3, best)",
            compared_with=(
                f"empty callback {median(empty_end):.3f} µs; naive "
                f"`int(iterations)` {median(naive_end):.2f} µs "
                f"({median(naive_over_ours):.0f}× ours)"
            ),
            result=spread(over_empty, "{:+.3f}") + " µs above empty",
            target=f"< {TARGET_US} µs above empty",
            verdict=verdict(median(over_empty) < TARGET_US),
        ),
        Row(
            name="hot path: `on_train_batch_end` with `step_time_stats=True`",
            measured=spread(timed_over_ours, "{:+.3f}") + " µs/call over the row above",
            compared_with="the same counter without step_time_stats",
            result="keeps each step's time in a fixed-size buffer",
            target=f"< {STEP_TIMES_TARGET_US} µs over it (issue 17)",
            verdict=verdict(median(timed_over_ours) < STEP_TIMES_TARGET_US),
        ),
        Row(
            name="hot path: `StepCounter.on_train_batch_begin`",
            measured=f"{median(ours_begin):.3f} µs/call",
            compared_with=f"empty callback {median(empty_begin):.3f} µs",
            result=spread(begin_over_empty, "{:+.3f}") + " µs above empty",
            target=f"< {TARGET_US} µs above empty",
            verdict=verdict(median(begin_over_empty) < TARGET_US),
        ),
    ]
