"""Real `fit` setups in one Keras backend; prints the results as JSON.

Not a test module: `test_setups.py` runs it in a fresh process per backend
(the backend is fixed when Keras is first imported). Every setup trains a
real model with a real optimizer for 64 batches of 4, with the counter
first in the list between two probes that note the time of each batch
end (the one after it also sleeps 20 ms a batch). From after the counter's
work on one batch to before its work on another is the interval it
measures, known independently of it.
"""

import json
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_stepcounter  # noqa: E402
from keras_stepcounter.tools.events import read_scalars  # noqa: E402

keras = tf.keras
rng = np.random.default_rng(0)
X = rng.random((256, 8), dtype=np.float32)  # 64 batches of 4
Y = rng.random((256, 1), dtype=np.float32)
EVERY = 8
SLEEP = 0.02


class Probe(keras.callbacks.Callback):
    """Notes when each batch's callbacks reach it; sleeps `sleep` after."""

    def __init__(self, sleep=0.0):
        super().__init__()
        self.sleep = sleep
        self.batch_ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_ends.append(time.perf_counter())
        time.sleep(self.sleep)


class Messages(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append([record.levelname, record.getMessage()])


def model(accumulation, spe):
    kwargs = {"gradient_accumulation_steps": accumulation} if accumulation > 1 else {}
    net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    net.compile(
        optimizer=keras.optimizers.SGD(**kwargs), loss="mse", steps_per_execution=spe
    )
    return net


def run(accumulation, spe, mixed, as_list=True):
    log_dir = tempfile.mkdtemp()
    messages = Messages()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(messages)
    logger.setLevel(logging.INFO)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        net = model(accumulation, spe)
        counter = keras_stepcounter.StepCounter(every_n_steps=EVERY, output_dir=log_dir)
        before, probe = Probe(), Probe(SLEEP)
        callbacks = [before, counter, probe] if as_list else counter
        net.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
        counter.close()
    finally:
        keras.mixed_precision.set_global_policy("float32")
        logger.removeHandler(messages)
    records = read_scalars(log_dir).get("global_step/sec", [])
    return {
        "records": [[r.step, r.value] for r in records],
        "before_counter": before.batch_ends,
        "after_counter": probe.batch_ends,
        "messages": messages.lines,
        "final_step": int(np.asarray(net.optimizer.iterations)),
    }


def main():
    results = {"backend": keras.backend.backend()}
    for accumulation in (1, 2):
        for spe in (1, 4):
            for mixed in (False, True):
                results[f"a{accumulation}-spe{spe}-{'mixed' if mixed else 'fp32'}"] = run(
                    accumulation, spe, mixed
                )
    if results["backend"] == "jax":
        results["single_callback"] = run(1, 1, False, as_list=False)
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
