"""Re-run steps by lineage: the latest run that wrote to `output_dir`.

`EventFileSink.begin_run(start_step)` says how many steps a run computes
again, against the last step the latest run in the directory's index read;
`reached(step)` and every record move that last step on.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import FakeClock

from keras_stepcounter.tools.events import event_files
from keras_stepcounter.writer import EventFileSink, SummarySink, event_file, lineage

REPO = Path(__file__).resolve().parents[1]


def index_of(directory):
    with tf.io.gfile.GFile(os.path.join(str(directory), lineage.INDEX_NAME)) as file:
        return json.loads(file.read())


def run_steps(sink, start, last, every=1):
    """A run from `start` that reads every step up to `last`, recording
    every `every` steps."""
    rerun = sink.begin_run(start)
    for step in range(start + 1, last + 1):
        if step % every == 0:
            sink.write(step, {"global_step/sec": 1.0})
    sink.reached(last)
    return rerun


def test_another_experiments_steps_are_not_rerun_steps(tmp_path):
    # Experiment A reached step 50 here yesterday.
    a = EventFileSink(str(tmp_path))
    assert run_steps(a, 0, 50, every=10) is None
    a.close()
    # Today B runs 0..10, is preempted and restored at step 8.
    b = EventFileSink(str(tmp_path))
    assert run_steps(b, 0, 10, every=5) is None  # A start at 0 is a new run.
    assert b.begin_run(8) == 2  # Not 42.
    assert index_of(tmp_path) == {"format": lineage.FORMAT, "start_step": 8, "last_step": 8}
    b.close()


def test_the_last_step_read_counts_not_the_last_record(tmp_path):
    sink = EventFileSink(str(tmp_path))
    run_steps(sink, 0, 64, every=10)  # Records at 10..60; the run read 64.
    assert sink.begin_run(20) == 44
    sink.close()


def test_no_rerun_at_or_above_the_last_step(tmp_path):
    sink = EventFileSink(str(tmp_path))
    run_steps(sink, 0, 30)
    assert sink.begin_run(30) is None
    sink.reached(40)
    assert sink.begin_run(45) is None  # Ahead of the run before: nothing redone.
    assert sink.begin_run(41) == 4  # Measured against the run from 45 (it read 45).
    sink.close()


def test_a_restore_in_a_new_process_reads_the_index_and_saves_at_exit(tmp_path):
    sink = EventFileSink(str(tmp_path))
    run_steps(sink, 0, 120, every=100)
    sink.close()
    script = textwrap.dedent(
        """
        import sys
        from keras_stepcounter.writer import EventFileSink
        sink = EventFileSink(sys.argv[1])
        print(sink.begin_run(100))
        sink.write(150, {"global_step/sec": 1.0})  # Updated in place...
        """  # ...and saved at exit, with no close().
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["20"]
    assert index_of(tmp_path) == {"format": lineage.FORMAT, "start_step": 100, "last_step": 150}


def test_after_a_kill_the_last_step_is_the_last_record(tmp_path):
    # Every record updates a local index in place; a kill (no close) loses
    # only the steps since the last record: fewer than every_n_steps.
    killed = EventFileSink(str(tmp_path))
    assert killed.begin_run(0) is None  # Saved: (0, 0).
    for step in (100, 200, 300, 400):
        killed.write(step, {"global_step/sec": 1.0})
        assert index_of(tmp_path)["last_step"] == step
    del killed  # Killed: no reached(), no close().
    restored = EventFileSink(str(tmp_path))
    assert restored.begin_run(250) == 150
    restored.close()


def test_a_records_update_is_in_place_and_a_save_replaces_the_file(tmp_path, monkeypatch):
    saves = []
    real_save = lineage.save_latest_run
    monkeypatch.setattr(
        event_file, "save_latest_run",
        lambda *args: saves.append(args[1:]) or real_save(*args),
    )
    sink = EventFileSink(str(tmp_path))
    sink.begin_run(0)
    index = tmp_path / lineage.INDEX_NAME
    inode = os.stat(index).st_ino
    for step in range(1, 31):
        sink.write(step, {"a": 1.0})
    assert os.stat(index).st_ino == inode and len(index.read_bytes()) == lineage.INDEX_BYTES
    sink.reached(31)
    sink.close()
    # begin_run and close(): whole saves; the records and reached(), in place.
    assert saves == [(0, 0), (0, 31)]
    assert index_of(tmp_path)["last_step"] == 31


def test_a_remote_index_is_saved_by_records_at_most_every_remote_index_secs(monkeypatch):
    saves = []
    real_save = lineage.save_latest_run
    monkeypatch.setattr(
        event_file, "save_latest_run",
        lambda *args: saves.append(args[1:]) or real_save(*args),
    )
    directory = "ram://lineage_test/throttled"
    tf.io.gfile.makedirs(directory)
    clock = FakeClock()
    sink = EventFileSink(directory, recheck_secs=1.0, clock=clock)
    sink.begin_run(0)
    for step in range(1, 31):  # A record every 20 s for 600 s.
        clock.advance(20.0)
        sink.write(step, {"a": 1.0})
    sink.close()
    # begin_run; the records at 300 and 600 s (steps 15 and 30); close().
    assert saves == [(0, 0), (0, 15), (0, 30), (0, 30)]


def test_a_run_that_raised_is_saved_before_the_next_begins(tmp_path):
    # A fit that raised skips its end (no reached()); its records moved the
    # index on, and the next run's start measures against them.
    sink = EventFileSink(str(tmp_path))
    sink.begin_run(0)
    sink.write(10, {"a": 1.0})
    sink.write(20, {"a": 1.0})
    assert index_of(tmp_path)["last_step"] == 20
    assert sink.begin_run(15) == 5
    sink.close()


def test_a_remote_path_works_through_tf_io_gfile():
    # TF's RAM filesystem stands in for gs://: not a local path, so the
    # index goes through tf.io.gfile.
    directory = "ram://lineage_test/run"
    tf.io.gfile.makedirs(directory)
    a = EventFileSink(directory)
    run_steps(a, 0, 50, every=10)
    a.close()
    assert index_of(directory) == {"format": lineage.FORMAT, "start_step": 0, "last_step": 50}
    b = EventFileSink(directory)
    assert b.begin_run(30) == 20
    b.close()
    assert index_of(directory)["start_step"] == 30


def test_a_large_foreign_event_file_is_never_opened(tmp_path):
    # 20 MB of another tool's events, and a FIFO named like one of ours
    # (opening it would wait forever): begin_run opens the index alone.
    foreign = tmp_path / "events.out.tfevents.1700000000.host.1.v2"
    foreign.write_bytes(b"\0" * (20 << 20))
    os.mkfifo(tmp_path / f"events.out.tfevents.1700000001.host.2.000000{event_file.FILE_SUFFIX}")
    first = EventFileSink(str(tmp_path))
    run_steps(first, 0, 30)
    first.close()
    opened = []
    watching = [False]

    def hook(event, args):
        if watching[0] and event == "open":
            opened.append(os.path.basename(str(args[0])))

    sys.addaudithook(hook)  # Every Python-level open; cannot be removed.
    open(foreign).close()  # The hook sees opens...
    assert opened == []  # ...only while watching.
    sink = EventFileSink(str(tmp_path))
    watching[0] = True
    try:
        rerun = sink.begin_run(12)
    finally:
        watching[0] = False
    assert rerun == 18
    assert opened[0] == lineage.INDEX_NAME  # Read, then saved (a temporary file).
    assert all(name.startswith(lineage.INDEX_NAME) for name in opened), opened
    sink.close()


def test_the_index_is_not_an_event_file_and_leaves_no_temporary_files(tmp_path):
    sink = EventFileSink(str(tmp_path))
    run_steps(sink, 0, 5)
    sink.close()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [lineage.INDEX_NAME] + [os.path.basename(p) for p in event_files(str(tmp_path))]
    )
    assert len(event_files(str(tmp_path))) == 1


@pytest.mark.parametrize("damage", ["garbage", "wrong format", "not ints", "missing"])
def test_an_unreadable_index_is_no_index(tmp_path, damage):
    path = tmp_path / lineage.INDEX_NAME
    texts = {
        "garbage": "{not json",
        "wrong format": json.dumps({"format": "other", "start_step": 0, "last_step": 50}),
        "not ints": json.dumps({"format": lineage.FORMAT, "start_step": 0, "last_step": "50"}),
    }
    if damage in texts:
        path.write_text(texts[damage])
    sink = EventFileSink(str(tmp_path))
    assert sink.begin_run(8) is None
    sink.close()
    assert index_of(tmp_path)["start_step"] == 8  # Replaced by this run.


def test_a_directory_gone_never_raises(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    sink = EventFileSink(str(run))
    run_steps(sink, 0, 10)
    shutil.rmtree(run)
    assert sink.begin_run(5) == 5  # The save failed: this sink's own run counts.
    sink.reached(9)
    sink.close()
    assert not run.exists()  # Never re-created.


def test_summary_sink_measures_against_its_own_previous_run():
    sink = SummarySink(tf.summary.create_noop_writer())
    assert sink.begin_run(8) is None  # No run before it.
    sink.write(30, {"a": 1.0})
    sink.reached(32)
    assert sink.begin_run(20) == 12
    assert sink.begin_run(0) is None
    assert sink.begin_run(5) is None  # The run from 0 read nothing past 0.
