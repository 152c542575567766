"""A custom training loop (Python loop around a tf.function step) with StepCounter.

    python3 examples/custom_loop.py [--logdir logs/custom_loop] [--epochs 3]

The loop is the one from the Keras guide "Writing a training loop from
scratch": an uncompiled model, its own optimizer, a `tf.function` train
step. Three lines (marked) add steps/sec: the counter, the `track` block
that reads the global step from `optimizer.iterations`, and `step_done()`.
Writes `global_step/sec` to a new run directory under LOGDIR and prints the
recorded rates.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_stepcounter  # noqa: E402
from keras_stepcounter.tools.events import read_scalars  # noqa: E402

keras = tf.keras


def make_dataset(n=8192, features=32, batch_size=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    centers = np.where(labels[:, None] == 1, 0.5, -0.5)
    x = (centers + rng.normal(size=(n, features))).astype("float32")
    y = labels.astype("float32")[:, None]
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=seed).batch(batch_size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=os.path.join("logs", "custom_loop"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    train_dir = os.path.join(args.logdir, time.strftime("run-%Y%m%d-%H%M%S"), "train")

    dataset = make_dataset()
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.BinaryCrossentropy()

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return loss

    counter = keras_stepcounter.StepCounter(every_n_steps=100, output_dir=train_dir)  # added
    with counter.track(optimizer.iterations):  # added
        for epoch in range(args.epochs):
            for x, y in dataset:
                loss = train_step(x, y)
                counter.step_done()  # added
            print(f"epoch {epoch}: loss {float(loss):.4f}")

    records = read_scalars(train_dir).get("global_step/sec", [])
    print(f"\nRecorded {len(records)} rates of global_step/sec in {train_dir}:")
    for record in records:
        print(f"  step {record.step:6d}: {record.value:9.1f} steps/sec")
    print(f"\nView them in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
