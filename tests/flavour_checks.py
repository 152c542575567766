"""StepCounter checks in one Keras flavour; prints the results as JSON.

Not a test module: `test_flavours.py` runs it in a fresh process per flavour
(Keras 3 on TensorFlow, tf_keras via `TF_USE_LEGACY_KERAS=1`, Keras 3 on
JAX via `KERAS_BACKEND=jax`), since the flavour is fixed when Keras is
first imported. On TensorFlow it also trains under a `MirroredStrategy` over
two logical CPU devices, which must be configured before TensorFlow starts.
"""

import json
import logging
import os
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ON_TENSORFLOW = os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
TF_KERAS = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
if ON_TENSORFLOW:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )

import keras_stepcounter  # noqa: E402
from keras_stepcounter.callback import _counters_use_clock  # noqa: E402
from keras_stepcounter.tools.events import read_scalars  # noqa: E402


def counter_on(clock, **kwargs):
    with _counters_use_clock(clock):
        return keras_stepcounter.StepCounter(**kwargs)

keras = tf.keras
rng = np.random.default_rng(0)
X = rng.random((120, 8), dtype=np.float32)  # 30 batches of 4
Y = rng.random((120, 1), dtype=np.float32)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Ticker(keras.callbacks.Callback):
    """Each batch takes 0.125 fake seconds (placed before the counter)."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_train_batch_end(self, batch, logs=None):
        self.clock.now += 0.125


class CountingModel(keras.Model):
    """Adds the replica's batch size to the batch logs as `examples`."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        logs = dict(super().train_step(data))
        logs["examples"] = tf.cast(tf.shape(data[0])[0], tf.float32)
        return logs


class EpochTail(keras.callbacks.Callback):
    """Real time, listed after the counter: `per_batch` seconds at each
    batch's begin (inside the step), and `tail` seconds after the end of
    each epoch's last batch (batch index `last_batch`). The tail is time
    after the epoch's last batch end: a pause for every instrument. Were it
    counted, the record spanning the epoch end would read its 5 steps over
    `tail` seconds more, a quarter of its neighbours."""

    def __init__(self, last_batch, per_batch=0.02, tail=0.3):
        super().__init__()
        self.last_batch, self.per_batch, self.tail = last_batch, per_batch, tail

    def on_train_batch_begin(self, batch, logs=None):
        time.sleep(self.per_batch)

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.last_batch:
            time.sleep(self.tail)


def make_model(steps_per_execution=1):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=steps_per_execution)
    return model


def fit(model, callbacks, x=X, y=Y, batch_size=4):
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
              callbacks=callbacks)


def records(log_dir):
    return {tag: [[r.step, r.value] for r in rs]
            for tag, rs in read_scalars(log_dir).items()}


def run_dir():
    return tempfile.mkdtemp(dir=sys.argv[1])


def flavour_checks():
    results = {
        "backend": keras.backend.backend(),
        "callback_base": keras_stepcounter.StepCounter.__mro__[1].__module__,
        "is_tf_keras_callback": issubclass(
            keras_stepcounter.StepCounter, keras.callbacks.Callback
        ),
    }
    log_dir = run_dir()
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=log_dir)
    fit(make_model(), [counter])
    results["every_10"] = records(log_dir)
    # Whether Keras would run on_train_batch_end in its thread pool (JAX
    # only): never with the counter, always with no callback.
    callbacks = keras.callbacks.CallbackList
    results["async_with_counter"] = getattr(callbacks([counter]), "_async_train", None)
    results["async_without"] = getattr(callbacks([]), "_async_train", None)

    log_dir = run_dir()
    fit(make_model(steps_per_execution=5),
        [keras_stepcounter.StepCounter(every_n_steps=10, output_dir=log_dir)])
    results["every_10_spe_5"] = records(log_dir)

    # Two epochs of 15 steps: the reads at steps 11 and 21 fall mid-epoch
    # (on JAX, before the state is written back to the variables).
    log_dir, clock = run_dir(), FakeClock()
    counter = counter_on(clock, every_n_steps=10, output_dir=log_dir, batch_size=4,
        flops_per_step=1e6, peak_flops_per_sec=1e8, time_to_first_step=True,
    )
    model = make_model()
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[Ticker(clock), counter])
    results["fake_clock_extras"] = records(log_dir)
    results["steps_per_sec_epoch_logs"] = model.history.history.get("steps_per_sec")
    return results


def epoch_end_checks():
    """Three epochs of 10 batches with real time, records every 5 steps:
    the records at 11 and 21 span an epoch end (6 -> 11, 16 -> 21)."""
    results = {}
    for name, validation in (("plain", None), ("validation", (X[:8], Y[:8]))):
        log_dir = run_dir()
        counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=log_dir, goodput=True)
        model = make_model()
        model.fit(X[:40], Y[:40], batch_size=4, epochs=3, verbose=0, shuffle=False,
                  validation_data=validation, callbacks=[counter, EpochTail(last_batch=9)])
        results[name] = {
            "records": records(log_dir),
            "steps_per_sec": model.history.history.get("steps_per_sec"),
        }
    return results


def accumulation_checks():
    """Keras 3's `gradient_accumulation_steps=2`, a fake clock (0.125 s a
    batch), `batch_size=4`: 2 epochs of 12 batches, 6 applied updates each."""
    log_dir, clock = run_dir(), FakeClock()
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(gradient_accumulation_steps=2), loss="mse")
    counter = counter_on(clock, every_n_steps=3, output_dir=log_dir, batch_size=4)
    model.fit(X[:48], Y[:48], batch_size=4, epochs=2, verbose=0, shuffle=False,
              callbacks=[Ticker(clock), counter])
    return {
        "records": records(log_dir),
        "iterations_after": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "steps_per_sec": model.history.history.get("steps_per_sec"),
    }


class Messages(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append([record.levelname, record.getMessage()])


class HangThenRaise(keras.callbacks.Callback):
    """Real time, after the counter: `hang` seconds after the end of the
    fit's `hang_at`th batch; `error` raised at the end of its `raise_at`th."""

    def __init__(self, hang_at=None, hang=0.0, raise_at=None, error=None):
        super().__init__()
        self.hang_at, self.hang, self.raise_at, self.error = hang_at, hang, raise_at, error
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        time.sleep(0.01)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == self.hang_at:
            time.sleep(self.hang)
        if self.batches == self.raise_at:
            raise self.error("raised from a callback")


def watchdog_threads():
    return [t for t in threading.enumerate() if t.name == "keras_stepcounter-stall-watchdog"]


def stall_checks():
    """One counter, one model: a fit of 3 epochs of 10 steps with a 1.6 s
    hang after batch 15 (a stall: 0.8 s without a step end); then a fit interrupted (KeyboardInterrupt) at its
    5th batch, 1 s of an idle interpreter, and a last fit of 10 steps."""
    messages = Messages()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    log_dir, results = run_dir(), {}
    counter = keras_stepcounter.StepCounter(
        every_n_steps=5, output_dir=log_dir, stall_secs=0.8, goodput=True,
        step_time_stats=True,
    )
    model = make_model()
    model.fit(X[:40], Y[:40], batch_size=4, epochs=3, verbose=0, shuffle=False,
              validation_data=(X[:8], Y[:8]),
              callbacks=[counter, HangThenRaise(hang_at=15, hang=1.6)])
    results["hang"] = records(log_dir)
    results["hang_warnings"] = [m for level, m in messages.lines if level == "WARNING"]
    try:
        model.fit(X[:40], Y[:40], batch_size=4, epochs=1, verbose=0,
                  callbacks=[counter, HangThenRaise(raise_at=5, error=KeyboardInterrupt)])
        results["interrupted"] = False
    except KeyboardInterrupt:
        results["interrupted"] = True
    start = time.perf_counter()
    while watchdog_threads() and time.perf_counter() - start < 3:
        time.sleep(0.01)
    results["thread_gone_secs"] = time.perf_counter() - start
    idle_from = len(messages.lines)
    time.sleep(1.0)
    results["idle_lines"] = messages.lines[idle_from:]
    model.fit(X[:40], Y[:40], batch_size=4, epochs=1, verbose=0, callbacks=[counter])
    results["last_fit"] = records(log_dir)
    results["threads_at_end"] = len(watchdog_threads())
    logger.removeHandler(messages)
    return results


def mirrored_checks():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": strategy.num_replicas_in_sync}
    with strategy.scope():
        model = CountingModel()
        model.compile(optimizer="sgd", loss="mse")
    # Global batch 8 (4 per replica): 15 steps per epoch.
    log_dir, clock = run_dir(), FakeClock()
    counter = counter_on(clock, every_n_steps=10, output_dir=log_dir, batch_size=8
    )
    fit(model, [Ticker(clock), counter], batch_size=8)
    results["batch_size"] = records(log_dir)
    results["iterations_after"] = int(model.optimizer.iterations.numpy())

    # The README's recipe: per-batch logs are the replicas' mean in Keras 3
    # and their sum in tf_keras, so Keras 3 scales by the replica count.
    scale = 1 if TF_KERAS else strategy.num_replicas_in_sync
    per_batch_logs = []

    def count_fn(logs):
        per_batch_logs.append(logs["examples"])
        return logs["examples"] * scale

    log_dir, clock = run_dir(), FakeClock()
    counter = counter_on(clock, every_n_steps=5, output_dir=log_dir, count_fn=count_fn
    )
    fit(model, [Ticker(clock), counter], batch_size=8)
    results["count_fn"] = records(log_dir)
    results["logged_examples"] = per_batch_logs[:3]
    return results


if __name__ == "__main__":
    output = {"flavour": flavour_checks(), "epoch_end": epoch_end_checks(),
              "stalls": stall_checks()}
    if not TF_KERAS:  # tf_keras optimizers have no gradient accumulation.
        output["accumulation"] = accumulation_checks()
    if ON_TENSORFLOW:
        output["mirrored"] = mirrored_checks()
    print("RESULTS " + json.dumps(output))
