"""StepCounter checks in Keras 3 on the PyTorch backend; prints JSON.

Not a test module: `test_torch_backend.py` runs it in a fresh process with
`KERAS_BACKEND=torch` (the backend is fixed when Keras is first imported).
Every fit here takes real time on purpose: the point is that the records,
the watchdog and the ledger agree with the seconds the steps really took.
On this backend Keras fetches each batch in its epoch loop, between one
batch's end hook and the next one's begin hook, so the checks put the known
time both in a callback (inside the hooks) and in the data (between them).
TensorFlow still writes the summaries, as on JAX.
"""

import json
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stepcounter  # noqa: E402
from keras_stepcounter.tools.events import read_scalars  # noqa: E402

STEP_SLEEP = 0.02  # Known seconds each step takes, at least.
rng = np.random.default_rng(0)
X = rng.random((240, 8), dtype=np.float32)
Y = rng.random((240, 1), dtype=np.float32)


def run_dir():
    return tempfile.mkdtemp(dir=sys.argv[1])


def records(log_dir):
    return {tag: [[r.step, r.value] for r in rs] for tag, rs in read_scalars(log_dir).items()}


def make_model():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


class SleepInStep(keras.callbacks.Callback):
    """`STEP_SLEEP` seconds at each batch's begin: inside the step's hooks."""

    def on_train_batch_begin(self, batch, logs=None):
        time.sleep(STEP_SLEEP)


class SlowBatches(keras.utils.PyDataset):
    """Batches of 4 from X, Y; each `__getitem__` sleeps `STEP_SLEEP`."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        time.sleep(STEP_SLEEP)
        rows = slice(4 * index, 4 * index + 4)
        return X[rows], Y[rows]


class BatchEndClock(keras.callbacks.Callback):
    """Wall-clock truth: the perf_counter at every batch end (after the counter)."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


class Hang(keras.callbacks.Callback):
    """`hang` seconds after the end of the fit's `hang_at`th batch."""

    def __init__(self, hang_at, hang):
        super().__init__()
        self.hang_at, self.hang, self.batches = hang_at, hang, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.hang_at:
            time.sleep(self.hang)


class Messages(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append([record.levelname, record.getMessage()])


def backend_checks():
    counter = keras_stepcounter.StepCounter(output_dir=run_dir())
    return {
        "backend": keras.backend.backend(),
        "is_keras_callback": isinstance(counter, keras.callbacks.Callback),
        # Keras never runs the counter's hooks in its thread pool.
        "async_with_counter": getattr(keras.callbacks.CallbackList([counter]), "_async_train", None),
    }


def rate_run(slow_in):
    """2 epochs of 30 steps of at least STEP_SLEEP s, records every 10 steps,
    the known time in a callback ("step") or in the data ("data")."""
    log_dir, truth = run_dir(), BatchEndClock()
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=log_dir, goodput=True, step_time_stats=True
    )
    model = make_model()
    if slow_in == "step":
        model.fit(X[:120], Y[:120], batch_size=4, epochs=2, verbose=0, shuffle=False,
                  callbacks=[counter, SleepInStep(), truth])
    else:
        model.fit(SlowBatches(30), epochs=2, verbose=0, callbacks=[counter, truth])
    return {
        "records": records(log_dir),
        "batch_ends": truth.ends,
        "steps_per_sec": model.history.history.get("steps_per_sec"),
    }


def stall_run():
    """3 epochs of 10 steps of at least 0.01 s; a 1.6 s hang after the 15th
    batch end with `stall_secs=0.8`."""
    messages = Messages()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    log_dir = run_dir()
    counter = keras_stepcounter.StepCounter(
        every_n_steps=5, output_dir=log_dir, stall_secs=0.8, goodput=True,
        step_time_stats=True,
    )
    model = make_model()

    class Step(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            time.sleep(0.01)

    model.fit(X[:40], Y[:40], batch_size=4, epochs=3, verbose=0, shuffle=False,
              callbacks=[counter, Step(), Hang(hang_at=15, hang=1.6)])
    logger.removeHandler(messages)
    return {
        "records": records(log_dir),
        "warnings": [m for level, m in messages.lines if level == "WARNING"],
    }


def input_run(data):
    """`input_stats=True`: one epoch of 30 steps whose batches each take
    STEP_SLEEP to fetch ("slow": truth above 0.9 on a step of a few ms),
    or of 120 steps on in-memory arrays."""
    log_dir = run_dir()
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=log_dir, input_stats=True, goodput=True
    )
    model = make_model()
    if data == "slow":
        model.fit(SlowBatches(30), epochs=1, verbose=0, callbacks=[counter])
    else:
        model.fit(X[:120], Y[:120], batch_size=1, epochs=1, verbose=0, callbacks=[counter])
    counter.close()
    return {"records": records(log_dir)}


if __name__ == "__main__":
    output = {
        "input_slow": input_run("slow"),
        "input_arrays": input_run("arrays"),
        "backend": backend_checks(),
        "rate_step": rate_run("step"),
        "rate_data": rate_run("data"),
        "stall": stall_run(),
    }
    print("RESULTS " + json.dumps(output))
