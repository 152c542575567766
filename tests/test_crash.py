"""Crash safety: a process killed with SIGKILL keeps every record it took."""

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import steps_of, values_of

REPO_ROOT = Path(__file__).resolve().parents[1]

# Trains with records every 5 steps (6, 11, 16, ...) and kills itself with
# SIGKILL right after the N-th record: no on_train_end, no atexit, no
# destructor runs. The killing callback comes after the counter, so the
# record of that step has been taken.
TRAIN_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import tensorflow as tf
    import keras_stepcounter

    output_dir, n = sys.argv[1], int(sys.argv[2])
    keras = tf.keras

    class KillAfterNthRecord(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 == 5 * n + 1:
                os.kill(os.getpid(), signal.SIGKILL)

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((400, 8), np.float32)
    y = np.zeros((400, 1), np.float32)
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=output_dir)
    model.fit(x, y, batch_size=4, verbose=0,
              callbacks=[counter, KillAfterNthRecord()])
    print("finished without being killed")
    """
)


def test_sigkill_after_the_nth_record_keeps_all_n_on_disk(tmp_path):
    n = 3
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.run(
        [sys.executable, "-c", TRAIN_AND_DIE, str(tmp_path), str(n)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert steps_of(tmp_path) == [6, 11, 16]
    assert all(math.isfinite(v) and v > 0 for v in values_of(tmp_path))
