"""Disk faults during `fit`: training completes, one warning, records resume.

The fit in every test is 30 batches with `every_n_steps=5`, so records are
due at steps 6, 11, 16, 21 and 26. A callback placed after the counter
breaks and repairs things at given steps (step = batch + 1 in one epoch).
"""

import os
import shutil
import warnings

import pytest
import tensorflow as tf
from conftest import steps_of

import keras_stepcounter
from keras_stepcounter.writer import event_file

ALL_RECORDS = [6, 11, 16, 21, 26]


def at_steps(keras, actions):
    """A callback running `actions[step]()` after the batch ending at `step`."""

    class AtSteps(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            action = actions.get(batch + 1)
            if action is not None:
                action()

    return AtSteps()


def fit_with_faults(make_model, tiny_data, counter, faults):
    """Fits 30 batches; returns (history, our RuntimeWarnings)."""
    x, y = tiny_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = make_model().fit(
            x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter, faults]
        )
    ours = [w for w in caught if "keras_stepcounter" in str(w.message)]
    assert all(w.category is RuntimeWarning for w in ours), ours
    return history, ours


@pytest.fixture
def recheck_every_record(monkeypatch):
    """The event file's existence checked at every record, not once a second
    (these fits last well under a second; the window is tested on its own in
    test_event_file_sink.py)."""
    monkeypatch.setattr(event_file, "RECHECK_SECS", 0.0)


def rate_lines(tf_log):
    return [m for _, m in tf_log.messages if m.startswith("global_step/sec: ")]


def test_output_dir_removed_mid_fit_and_back_resumes(
    keras, make_model, tiny_data, tmp_path, tf_log
, recheck_every_record):
    run = tmp_path / "run"
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(run))
    faults = at_steps(keras, {8: lambda: shutil.rmtree(run), 14: run.mkdir})
    history, warned = fit_with_faults(make_model, tiny_data, counter, faults)

    assert history.epoch == [0]  # Training completed.
    assert len(warned) == 1  # For the record at step 11, taken while gone.
    assert "is not a directory any more" in str(warned[0].message)
    # Step 6 went with the old directory; 16 on are in a new event file.
    assert steps_of(run) == [16, 21, 26]
    assert len(rate_lines(tf_log)) == 5  # The log line is never lost.
    assert any("writing records resumed" in m for _, m in tf_log.messages)


def test_output_dir_removed_and_recreated_between_records_loses_nothing_new(
    keras, make_model, tiny_data, tmp_path
, recheck_every_record):
    # The open event file now has no name: without the per-record check,
    # every later record would vanish into it without an error.
    run = tmp_path / "run"
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(run))
    faults = at_steps(keras, {8: lambda: shutil.rmtree(run), 9: run.mkdir})
    _, warned = fit_with_faults(make_model, tiny_data, counter, faults)
    assert warned == []
    assert steps_of(run) == [11, 16, 21, 26]


def test_output_dir_removed_for_good_is_not_recreated(
    keras, make_model, tiny_data, tmp_path, tf_log
, recheck_every_record):
    run = tmp_path / "run"
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(run))
    faults = at_steps(keras, {8: lambda: shutil.rmtree(run)})
    history, warned = fit_with_faults(make_model, tiny_data, counter, faults)
    assert history.epoch == [0]
    assert len(warned) == 1  # Not one per lost record (11, 16, 21, 26).
    assert not run.exists()
    assert len(rate_lines(tf_log)) == 5


def test_output_dir_replaced_by_a_file_mid_fit(keras, make_model, tiny_data, tmp_path, recheck_every_record):
    # Unwritable in a way that also stops root (chmod does not).
    run = tmp_path / "run"
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(run))

    def break_it():
        shutil.rmtree(run)
        run.write_text("a file now")

    def repair_it():
        assert run.read_text() == "a file now"  # Left alone meanwhile.
        run.unlink()
        run.mkdir()

    faults = at_steps(keras, {8: break_it, 14: repair_it})
    history, warned = fit_with_faults(make_model, tiny_data, counter, faults)
    assert history.epoch == [0]
    assert len(warned) == 1
    assert steps_of(run) == [16, 21, 26]


class FlakyWriter(tf.summary.SummaryWriter):
    """A real writer that raises `OSError` from every method while `failing`."""

    def __init__(self, writer, message="[Errno 28] No space left on device"):
        self.writer = writer
        self.message = message
        self.failing = False
        self.close_calls = 0

    def _check(self):
        if self.failing:
            raise OSError(self.message)

    def set_as_default(self, step=None):
        self._check()
        self.writer.set_as_default(step)

    def as_default(self, step=None):
        self._check()
        return self.writer.as_default(step)

    def init(self):
        self.writer.init()

    def flush(self):
        self._check()
        self.writer.flush()

    def close(self):
        self.close_calls += 1
        self._check()
        self.writer.close()


def failing_between(keras, writer, start, end):
    def start_failing():
        writer.failing = True

    def stop_failing():
        writer.failing = False

    return at_steps(keras, {start: start_failing, end: stop_failing})


def test_user_writer_that_raises(keras, make_model, tiny_data, tmp_path, tf_log):
    writer = FlakyWriter(tf.summary.create_file_writer(str(tmp_path)))
    counter = keras_stepcounter.StepCounter(every_n_steps=5, summary_writer=writer)
    faults = failing_between(keras, writer, 8, 14)
    history, warned = fit_with_faults(make_model, tiny_data, counter, faults)
    assert history.epoch == [0]
    assert len(warned) == 1
    assert "No space left on device" in str(warned[0].message)
    assert steps_of(tmp_path) == [6, 16, 21, 26]
    assert any("writing records resumed" in m for _, m in tf_log.messages)


class FlakyRecordWriter:
    """A real `tf.io.TFRecordWriter` whose write and flush raise while the
    disk is `full` (every file alike, new ones too)."""

    opened: list = []
    full = False

    def __init__(self, path):
        self.path = path
        self.writer = REAL_RECORD_WRITER(path)
        self.close_calls = 0
        FlakyRecordWriter.opened.append(self)

    def _check(self):
        if FlakyRecordWriter.full:
            raise OSError("Read-only file system")

    def write(self, record):
        self._check()
        self.writer.write(record)

    def flush(self):
        self._check()
        self.writer.flush()

    def close(self):
        self.close_calls += 1
        self.writer.close()


REAL_RECORD_WRITER = tf.io.TFRecordWriter


def test_disk_full_on_its_own_event_file(keras, make_model, tiny_data, tmp_path, monkeypatch):
    # Patching stands in for a full or read-only disk, which root ignores
    # (test_writer_full_disk.py fails real writes with RLIMIT_FSIZE).
    monkeypatch.setattr(FlakyRecordWriter, "opened", [])
    monkeypatch.setattr(FlakyRecordWriter, "full", False)
    monkeypatch.setattr(tf.io, "TFRecordWriter", FlakyRecordWriter)
    opened = FlakyRecordWriter.opened
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))

    class Failing(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            FlakyRecordWriter.full = 8 <= batch + 1 < 24

    history, warned = fit_with_faults(make_model, tiny_data, counter, Failing())
    assert history.epoch == [0]
    assert len(warned) == 1  # Three records failed (11, 16, 21): one warning.
    assert "Read-only file system" in str(warned[0].message)
    assert "new event file" in str(warned[0].message)
    assert steps_of(tmp_path) == [6, 26]
    # The file of step 6 was left at the failure at 11 (closed, never written
    # again); 16 and 21 each tried a new file, removed when its header failed;
    # 26 opened the file still open now.
    assert [w.close_calls for w in opened] == [1, 1, 1, 0]
    on_disk = sorted(n for n in os.listdir(tmp_path) if "tfevents" in n)
    assert on_disk == sorted(os.path.basename(opened[i].path) for i in (0, 3))
    counter.close()
    assert opened[3].close_calls == 1


def test_each_outage_warns_once(keras, make_model, tiny_data, tmp_path):
    writer = FlakyWriter(tf.summary.create_file_writer(str(tmp_path)))
    counter = keras_stepcounter.StepCounter(every_n_steps=5, summary_writer=writer)
    outages = {8: True, 12: False, 18: True, 22: False}

    class Outages(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            writer.failing = outages.get(batch + 1, writer.failing)

    _, warned = fit_with_faults(make_model, tiny_data, counter, Outages())
    assert len(warned) == 2  # Records 11 and 21 were lost, in two outages.
    assert steps_of(tmp_path) == [6, 16, 26]


@pytest.mark.parametrize("failing_at", ["open", "end"])
def test_failure_at_open_or_close_never_escapes(
    keras, make_model, tiny_data, tmp_path, monkeypatch, failing_at
):
    def broken_open(*args, **kwargs):
        raise OSError("cannot open")

    writer = FlakyWriter(tf.summary.create_file_writer(str(tmp_path)))
    if failing_at == "open":
        monkeypatch.setattr(tf.io, "TFRecordWriter", broken_open)
        counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
        faults = at_steps(keras, {})
    else:
        counter = keras_stepcounter.StepCounter(every_n_steps=5, summary_writer=writer)
        faults = failing_between(keras, writer, 28, 99)  # Still failing at the end.
    history, warned = fit_with_faults(make_model, tiny_data, counter, faults)
    assert history.epoch == [0]
    assert len(warned) == 1
    if failing_at == "end":
        assert steps_of(tmp_path) == ALL_RECORDS
