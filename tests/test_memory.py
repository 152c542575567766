"""Memory stays flat: 100,000 records grow the process by under 5 MB.

TF caches every distinct Python scalar it turns into a constant (about 2 KB
each); the sinks never hand it Python numbers. RSS is read from
/proc/self/statm after a warm-up, so one-time growth is not counted: after
a `fit` earlier in the same process, the first ~20,000 `tf.summary` writes
grow RSS by about 15 MB once (the allocator re-touching memory that fit
freed), and then not at all (measured in stretches of 20,000); a cost per
record, which is what this guards against, shows in every stretch.
"""

import logging
import os

import pytest
import tensorflow as tf

import keras_stepcounter
from keras_stepcounter.writer import EventFileSink, SummarySink

RECORDS = 100_000
LIMIT_BYTES = 5_000_000
WARM_UP = 20_000


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def growth_of(write, records=RECORDS, warm_up=WARM_UP):
    """RSS growth over `records` calls of `write(step)`, after a warm-up."""
    for step in range(warm_up):
        write(step)
    before = rss_bytes()
    for step in range(warm_up, warm_up + records):
        write(step)
    return rss_bytes() - before


def test_event_file_sink(tmp_path):
    sink = EventFileSink(str(tmp_path))
    grown = growth_of(lambda step: sink.write(step, {"global_step/sec": step * 0.37}))
    sink.close()
    assert grown < LIMIT_BYTES, grown
    assert os.path.getsize(sink_file(tmp_path)) > RECORDS * 40  # All written.


@pytest.mark.slow
def test_summary_sink(tmp_path):
    sink = SummarySink(tf.summary.create_file_writer(str(tmp_path)))
    grown = growth_of(
        lambda step: sink.write(step, {"global_step/sec": step * 0.37}), warm_up=50_000
    )
    assert grown < LIMIT_BYTES, grown


@pytest.mark.slow
def test_counter_recording_every_step(tmp_path, monkeypatch):
    # The log line of each record is not the counter's memory: at INFO,
    # pytest's log capture would keep all 100,000 of them.
    monkeypatch.setattr(logging.getLogger("tensorflow"), "level", logging.WARNING)
    step = tf.Variable(0, dtype=tf.int64)
    counter = keras_stepcounter.StepCounter(every_n_steps=1, output_dir=str(tmp_path))

    def train_step(_):
        step.assign_add(1)
        counter.step_done()

    with counter.track(step):
        grown = growth_of(train_step)
    assert grown < LIMIT_BYTES, grown
    assert os.path.getsize(sink_file(tmp_path)) > RECORDS * 40


def sink_file(directory):
    (name,) = [n for n in os.listdir(directory) if "tfevents" in n]
    return os.path.join(directory, name)
