"""Re-run steps: what reading a directory's earlier records costs a `fit`.

With `goodput=True`, a `fit` that starts above step 0 reads the highest
step of the counter's own earlier records in `output_dir`, once per
counter, before its first step. The directory may also hold another tool's
event files (Keras's `TensorBoard` callback writes histograms, a user's
`tf.summary` writer anything), which can be large. The counter opens only
its own files (named `*.stepcounter.v2`); this measures that read in a
directory with a large foreign event file beside one of the counter's, and
what reading every file would cost instead.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import List

from benchmarks._common import Row, Settings, median, spread


def run(settings: Settings) -> List[Row]:
    import numpy as np
    import tensorflow as tf

    import keras_stepcounter
    from keras_stepcounter.tools.events import read_scalars
    from keras_stepcounter.writer.event_file import highest_own_step

    blobs = 50 if settings.quick else 200  # 100 KB each.
    with tempfile.TemporaryDirectory() as log_dir:
        foreign = tf.summary.create_file_writer(log_dir)
        with foreign.as_default():
            weights = tf.constant(np.random.default_rng(0).normal(size=25_000), tf.float32)
            for step in range(blobs):
                tf.summary.write("weights", weights, step=step)
                tf.summary.scalar("loss", 1.0, step=step)
        foreign.close()
        step = tf.Variable(0, dtype=tf.int64)
        counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=log_dir)
        with counter.track(step):
            for _ in range(1000):
                step.assign_add(1)
                counter.step_done()
        counter.close()
        foreign_mb = sum(
            os.path.getsize(os.path.join(log_dir, name))
            for name in os.listdir(log_dir) if not name.endswith(".stepcounter.v2")
        ) / 1e6

        own, every_file = [], []
        for _ in range(max(3, settings.rounds)):
            began = time.perf_counter()
            highest = highest_own_step(log_dir)
            own.append(time.perf_counter() - began)
            began = time.perf_counter()
            read_scalars(log_dir)
            every_file.append(time.perf_counter() - began)
    assert highest == 991, highest  # The last record: 1 + 99 x 10.
    return [
        Row(
            name="re-run steps: reading the counter's own records before a restored fit",
            measured=f"{spread([t * 1e3 for t in own], '{:.1f}')} ms "
                     f"(99 records, beside a {foreign_mb:.0f} MB foreign event file)",
            compared_with=f"reading every event file: {median(every_file) * 1e3:.0f} ms",
            result=f"{median(every_file) / median(own):.0f}x less",
            target="once per counter, never per batch; small next to a first step",
            verdict="reference",
        )
    ]
