"""An epoch's short last `steps_per_execution` call, on every Keras.

Keras before 3.7 on TensorFlow ends that call with no batch hook at all:
the epoch's next hook is the first the counter hears of it. Its time is
still a call of steps, not epoch-boundary time, so the epoch's
`steps_per_sec` and the rate hold it. Real time: each step sleeps 50 ms
inside the compiled step, one sleep a batch (one per example, through
`tf.map_fn`, ran up to four at once and made the truth itself vary); with 4
batches an epoch in calls of 3 and 1, counting the short call as boundary
would report 4 steps over 3 sleeps, 26.7 steps/sec, where at most 20 is
true (the bound, 7/24 of the steps over a sleep, halves the 33% error);
and the rate is at least the steps over the epoch's wall time.

Those Keras versions also advance `optimizer.iterations` once more than the
batches that short call runs (5 updates an epoch here, on Keras 3.5): the
counter follows the optimizer's count and says so once.
"""

import time

import numpy as np
import tensorflow as tf

import keras_stepcounter

STEP_SECS = 0.05


def _slow_model(keras):
    def slow_identity(x):
        time.sleep(STEP_SECS)
        return x

    def slow(t):
        out = tf.numpy_function(slow_identity, [t], tf.float32)
        return tf.ensure_shape(out, t.shape)

    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Lambda(slow, output_shape=(8,)),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
    return model


class _UpdatesAtEpochEnds:
    """The optimizer's count at each epoch end (the steps the counter
    reads) and each epoch's wall time from its begin hook to its end hook.
    Listed after the counter, whose epoch's steps run inside that time."""

    def __init__(self, keras):
        self.callback = keras.callbacks.LambdaCallback(
            on_epoch_begin=self._epoch_begin, on_epoch_end=self._epoch_end)
        self.counts = []
        self.epoch_secs = []
        self._began = 0.0

    def _epoch_begin(self, epoch, logs=None):
        self._began = time.perf_counter()

    def _epoch_end(self, epoch, logs=None):
        self.epoch_secs.append(time.perf_counter() - self._began)
        self.counts.append(int(np.asarray(self.callback.model.optimizer.iterations)))


def test_the_short_last_call_is_steps_in_the_epoch_rate(keras, tmp_path, tf_log):
    x = np.ones((16, 8), np.float32)  # 4 batches of 4: calls of 3 and 1 steps.
    y = np.ones((16, 1), np.float32)
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
    updates = _UpdatesAtEpochEnds(keras)
    history = _slow_model(keras).fit(x, y, batch_size=4, epochs=3, verbose=0,
                                     callbacks=[counter, updates.callback])
    # Epochs 2 and 3: the optimizer's updates from the last epoch's end to
    # this one's over at least 4 sleeps, never over 3 (the short call as
    # boundary), and over no more than the epoch's wall time (which a
    # loaded machine stretches well past 4 sleeps: 0.4-0.6 s seen).
    # Keras before 3.7 on TensorFlow counts 5 updates an epoch here: warned.
    steps = np.diff(updates.counts)
    rates = history.history["steps_per_sec"][1:]
    for rate, epoch_steps, epoch_secs in zip(rates, steps, updates.epoch_secs[1:]):
        assert epoch_steps / epoch_secs <= rate <= epoch_steps * 7 / 24 / STEP_SECS, (
            rates, steps, updates.epoch_secs)
    warned = [m for _, m in tf_log.messages if "advanced 2 over the epoch's last 1 batches:" in m]
    assert len(warned) == (1 if steps[0] == 5 else 0), (steps, tf_log.messages)
    if steps[0] != 4:
        version = tuple(int(part) for part in keras.__version__.split(".")[:2])
        assert version < (3, 7), steps  # Newer Keras counts batches.
