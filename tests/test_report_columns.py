"""The report's records as columns (issue 28, a million records in 200 MB):
an event file read a block at a time into a `ScalarTable`, runs split
from the table with numpy, and each tag's records as `ScalarColumns`.

Every check is against known truth: the records written, TensorBoard's own
reader, or the one-record-at-a-time rules the vectorised code replaced
(kept here as the reference).
"""

import heapq
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2

from keras_stepcounter.tools import events, report, runs, sections, throughput
from keras_stepcounter.tools.record_frames import frame_records
from keras_stepcounter.tools.scalar_columns import (
    ScalarColumns,
    ScalarRecord,
    columns_of,
)
from keras_stepcounter.tools.scalar_table import ScalarTable, TableBuilder, concatenate
from keras_stepcounter.writer.event_records import file_version_record, scalar_record
from test_report_reader import reference  # TensorBoard's reader, as the truth

# Block sizes that cut records everywhere: inside a header, inside the
# data, a record longer than a block, and the whole file at once.
BLOCKS = [1, 13, 64, 1000, 1 << 30]


def as_tuples(read):
    return [(tag, r.step, r.value, r.wall_time) for tag, r in read.scalars]


def write_counter_layout(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(file_version_record(1.0))
        for wall, step, tag, value in records:
            writer.write(scalar_record(wall, step, tag, value))


def mixed_file(tmp_path):
    """The counter's layout among v1 summaries of two values each (the
    general parser's) and a long text summary (no scalar)."""
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(file_version_record(1.0))
        for i in range(40):
            writer.write(scalar_record(10.0 + i, 100 * i + 1, "global_step/sec",
                                       50.0 + i / 4))
            if i % 7 == 3:
                writer.write(event_pb2.Event(
                    wall_time=10.5 + i, step=100 * i + 2,
                    summary=summary_pb2.Summary(value=[
                        summary_pb2.Summary.Value(tag="a/sec", simple_value=i / 2),
                        summary_pb2.Summary.Value(tag="b/sec", simple_value=i * 2.0),
                    ]),
                ).SerializeToString())
            if i == 20:
                writer.write(event_pb2.Event(
                    wall_time=30.5, step=2002,
                    file_version="x" * 3000,  # Longer than most blocks.
                ).SerializeToString())
    return path


@pytest.mark.parametrize("block", BLOCKS)
def test_a_file_read_by_blocks_is_read_as_tensorboard_reads_it(
    tmp_path, monkeypatch, block
):
    path = mixed_file(tmp_path)
    monkeypatch.setattr(events, "_BLOCK", block)
    read = events.read_event_file(str(path))
    assert read.problem is None
    assert read.events_read == 1 + 40 + 6 + 1
    assert as_tuples(read) == reference(path)
    # The general parser's records, in file order between the others.
    assert [t for t, *_ in as_tuples(read)][3:6] == [
        "global_step/sec", "a/sec", "b/sec"]


@pytest.mark.parametrize("block", [1, 64, 1000])
@pytest.mark.parametrize("where", ["length", "length crc", "data", "data crc"])
def test_damage_read_by_blocks_stops_where_it_is(tmp_path, monkeypatch, block, where):
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    write_counter_layout(path, [(float(i), i + 1, "global_step/sec", 5.0)
                                for i in range(300)])
    data = bytearray(Path(path).read_bytes())
    frames = frame_records(bytes(data))
    record = 222
    start = int(frames.starts[record]) - 12
    offset = {"length": 0, "length crc": 9, "data": 12 + 20,
              "data crc": 12 + int(frames.lengths[record]) + 1}[where]
    data[start + offset] ^= 0x10
    Path(path).write_bytes(bytes(data))
    monkeypatch.setattr(events, "_BLOCK", block)
    read = events.read_event_file(str(path))
    assert read.problem == (
        "damaged (a record failed its CRC check), the rest of it not read"
    )
    assert read.events_read == record
    assert [r.step for _, r in read.scalars] == list(range(1, record))
    assert read.notice().endswith(f"; read {record} records before it")


@pytest.mark.parametrize("block", [1, 40, 1 << 30])
def test_a_record_that_is_no_event_in_a_later_block_is_named(
    tmp_path, monkeypatch, block
):
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(file_version_record(1.0))
        for step in range(1, 30):
            writer.write(scalar_record(2.0, step, "global_step/sec", 4.0))
        writer.write(b"\xff\xff\xff")  # CRCs right, not a protobuf message.
        writer.write(scalar_record(3.0, 99, "global_step/sec", 4.0))
    monkeypatch.setattr(events, "_BLOCK", block)
    read = events.read_event_file(str(path))
    assert read.problem == "record 31 is not an Event (damaged)"
    assert read.events_read == 30
    assert [r.step for _, r in read.scalars] == list(range(1, 30))


def test_an_empty_file_reads_nothing_and_no_problem(tmp_path):
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    path.write_bytes(b"")
    read = events.read_event_file(str(path))
    assert (read.problem, read.events_read, len(read.table)) == (None, 0, 0)


def test_the_table_holds_the_columns_in_file_order(tmp_path):
    path = tmp_path / "events.out.tfevents.1.h.1.0.v2"
    write_counter_layout(path, [(7.0, 1, "baseline_step", 1.0),
                                (8.0, 101, "global_step/sec", 2.5),
                                (9.0, 201, "global_step/sec", math.inf)])
    table = events.read_event_file(str(path)).table
    assert [table.tags[t] for t in table.tag_ids.tolist()] == [
        "baseline_step", "global_step/sec", "global_step/sec"]
    assert table.steps.tolist() == [1, 101, 201]
    assert table.values.tolist() == [1.0, 2.5, math.inf]
    assert table.wall_times.tolist() == [7.0, 8.0, 9.0]
    by_tag = table.by_tag()
    assert list(by_tag) == ["baseline_step", "global_step/sec"]
    assert by_tag["global_step/sec"] == [ScalarRecord(101, 2.5, 8.0),
                                         ScalarRecord(201, math.inf, 9.0)]


def test_scalar_columns_are_a_sequence_of_records():
    records = [ScalarRecord(i, i / 4, 100.0 + i) for i in range(40_000)]
    columns = ScalarColumns.of(records)
    assert len(columns) == 40_000
    assert list(columns) == records  # Across iteration's chunks.
    assert columns[3] == ScalarRecord(3, 0.75, 103.0)
    assert columns[-1] == records[-1]
    assert columns[10:12] == records[10:12]
    assert isinstance(columns[10:12], ScalarColumns)
    assert columns == records and columns != records[:-1]
    assert columns.steps.dtype == np.int64 and columns.values.dtype == np.float64
    assert columns_of(columns) is columns
    assert columns_of(records[:2]) == records[:2]
    assert not ScalarColumns.empty() and ScalarColumns.empty() == []


def test_scalar_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="steps, values and wall_times"):
        ScalarColumns([1, 2], [1.0], [0.0, 0.0])


def test_the_builder_grows_and_merges_tag_lists():
    builder = TableBuilder(1)
    builder.add(["a", "b"], np.array([1, 0, 1]), np.array([1, 2, 3]),
                np.array([0.1, 0.2, 0.3]), np.array([5.0, 6.0, 7.0]))
    builder.add(["c", "a"], np.array([0, 1]), np.array([4, 5]),
                np.array([0.4, 0.5]), np.array([8.0, 9.0]))
    table = builder.table()
    assert table.tags == ["a", "b", "c"]
    assert [table.tags[t] for t in table.tag_ids.tolist()] == ["b", "a", "b", "c", "a"]
    assert table.steps.tolist() == [1, 2, 3, 4, 5]
    assert list(table.by_tag()) == ["b", "a", "c"]
    assert table.by_tag()["a"].steps.tolist() == [2, 5]
    merged, source = concatenate([table, table.select(slice(3, None))])
    assert merged.steps.tolist() == [1, 2, 3, 4, 5, 4, 5]
    assert source.tolist() == [0, 0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("capacity, error", [(-1, ValueError), (2.0, TypeError),
                                             (True, TypeError)])
def test_the_builders_capacity_is_checked(capacity, error):
    with pytest.raises(error, match="capacity"):
        TableBuilder(capacity)


# The rules `runs._stretches` applied one record at a time before issue
# 28's columns: the reference its numpy search must agree with.
def stretches_one_by_one(pairs):
    """`pairs`: (tag, step) in time order. Each stretch's (first index,
    reruns) and the restarts' (index, highest)."""
    stretches = [[0, []]]
    restarts = []
    highest = first_baseline = None
    for index, (tag, step) in enumerate(pairs):
        if tag == "baseline_step" and first_baseline is None:
            first_baseline = step
        if runs._counts_for_order(tag):
            if highest is not None and step < highest:
                if runs._resumes(tag, step, first_baseline):
                    stretches[-1][1].append(runs.Rerun(step, highest))
                else:
                    restarts.append((index, highest))
                    stretches.append([index, []])
                    first_baseline = step if tag == "baseline_step" else None
                highest = None
            highest = step if highest is None else max(highest, step)
    return stretches, restarts


def table_of(pairs, walls=None):
    tags = sorted({tag for tag, _ in pairs})
    return ScalarTable(
        tags,
        np.array([tags.index(t) for t, _ in pairs], dtype=np.int32),
        np.array([s for _, s in pairs], dtype=np.int64),
        np.arange(len(pairs), dtype=np.float64),
        np.arange(len(pairs), dtype=np.float64) if walls is None
        else np.asarray(walls, dtype=np.float64),
    )


@pytest.mark.parametrize("seed", range(12))
def test_runs_are_cut_as_one_record_at_a_time_would_cut_them(monkeypatch, seed):
    monkeypatch.setattr(runs, "_FIRST_WINDOW", 3)  # Windows grow and restart.
    rng = np.random.default_rng(seed)
    tags = ["global_step/sec", "baseline_step", "goodput/rerun_steps",
            "stall_secs", "user/loss"]
    pairs, step = [], 0
    for _ in range(400):
        tag = tags[int(rng.choice(5, p=[0.6, 0.1, 0.05, 0.1, 0.15]))]
        step = max(0, step + int(rng.integers(-30, 60)))
        pairs.append((tag, step))
    read = events.EventFileRead("events.out.tfevents.1.h", table_of(pairs))
    restarts = []
    found = runs._stretches("d", [read], restarts)
    expected, expected_restarts = stretches_one_by_one(pairs)
    assert len(found) == len(expected)
    assert [run.reruns for run in found] == [reruns for _, reruns in expected]
    assert restarts == [
        f"step {pairs[i][1]} of {pairs[i][0]} in events.out.tfevents.1.h "
        f"after step {highest}" for i, highest in expected_restarts
    ]
    bounds = [first for first, _ in expected] + [len(pairs)]
    for run, begin, end in zip(found, bounds, bounds[1:]):
        part = pairs[begin:end]
        assert sorted(run.scalars) == sorted({t for t, _ in part})
        for tag, records in run.scalars.items():
            assert records.steps.tolist() == [s for t, s in part if t == tag]


@pytest.mark.parametrize("sorted_times", [True, False])
def test_files_merge_by_time_as_heapq_merges_them(sorted_times):
    rng = np.random.default_rng(3)
    reads = []
    for number in range(3):
        walls = np.round(rng.uniform(0, 20, 50), 0)  # Ties between files.
        walls = np.sort(walls) if sorted_times else walls
        pairs = [("global_step/sec", 1000 * number + i) for i in range(50)]
        reads.append(events.EventFileRead(f"f{number}", table_of(pairs, walls)))
    table, source = runs._in_time_order(reads)
    streams = [[(float(w), n, int(s)) for w, s in zip(r.table.wall_times,
                                                      r.table.steps)]
               for n, r in enumerate(reads)]
    expected = list(heapq.merge(*streams, key=lambda item: item[0]))
    assert table.steps.tolist() == [s for _, _, s in expected]
    assert source.tolist() == [n for _, n, _ in expected]


def test_a_files_span_is_its_recorder_tags_steps_and_times():
    pairs = [("user/loss", 900), ("global_step/sec", 101), ("stall_secs", 5),
             ("global_step/sec", 201), ("baseline_step", 1)]
    span = runs._span(events.EventFileRead("f", table_of(pairs, [9, 2, 1, 3, 4])))
    assert span == runs._Span(2.0, 4.0, {"global_step/sec": (101, 201),
                                         "baseline_step": (1, 1)})
    assert runs._span(events.EventFileRead("f", table_of([("user/loss", 1)]))) is None


def test_interval_starts_are_the_formula_the_columns_replaced():
    """`measured_intervals`, now in place on columns, against the formula
    it had on lists: the later of the previous record's step and the last
    baseline below, the baseline alone where the step went back."""
    rng = np.random.default_rng(5)
    steps = np.cumsum(rng.integers(-40, 100, 300))
    records = [ScalarRecord(int(s), 1.0, 0.0) for s in steps]
    baselines = sorted(rng.choice(steps, 12, replace=False).tolist())
    for given in (baselines, None, []):
        starts = throughput.measured_intervals(records, given).starts
        previous = np.concatenate([[np.nan], steps[:-1].astype(float)])
        if given is None:
            expected = previous
        else:
            below = [max([b for b in given if b < s], default=np.nan) for s in steps]
            expected = np.where(previous >= steps, below, np.fmax(previous, below))
        np.testing.assert_array_equal(starts, expected)


def test_the_input_share_weighs_each_step_by_its_last_interval():
    steps = np.array([10, 20, 20, 30])
    secs = np.array([1.0, 2.0, 3.0, 4.0])
    found = report._secs_at(steps, secs, np.array([20, 5, 30, 40, 10]))
    np.testing.assert_array_equal(found, [3.0, np.nan, 4.0, np.nan, 1.0])


def test_the_largest_step_time_is_the_first_of_equal_ones():
    scalars = {"step_time/max": ScalarColumns.of([
        ScalarRecord(10, 0.5, 0.0), ScalarRecord(20, math.inf, 0.0),
        ScalarRecord(30, 0.9, 0.0), ScalarRecord(40, 0.9, 0.0)])}
    summary = sections.summarize_step_time("r", scalars)
    assert (summary.max, summary.max_step) == (0.9, 30)
    assert (summary.first_step, summary.last_step, summary.records) == (10, 40, 4)
