"""A graph-mode MonitoredTrainingSession loop with compat.v1.StepCounterHook.

    python3 examples/monitored_session.py [--logdir logs/monitored_session]
        [--steps 2000] [--every-n-steps 200]

TF1-style code running on TensorFlow 2: a linear regression built in a
`tf.Graph`, trained with `tf.compat.v1.train.MonitoredTrainingSession`.
The only line that changed from TF1 is the hook's import. It writes
`global_step/sec` to LOGDIR, logs `global_step/sec: <value>` lines, prints
the recorded rates and says how to open TensorBoard.
"""

import argparse
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# TF1: from tensorflow.train import StepCounterHook
from keras_stepcounter.compat.v1 import global_step_read  # noqa: E402
from keras_stepcounter.compat.v1.train import StepCounterHook  # noqa: E402
from keras_stepcounter.tools.events import read_scalars  # noqa: E402


def build_graph(features=16, batch_size=64, learning_rate=0.05):
    """A linear regression on random data; returns (train_op, loss)."""
    global_step = tf.compat.v1.train.get_or_create_global_step()
    true_weights = tf.constant([[float(i % 5) - 2.0] for i in range(features)])
    # As Estimator did: the step runs after the read the hook fetches, so
    # the hook always sees the step from before this run.
    with tf.control_dependencies([global_step_read()]):
        x = tf.random.normal([batch_size, features])
        y = tf.matmul(x, true_weights)
        weights = tf.compat.v1.get_variable("weights", [features, 1])
        loss = tf.reduce_mean(tf.square(tf.matmul(x, weights) - y))
        optimizer = tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
        return optimizer.minimize(loss, global_step=global_step), loss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=os.path.join("logs", "monitored_session"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every-n-steps", type=int, default=200)
    args = parser.parse_args()
    # TF1 printed INFO by default; show the hook's log lines.
    logging.getLogger("tensorflow").setLevel(logging.INFO)

    with tf.Graph().as_default():
        train_op, loss = build_graph()
        hooks = [
            StepCounterHook(every_n_steps=args.every_n_steps, output_dir=args.logdir),
            tf.compat.v1.train.StopAtStepHook(last_step=args.steps),
        ]
        # No checkpoint_dir, so TensorFlow adds no StepCounterHook of its own.
        with tf.compat.v1.train.MonitoredTrainingSession(hooks=hooks) as session:
            while not session.should_stop():
                _, last_loss = session.run([train_op, loss])
    print(f"final loss: {last_loss:.4g}")

    records = read_scalars(args.logdir).get("global_step/sec", [])
    print(f"\nRecorded {len(records)} rates of global_step/sec in {args.logdir}:")
    for record in records:
        print(f"  step {record.step:6d}: {record.value:9.1f} steps/sec")
    print(f"\nView them in TensorBoard:\n  tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
