"""The sinks of `StepCounter`: what they write, byte for byte, and when."""

import copy
import gc
import math
import os
import re
import shutil
import warnings
import weakref

import pytest
import tensorflow as tf
from conftest import FakeClock, steps_of, values_of
from tensorboard.backend.event_processing import event_accumulator

import keras_stepcounter
from keras_stepcounter.writer import EventFileSink, SummarySink, event_file, make_sink
from keras_stepcounter.writer.event_records import scalar_record

# (tag, value, step): zero and negative steps, large steps, values beyond
# float32, NaN, an int, a tag containing what the value bytes look like.
CASES = [
    ("global_step/sec", 123.456, 7),
    ("global_step/sec", 0.25, 0),
    ("examples/sec", 3.4e38, 2**40),
    ("weird\x00\x00\xc0?tag", -3.0, -5),
    ("nan", math.nan, 1),
    ("inf", -math.inf, 3),
    ("int", 7, 9),
]


def new_dir(path):
    """A directory for a sink (the counter's constructor creates it; a sink
    never creates one)."""
    path.mkdir(parents=True)
    return str(path)


def records_of(path):
    return [bytes(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def only_event_file(directory):
    names = [n for n in os.listdir(directory) if "tfevents" in n]
    assert len(names) == 1, names
    return os.path.join(directory, names[0])


def test_records_are_tf_summary_scalars_bytes_but_wall_time(tmp_path):
    reference = tf.summary.create_file_writer(str(tmp_path / "tf"))
    with reference.as_default():
        for tag, value, step in CASES:
            tf.summary.scalar(tag, value, step=step)
    reference.flush()
    sink = EventFileSink(new_dir(tmp_path / "ours"))
    for tag, value, step in CASES:
        assert sink.write(step, {tag: value})
    sink.close()

    theirs = records_of(only_event_file(tmp_path / "tf"))[1:]
    ours = records_of(only_event_file(tmp_path / "ours"))[1:]
    assert len(ours) == len(theirs) == len(CASES)
    for mine, reference_record in zip(ours, theirs):
        # Field 1 (wall time) is the 9 bytes after the tag byte 0x09.
        assert mine[:1] == reference_record[:1] == b"\x09"
        assert mine[9:] == reference_record[9:]
    # And the encoder alone, given TF's wall time, gives TF's bytes.
    for (tag, value, step), reference_record in zip(CASES, theirs):
        wall = tf.compat.v1.Event.FromString(reference_record).wall_time
        assert scalar_record(wall, step, tag, value) == reference_record


def test_file_is_a_standard_event_file(tmp_path):
    sink = EventFileSink(str(tmp_path))
    sink.open()
    path = sink.path
    assert sink.write(11, {"global_step/sec": 2.5, "examples/sec": 10.0})
    name = os.path.basename(path)
    assert re.fullmatch(
        r"events\.out\.tfevents\.\d{10}\.[^.]+.*\.%d\.\d+\.stepcounter\.v2" % os.getpid(),
        name,
    ), name
    header, *scalars = [tf.compat.v1.Event.FromString(r) for r in records_of(path)]
    assert header.file_version == "brain.Event:2"
    assert [(e.step, e.summary.value[0].tag) for e in scalars] == [
        (11, "global_step/sec"), (11, "examples/sec")
    ]
    sink.close()


def test_tensorboards_loader_reads_scalars(tmp_path):
    sink = EventFileSink(str(tmp_path))
    for step, rate in [(11, 4.5), (21, 5.25)]:
        sink.write(step, {"global_step/sec": rate})
    sink.close()
    loader = event_accumulator.EventAccumulator(
        str(tmp_path), size_guidance={event_accumulator.TENSORS: 0}
    )
    loader.Reload()
    assert loader.PluginTagToContent("scalars") == {"global_step/sec": b""}
    events = loader.Tensors("global_step/sec")
    assert [e.step for e in events] == [11, 21]
    assert [tf.make_ndarray(e.tensor_proto).item() for e in events] == [4.5, 5.25]
    assert loader.file_version == 2.0  # From the header record.


def test_open_is_idempotent_and_close_then_open_starts_a_new_file(tmp_path):
    sink = EventFileSink(str(tmp_path))
    sink.open()
    first = sink.path
    sink.open()
    sink.write(1, {"a": 1.0})
    assert sink.path == first and len(os.listdir(tmp_path)) == 1
    sink.close()
    assert sink.path is None
    sink.close()  # Twice is harmless.
    sink.open()
    assert sink.path != first and len(os.listdir(tmp_path)) == 2
    sink.close()


def test_exit_hook_closes_open_sinks_without_keeping_them_alive(tmp_path):
    kept = EventFileSink(new_dir(tmp_path / "kept"))
    kept.open()
    dropped = EventFileSink(new_dir(tmp_path / "dropped"))
    dropped.open()
    gone = weakref.ref(dropped)
    del dropped
    gc.collect()
    assert gone() is None  # The exit hook's registry holds it weakly.
    event_file._close_open_sinks()  # What atexit runs.
    assert kept.path is None
    assert kept not in event_file._open_sinks


def test_removed_file_is_noticed_at_the_first_check_after_recheck_secs(tmp_path):
    clock = FakeClock()
    run = tmp_path / "run"
    run.mkdir()
    sink = EventFileSink(str(run), recheck_secs=1.0, clock=clock)
    sink.open()  # t=0: next check due at t=1.
    assert sink.write(1, {"a": 1.0})
    shutil.rmtree(run)
    run.mkdir()
    clock.advance(0.5)
    # Inside the window: written to the unlinked file, lost, no error.
    assert sink.write(2, {"a": 2.0})
    clock.advance(0.6)  # t=1.1: checked, a new file opened.
    assert sink.write(3, {"a": 3.0})
    clock.advance(0.1)
    assert sink.write(4, {"a": 4.0})
    sink.close()
    assert steps_of(run, "a") == [3, 4]


def test_open_replaces_a_file_removed_since_the_last_fit(tmp_path):
    clock = FakeClock()
    sink = EventFileSink(str(tmp_path), recheck_secs=1.0, clock=clock)
    sink.open()
    first = sink.path
    os.remove(first)
    sink.open()  # The next fit's start: checked there, whatever the clock says.
    assert sink.path != first
    assert sink.write(3, {"a": 1.0})
    sink.close()
    assert steps_of(tmp_path, "a") == [3]


def test_directory_gone_for_good_fails_every_record_with_one_warning(tmp_path):
    run = tmp_path / "run"
    sink = EventFileSink(str(run), recheck_secs=0.0)
    run.mkdir()
    sink.open()
    shutil.rmtree(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [sink.write(step, {"a": 1.0}) for step in (1, 2, 3)] == [False] * 3
    assert len(caught) == 1
    assert "is not a directory any more" in str(caught[0].message)
    assert not run.exists()
    run.mkdir()
    assert sink.write(4, {"a": 4.0})
    sink.close()
    assert steps_of(run, "a") == [4]


def test_make_sink_returns_the_sink_itself():
    assert type(make_sink("some/dir")) is EventFileSink
    writer = tf.summary.create_noop_writer()
    assert type(make_sink(None, writer)) is SummarySink
    assert type(make_sink("some/dir", writer)) is SummarySink
    assert type(make_sink()) is SummarySink


def test_deepcopy_shares_the_users_writer_and_reopens_own_files(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "user"))
    copied = copy.deepcopy(make_sink(None, writer))
    assert copied._writer is writer
    own = make_sink(new_dir(tmp_path / "own"))
    own.open()
    twin = copy.deepcopy(own)
    assert twin.path is None
    assert twin.write(5, {"a": 1.0}) and own.write(6, {"a": 1.0})
    own.close()
    twin.close()
    assert sorted(steps_of(tmp_path / "own", "a")) == [5, 6]


@pytest.mark.parametrize("where", ["user_writer", "default_writer"])
def test_summary_sink_tags_are_exact_and_record_if_false_is_overridden(tmp_path, where):
    writer = tf.summary.create_file_writer(str(tmp_path))
    sink = SummarySink(writer if where == "user_writer" else None)
    with tf.name_scope("experiment_1"), tf.summary.record_if(False):
        if where == "user_writer":
            assert sink.write(7, {"global_step/sec": 3.5})
        else:
            with writer.as_default():
                assert sink.write(7, {"global_step/sec": 3.5})
    assert steps_of(tmp_path) == [7]
    assert values_of(tmp_path) == [3.5]


def test_summary_sink_writes_what_tf_summary_scalar_writes(tmp_path):
    reference = tf.summary.create_file_writer(str(tmp_path / "tf"))
    with reference.as_default():
        tf.summary.scalar("global_step/sec", 2.75, step=12)
    reference.flush()
    sink = SummarySink(tf.summary.create_file_writer(str(tmp_path / "ours")))
    sink.write(12, {"global_step/sec": 2.75})
    theirs = records_of(only_event_file(tmp_path / "tf"))[1]
    ours = records_of(only_event_file(tmp_path / "ours"))[1]
    assert ours[9:] == theirs[9:]


@pytest.mark.parametrize("how", ["output_dir", "summary_writer"])
def test_fit_inside_a_name_scope_records_the_tag_as_given(
    make_model, tiny_data, tmp_path, how
):
    x, y = tiny_data
    if how == "output_dir":
        counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    else:
        counter = keras_stepcounter.StepCounter(
            every_n_steps=10, summary_writer=tf.summary.create_file_writer(str(tmp_path))
        )
    with tf.name_scope("experiment_1"):
        make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert steps_of(tmp_path) == [11, 21]
