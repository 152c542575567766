"""An epoch's short last `steps_per_execution` call, on every Keras.

Keras before 3.6 ends that call with no batch hook at all: the epoch's next
hook is the first the counter hears of it. Its time is still a call of
steps, not epoch-boundary time, so the epoch's `steps_per_sec` and the rate
hold it. Real time: each step sleeps 50 ms inside the compiled step; with
4 batches an epoch in calls of 3 and 1, counting the short call as boundary
would report 26.7 steps/sec where 20 is true (the bound, 23.3, halves the
33% error).
"""

import time

import numpy as np
import tensorflow as tf

import keras_stepcounter

STEP_SECS = 0.05


def _slow_model(keras):
    def slow_identity(x):
        time.sleep(STEP_SECS / 4)  # 4 examples a batch: one sleep each.
        return x

    def slow(t):
        out = tf.numpy_function(slow_identity, [t], tf.float32)
        return tf.ensure_shape(out, t.shape)

    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Lambda(lambda t: tf.map_fn(slow, t), output_shape=(8,)),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
    return model


def test_the_short_last_call_is_steps_in_the_epoch_rate(keras, tmp_path):
    x = np.ones((16, 8), np.float32)  # 4 batches of 4: calls of 3 and 1 steps.
    y = np.ones((16, 1), np.float32)
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
    history = _slow_model(keras).fit(x, y, batch_size=4, epochs=3, verbose=0,
                                     callbacks=[counter])
    # Epochs 2 and 3: 4 steps from the last epoch's end to this one's.
    rates = history.history["steps_per_sec"][1:]
    assert all(10.0 <= rate <= 23.3 for rate in rates), rates
