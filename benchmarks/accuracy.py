"""Accuracy: the recorded rate against the true rate from timestamps.

A real `fit` whose steps take a known time (a callback sleeps 2 ms at the
start of every batch) and whose epochs end with 0.2 s of simulated
epoch-end work (validation, checkpointing). Callbacks on either side of the
`StepCounter` take timestamps around every step, so the true rate of each
recorded interval is known independently of the counter:

    true rate = (s - p) / (end of step s - end of step p, after the
                recorder's own work - epoch-boundary gaps inside)

which is what the package promises to record: training time only, with
its own writing and the time between epochs (from the end of an epoch's
last batch) left out. The epoch length is
chosen so a record lands on the last step of the first epoch, and the next
interval spans the epoch boundary.

Records are read back from the event file with
`keras_stepcounter.tools.events.read_scalars`.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Dict, List, Tuple

from benchmarks._common import Row, Settings, median, tiny_data, tiny_model, verdict

TARGET_ERROR = 0.01
STEP_SLEEP_S = 0.002
EPOCH_END_SLEEP_S = 0.2
BATCH_SIZE = 4


def run(settings: Settings) -> List[Row]:
    import tensorflow as tf

    import keras_stepcounter
    from keras_stepcounter.tools.events import read_scalars

    keras: Any = tf.keras
    every = 20 if settings.quick else 50
    # Baseline at the first step, records every `every` steps after it:
    # step 1 + 3 * every is a record and the first epoch's last step.
    steps_per_epoch = 1 + 3 * every
    x, y = tiny_data(steps_per_epoch * BATCH_SIZE)
    model = tiny_model(keras)
    model.fit(x[:BATCH_SIZE], y[:BATCH_SIZE], batch_size=BATCH_SIZE, verbose=0)

    # (recorded, true) rate pairs, by whether the interval spans an epoch end.
    within: List[Tuple[float, float]] = []
    across: List[Tuple[float, float]] = []
    keras_gaps: List[float] = []
    rounds = min(settings.rounds, 5)
    with tempfile.TemporaryDirectory() as log_dir:
        for round_index in range(rounds):
            run_dir = os.path.join(log_dir, f"round{round_index}")
            stamps = _Timestamps(keras, int(model.optimizer.iterations))
            counter = keras_stepcounter.StepCounter(every_n_steps=every, output_dir=run_dir)
            model.fit(
                x, y, batch_size=BATCH_SIZE, epochs=2, verbose=0,
                # The counter is listed before the callback with epoch-end
                # work, as the docs advise (docs/how-it-measures.md).
                callbacks=[stamps.before, counter, stamps.after, stamps.sleeper],
            )
            records = read_scalars(run_dir)[counter.tag]
            baseline = stamps.first_step
            for record in records:
                true_rate, spans_boundary = stamps.true_rate(baseline, record.step)
                (across if spans_boundary else within).append((record.value, true_rate))
                baseline = record.step
            keras_gaps.extend(stamps.keras_epoch_end_secs())
    return _rows(within, across, every, rounds, keras_gaps)


class _Timestamps:
    """Sleeps to make steps take a known time; stamps both sides of the counter."""

    def __init__(self, keras, start_step: int) -> None:
        self.first_step = start_step + 1
        self.end_before: Dict[int, float] = {}
        self.end_after: Dict[int, float] = {}
        self.begin_after: Dict[int, float] = {}
        self.epoch_end_after: Dict[int, float] = {}
        self.epoch_last_steps: List[int] = []
        stamps = self
        self._batches = 0
        step_of = lambda: start_step + stamps._batches  # noqa: E731

        class Sleeper(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                time.sleep(STEP_SLEEP_S)

            def on_epoch_end(self, epoch, logs=None):
                stamps.epoch_last_steps.append(step_of())
                time.sleep(EPOCH_END_SLEEP_S)

        class Before(keras.callbacks.Callback):  # Listed first.
            def on_train_batch_begin(self, batch, logs=None):
                stamps._batches += 1

            def on_train_batch_end(self, batch, logs=None):
                stamps.end_before[step_of()] = time.perf_counter()

        class After(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                stamps.epoch_end_after[step_of()] = time.perf_counter()

            def on_train_batch_begin(self, batch, logs=None):
                stamps.begin_after[step_of()] = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                stamps.end_after[step_of()] = time.perf_counter()

        self.sleeper, self.before, self.after = Sleeper(), Before(), After()

    def true_rate(self, from_step: int, to_step: int) -> Tuple[float, bool]:
        """Training steps per second over (from_step, to_step], and whether
        the interval spans an epoch boundary.

        The rule the counter documents: the clock pauses from the end of an
        epoch's last batch as the counter saw it (its `on_train_batch_end`,
        stamped by the callback right after it) to its first hook of the
        next epoch's first batch. What Keras does after the last batch's
        callbacks and before `on_epoch_end` (the epoch's final, failing
        fetch, the metrics' results) is in the pause too:
        `keras_epoch_end_secs` measures it.
        """
        seconds = self.end_before[to_step] - self.end_after[from_step]
        boundaries = [s for s in self.epoch_last_steps if from_step <= s < to_step]
        for last in boundaries:
            seconds -= self.begin_after[last + 1] - self.end_after[last]
        return (to_step - from_step) / seconds, bool(boundaries)

    def keras_epoch_end_secs(self) -> List[float]:
        """Per epoch: from the last batch's callbacks to `on_epoch_end`."""
        return [self.epoch_end_after[s] - self.end_after[s] for s in self.epoch_last_steps]


def _rows(within, across, every: int, rounds: int, keras_gaps: List[float]) -> List[Row]:
    rows = []
    for label, pairs in (
        ("within an epoch", within),
        (
            f"across an epoch end with {EPOCH_END_SLEEP_S:.1f} s of epoch-end work "
            f"(Keras's own work before on_epoch_end, left out: median "
            f"{median(keras_gaps) * 1e3:.1f} ms an epoch)",
            across,
        ),
    ):
        errors = [abs(recorded - true) / true for recorded, true in pairs]
        worst = max(errors) if errors else float("nan")
        rows.append(
            Row(
                name=f"accuracy: recorded vs true rate, {label}",
                measured=(
                    f"{len(pairs)} records (every {every} steps, {rounds} fits), "
                    f"median {median([r for r, _ in pairs]):.2f} steps/s"
                ),
                compared_with=(
                    f"true rate from timestamps, median "
                    f"{median([t for _, t in pairs]):.2f} steps/s "
                    f"(steps of {STEP_SLEEP_S * 1e3:.0f} ms sleep + the step itself)"
                ),
                result=f"error median {median(errors):.3%}, worst {worst:.3%}",
                target=f"within {TARGET_ERROR:.0%}",
                verdict=verdict(bool(errors) and worst <= TARGET_ERROR),
            )
        )
    return rows
