"""One worker of a two-worker MultiWorkerMirroredStrategy training.

Not a test module: `test_distribute.py` starts two of these with `TF_CONFIG`
set, as a user's job would. Usage: `multiworker_script.py fit|loop LOGDIR`.

* `fit`: tf_keras `model.fit` (run with `TF_USE_LEGACY_KERAS=1`; Keras 3's
  `fit` does not run under this strategy).
* `loop`: a custom `strategy.run` loop with Keras 3 layers and optimizer,
  driven by `StepCounter.track` / `step_done`, outside `strategy.scope()`.

Both workers pass the same LOGDIR; only the chief may write there.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_stepcounter  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 30


def dataset():
    rng = np.random.default_rng(0)
    x = rng.random((GLOBAL_BATCH * STEPS, 8), dtype=np.float32)
    y = rng.random((GLOBAL_BATCH * STEPS, 1), dtype=np.float32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)


def counter(log_dir):
    return keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=log_dir, batch_size=GLOBAL_BATCH
    )


def train_with_fit(strategy, log_dir):
    keras = tf.keras
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    history = model.fit(dataset(), epochs=1, verbose=0, callbacks=[counter(log_dir)])
    return int(model.optimizer.iterations.numpy()), history.history


def train_with_loop(strategy, log_dir):
    import keras

    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD()
        optimizer.build(model.trainable_variables)
    batches = strategy.experimental_distribute_dataset(dataset())

    @tf.function
    def train_step(batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                per_example = keras.losses.mean_squared_error(y, model(x))
                loss = tf.reduce_sum(per_example) / GLOBAL_BATCH
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

        strategy.run(replica_step, args=batch)

    step_counter = counter(log_dir)
    with step_counter.track(optimizer.iterations):
        for batch in batches:
            train_step(batch)
            step_counter.step_done()
    return int(optimizer.iterations.numpy()), {}


def main(mode, log_dir):
    tf.get_logger().setLevel("INFO")  # So the chief's log lines show.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    train = train_with_fit if mode == "fit" else train_with_loop
    iterations, history = train(strategy, log_dir)
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    print("RESULTS " + json.dumps({
        "task_index": task["index"],
        "pid": os.getpid(),
        "iterations": iterations,
        "epoch_logs": sorted(history),
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
