"""Re-run steps: what finding the run being resumed costs a `fit`.

With `goodput=True`, each run's start asks its sink how many steps it
computes again (`EventFileSink.begin_run`): one read of the directory's
lineage index (a file under 100 bytes) and one save of it (a temporary
file renamed). The directory may also hold another tool's event files
(Keras's `TensorBoard` callback writes histograms, a user's `tf.summary`
writer anything), which can be large, and the counter's own files of
earlier runs. This measures `begin_run` in a directory with a 20 MB
foreign event file and a 1,000-step run of the counter's, against what
the reads it replaces cost: the counter's own event files (before the
index) and every event file.
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

    from keras_stepcounter.tools.events import event_files, read_event_file, read_scalars
    from keras_stepcounter.writer import EventFileSink
    from keras_stepcounter.writer.event_file import FILE_SUFFIX

    blobs = 50 if settings.quick else 200  # 100 KB each.
    with tempfile.TemporaryDirectory() as log_dir:
        foreign = tf.summary.create_file_writer(log_dir)
        with foreign.as_default():
            weights = tf.constant(np.random.default_rng(0).normal(size=25_000), tf.float32)
            for step in range(blobs):
                tf.summary.write("weights", weights, step=step)
                tf.summary.scalar("loss", 1.0, step=step)
        foreign.close()
        sink = EventFileSink(log_dir)
        sink.begin_run(0)
        for step in range(1, 1001):
            if step % 10 == 1:
                sink.write(step, {"global_step/sec": 1.0})
        sink.reached(1000)
        sink.close()
        foreign_mb = sum(
            os.path.getsize(os.path.join(log_dir, name))
            for name in os.listdir(log_dir) if "tfevents" in name and FILE_SUFFIX not in name
        ) / 1e6

        index, own, every_file = [], [], []
        for _ in range(max(3, settings.rounds)):
            restored = EventFileSink(log_dir)
            began = time.perf_counter()
            rerun = restored.begin_run(800)
            index.append(time.perf_counter() - began)
            restored.reached(1000)  # The next round resumes the same run.
            began = time.perf_counter()
            for path in event_files(log_dir):
                if path.endswith(FILE_SUFFIX):
                    read_event_file(path)
            own.append(time.perf_counter() - began)
            began = time.perf_counter()
            read_scalars(log_dir)
            every_file.append(time.perf_counter() - began)
    assert rerun == 200, rerun
    return [
        Row(
            name="re-run steps: `begin_run` before a restored fit (lineage index read and saved)",
            measured=f"{spread([t * 1e3 for t in index], '{:.2f}')} ms "
                     f"(beside a {foreign_mb:.0f} MB foreign event file and 100 records)",
            compared_with=f"reading the counter's own event files: {median(own) * 1e3:.1f} ms; "
                          f"every event file: {median(every_file) * 1e3:.0f} ms",
            result=f"{median(own) / median(index):.0f}x and "
                   f"{median(every_file) / median(index):.0f}x less; the same whatever "
                   "the directory's history",
            target="once per run, never per batch; small next to a first step",
            verdict="reference",
        )
    ]
