"""Loss scaling: updates a `LossScaleOptimizer` skips are no steps, and the
counter says so in its own words (not as a second optimizer's fault)."""

import logging

import numpy as np

import keras_stepcounter
from keras_stepcounter.tools.events import read_scalars


def _warnings(tf_log):
    return [m for level, m in tf_log.messages if level == logging.WARNING]


def test_a_run_of_skipped_updates_is_said_to_be_loss_scaling(keras, tmp_path, tf_log):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD())
    model.compile(optimizer=optimizer, loss="mse")
    x = np.ones((80, 8), np.float32)
    y = np.full((80, 1), np.inf, np.float32)  # Non-finite gradients: every update skipped.
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert int(optimizer.iterations.numpy()) == 0
    [ours] = [m for m in _warnings(tf_log) if m.startswith("keras_stepcounter")]
    assert ours.startswith(
        "keras_stepcounter: the global step read from model.optimizer.iterations "
        "(LossScaleOptimizer wrapping SGD) has not moved in 6 batches of this run (still 0), so nothing can be recorded "
        "yet.")
    assert "A LossScaleOptimizer skips the update of every step whose scaled gradients " \
           "overflow" in ours
    assert "another optimizer" not in ours
    assert "global_step/sec" not in read_scalars(str(tmp_path))
