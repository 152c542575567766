"""The whole training loop inside one tf.function, with GraphStepCounter.

    python3 examples/graph_loop.py [--logdir logs/graph_loop] [--epochs 3]

Each epoch is one call of a `tf.function` that iterates over the dataset
(an autograph `for`), trains, and calls the counter with
`optimizer.iterations`: no Python runs between steps, and the counter adds
none. Writes `global_step/sec` and `examples/sec` to a new run directory
under LOGDIR and prints the recorded rates.
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
BATCH_SIZE = 32


def make_dataset(n=8192, features=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    centers = np.where(labels[:, None] == 1, 0.5, -0.5)
    x = (centers + rng.normal(size=(n, features))).astype("float32")
    y = labels.astype("float32")[:, None]
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=seed).batch(BATCH_SIZE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=os.path.join("logs", "graph_loop"))
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
    optimizer.build(model.trainable_variables)  # Variables before tracing.
    loss_fn = keras.losses.BinaryCrossentropy()

    counter = keras_stepcounter.GraphStepCounter(
        every_n_steps=100, output_dir=train_dir, batch_size=BATCH_SIZE
    )

    @tf.function
    def train_epoch(dataset):
        loss = tf.constant(0.0)
        for x, y in dataset:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            counter(optimizer.iterations)
        return loss

    for epoch in range(args.epochs):
        loss = train_epoch(dataset)
        print(f"epoch {epoch}: loss {float(loss):.4f}")
    counter.close()

    records = read_scalars(train_dir).get("global_step/sec", [])
    print(f"\nRecorded {len(records)} rates of global_step/sec in {train_dir}:")
    for record in records:
        print(f"  step {record.step:6d}: {record.value:9.1f} steps/sec")
    print(f"\nView them in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
