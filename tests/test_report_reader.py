"""The report's event reader: records framed and CRC-checked with numpy, the
counter's fixed scalar layout decoded many at a time, everything else
parsed with the protobuf parser; checked against TensorBoard's own
pure-Python reader on the same files.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

from keras_stepcounter.tools import events
from keras_stepcounter.tools.record_frames import frame_records, masked_crc32c
from keras_stepcounter.writer.event_records import file_version_record, scalar_record


def reference(path):
    """(tag, step, value, wall) of every scalar, by TensorBoard's reader."""
    reader = pywrap_tensorflow.PyRecordReader_New(str(path), 0, None, None)
    found = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return found
        event = event_pb2.Event.FromString(reader.record())
        found += [(tag, r.step, r.value, r.wall_time)
                  for tag, r in events._scalars_of(event)]


def ours(path):
    read = events.read_event_file(str(path))
    assert read.problem is None, read.problem
    return [(tag, r.step, r.value, r.wall_time) for tag, r in read.scalars]


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[:2] == y[:2] and x[3] == y[3]
        assert (math.isnan(x[2]) and math.isnan(y[2])) or x[2] == y[2], (x, y)


def write_counter_layout(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(file_version_record(1.0))
        for wall, step, tag, value in records:
            writer.write(scalar_record(wall, step, tag, value))


def test_masked_crc32c_is_tensorflows():
    rng = np.random.default_rng(0)
    for length in (0, 1, 8, 77):
        rows = rng.integers(0, 256, (length, 5), dtype=np.uint8)
        expected = [pywrap_tensorflow.masked_crc32c(rows[:, i].tobytes())
                    for i in range(5)]
        assert masked_crc32c(rows).tolist() == expected


def test_the_counters_layout_is_read_as_tensorboard_reads_it(tmp_path):
    tags = ["global_step/sec", "step_time/p10", "step_time/p50", "step_time/p90",
            "examples/sec", "baseline_step"]
    steps = [0, 1, 127, 128, 16_383, 16_384, 2**31 + 5, 2**40]
    values = [1.5, 0.0, -2.0, math.nan, math.inf, 3.4e38, 1e-30, 7.25]
    records = [(1000.0 + i, step, tags[i % len(tags)], values[i % len(values)])
               for i, step in enumerate(steps * 5)]
    path = tmp_path / "events.out.tfevents.1.h.1.0.stepcounter.v2"
    write_counter_layout(path, records)
    same(ours(path), reference(path))
    assert len(ours(path)) == len(records)


def test_tf_summary_v1_and_v2_files_are_read_as_tensorboard_reads_them(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "v2"))
    with writer.as_default():
        for step in range(0, 300, 7):
            tf.summary.scalar("loss", step / 3, step=step)
            tf.summary.scalar("global_step/sec", 10.0 + step, step=step)
            tf.summary.text("note", "hello", step=step)  # Not a scalar.
            tf.summary.histogram("w", [1.0, 2.0], step=step)
    writer.close()
    with tf.Graph().as_default():
        v1 = tf.compat.v1.summary.FileWriter(str(tmp_path / "v1"))
        for step in range(0, 50, 5):
            v1.add_summary(tf.compat.v1.Summary(value=[
                tf.compat.v1.Summary.Value(tag="a/sec", simple_value=step / 2),
                tf.compat.v1.Summary.Value(tag="b/sec", simple_value=step * 2),
            ]), step)
        v1.close()
    for run in ("v2", "v1"):
        [path] = events.event_files(str(tmp_path / run))
        found = ours(path)
        same(found, reference(path))
        assert found


@pytest.mark.parametrize("where", ["length", "length crc", "data", "data crc"])
def test_a_damaged_record_among_many_stops_the_read_there(tmp_path, where):
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    write_counter_layout(path, [(float(i), i + 1, "global_step/sec", 5.0)
                                for i in range(3000)])
    data = bytearray(Path(path).read_bytes())
    frames = frame_records(bytes(data))
    record = 2222  # The 2223rd record (the header is the first).
    start = int(frames.starts[record]) - 12
    offset = {"length": 0, "length crc": 9, "data": 12 + 20,
              "data crc": 12 + int(frames.lengths[record]) + 1}[where]
    data[start + offset] ^= 0x10
    Path(path).write_bytes(bytes(data))
    read = events.read_event_file(str(path))
    assert read.problem == (
        "damaged (a record failed its CRC check), the rest of it not read"
    )
    assert read.events_read == record
    # The header, then the scalars at steps 1 to 2221.
    assert [r.step for _, r in read.scalars] == list(range(1, record))


# Read whole, and a block at a time (blocks that cut records everywhere).
@pytest.mark.parametrize("block", [None, 1, 64, 1000])
@pytest.mark.parametrize("keep", [5, 12 + 3])  # Inside the header; the data.
def test_a_record_cut_short_is_truncated_and_the_rest_read(tmp_path, monkeypatch, keep, block):
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    write_counter_layout(path, [(float(i), i + 1, "global_step/sec", 5.0)
                                for i in range(100)])
    data = Path(path).read_bytes()
    last = int(frame_records(data).starts[-1]) - 12
    path.write_bytes(data[:last + keep])
    if block is not None:
        monkeypatch.setattr(events, "_BLOCK", block)
    read = events.read_event_file(str(path))
    assert read.problem.startswith("truncated")
    assert read.events_read == 100  # The header and 99 scalars.
    assert [r.step for _, r in read.scalars] == list(range(1, 100))


def test_a_record_that_is_no_event_is_named(tmp_path):
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(file_version_record(1.0))
        writer.write(scalar_record(2.0, 5, "global_step/sec", 4.0))
        writer.write(b"\xff\xff\xff")  # CRCs right, not a protobuf message.
        writer.write(scalar_record(3.0, 10, "global_step/sec", 4.0))
    read = events.read_event_file(str(path))
    assert read.problem == "record 3 is not an Event (damaged)"
    assert [r.step for _, r in read.scalars] == [5]
