"""One process of a two-process Keras 3 job on JAX (CPU, gloo collectives).

Not a test module: `test_distribute.py` starts two of these, as a user's job
would: `jax_multiprocess_script.py PORT PROCESS_ID LOGDIR`. Both processes
join one JAX job on 127.0.0.1:PORT, train with `keras.distribution.DataParallel`
over both processes' CPU devices on a `tf.data` input of global batch 8 (Keras
gives each process its half), and pass the same counter and the same LOGDIR.

Process 1 hangs for `HANG_SECS` in a callback (`hang_in_user_code`) after
batch `HANG_AFTER_BATCH`: the straggler. Process 0 then waits for it in the
next step's collective, so both watchdogs see a stall.
"""

import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 30
STALL_SECS = 1.0
HANG_SECS = 3.0  # Three times the threshold: warned however loaded the machine.
HANG_AFTER_BATCH = 14  # The 15th step; records are at 11 and 21.


def join_job(port, process_id):
    jax.config.update("jax_platforms", "cpu")
    # Gloo: CPU collectives across processes. Named rather than left to the
    # JAX version's default.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )


def hang_in_user_code(seconds):
    time.sleep(seconds)


def main(port, process_id, log_dir):
    join_job(port, int(process_id))
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_stepcounter

    class Straggler(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == HANG_AFTER_BATCH:
                hang_in_user_code(HANG_SECS)

    tf.get_logger().setLevel("INFO")  # So the writer's rate lines show.
    keras.utils.set_random_seed(0)  # The same initial weights in each process.
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    rng = np.random.default_rng(0)
    x = rng.random((GLOBAL_BATCH * STEPS, 8), dtype=np.float32)
    y = rng.random((GLOBAL_BATCH * STEPS, 1), dtype=np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=log_dir, batch_size=GLOBAL_BATCH,
        stall_secs=STALL_SECS, time_to_first_step=True, goodput=True,
    )
    callbacks = [counter] + ([Straggler()] if jax.process_index() == 1 else [])
    history = model.fit(dataset, epochs=1, verbose=0, callbacks=callbacks)
    counter.close()
    print("RESULTS " + json.dumps({
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "pid": os.getpid(),
        "iterations": int(model.optimizer.iterations),
        "epoch_logs": sorted(history.history),
    }), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
