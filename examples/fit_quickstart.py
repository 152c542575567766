"""Train a small Keras model with StepCounter and show what it recorded.

    python3 examples/fit_quickstart.py [--logdir logs/quickstart] [--epochs 3]
                                       [--hang SECONDS]

Makes its own data (two Gaussian blobs), trains for a few seconds, writes
`global_step/sec`, step-time percentiles and the goodput ledger (and the
Keras TensorBoard callback's loss) to a new run directory under LOGDIR,
prints the recorded rates and their summary (the report of
`python -m keras_stepcounter report`), and says how to open TensorBoard.
`--hang 3` makes one batch hang for 3 s, to show the stall watchdog
(`stall_secs=1`) at work.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_stepcounter  # noqa: E402
from keras_stepcounter.tools.events import read_scalars  # noqa: E402
from keras_stepcounter.tools.report import print_report  # noqa: E402

keras = tf.keras


def make_data(n=8192, features=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    centers = np.where(labels[:, None] == 1, 0.5, -0.5)
    x = (centers + rng.normal(size=(n, features))).astype("float32")
    return x, labels.astype("float32")


class HangOnce(keras.callbacks.Callback):
    """Makes the 150th batch hang, as a stuck input pipeline would."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.batches = seconds, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches == 150:
            wait_for_input(self.seconds)


def wait_for_input(seconds):
    time.sleep(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=os.path.join("logs", "quickstart"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hang", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()

    x, y = make_data()
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

    run_dir = os.path.join(args.logdir, time.strftime("run-%Y%m%d-%H%M%S"))
    train_dir = os.path.join(run_dir, "train")
    counter = keras_stepcounter.StepCounter(
        every_n_steps=100, output_dir=train_dir, batch_size=32,
        step_time_stats=True, goodput=True, stall_secs=1.0 if args.hang else "auto",
    )
    # Keras's own TensorBoard callback writes the loss to the same run, so
    # steps/sec sits beside it in TensorBoard.
    tensorboard = keras.callbacks.TensorBoard(log_dir=run_dir)
    model.fit(
        x, y, batch_size=32, epochs=args.epochs, validation_split=0.1,
        callbacks=[counter, tensorboard] + ([HangOnce(args.hang)] if args.hang else []),
        verbose=2,
    )
    counter.close()

    records = read_scalars(train_dir).get("global_step/sec", [])
    print(f"\nRecorded {len(records)} rates of global_step/sec in {train_dir}:")
    for record in records:
        print(f"  step {record.step:6d}: {record.value:9.1f} steps/sec")
    print(f"\nSummary (python -m keras_stepcounter report {run_dir}):")
    print_report(run_dir)
    print(f"\nView them in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
