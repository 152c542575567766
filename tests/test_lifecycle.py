"""Lifecycle: interrupted fits keep their records; reuse; who closes what.

Fits are 30 batches with `every_n_steps=5` unless said otherwise: records
at steps 6, 11, 16, 21, 26 of a fresh model.
"""

import shutil

import pytest
import tensorflow as tf
from conftest import steps_of

import keras_stepcounter
from keras_stepcounter.tools.events import event_files


def raise_at_step(keras, step, error):
    """A callback (after the counter) raising `error` once `step` is done."""

    class Raiser(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations) == step:
                raise error

    return Raiser()


def fit(model, tiny_data, *callbacks):
    x, y = tiny_data
    return model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=list(callbacks))


def steps_per_event_file(run_dir, scratch):
    """The recorded steps of each event file in `run_dir`, as sorted lists."""
    result = []
    for index, path in enumerate(event_files(str(run_dir))):
        alone = scratch / f"file{index}"
        alone.mkdir(parents=True)
        shutil.copy(path, alone)
        result.append(steps_of(alone))
    return sorted(result)


@pytest.fixture
def writer_spy(monkeypatch):
    """Counts `close()` calls on every event file the counter opens for
    `output_dir` (each through its own `tf.io.TFRecordWriter`)."""
    real_writer = tf.io.TFRecordWriter
    closes = []  # One count per file opened, in order.

    class Spy:
        def __init__(self, path):
            self._writer = real_writer(path)
            self._index = len(closes)
            closes.append(0)

        def write(self, record):
            self._writer.write(record)

        def flush(self):
            self._writer.flush()

        def close(self):
            closes[self._index] += 1
            self._writer.close()

    monkeypatch.setattr(tf.io, "TFRecordWriter", Spy)
    return closes


@pytest.mark.parametrize(
    "error", [RuntimeError("a later callback failed"), KeyboardInterrupt()],
    ids=["exception", "keyboard_interrupt"],
)
def test_interrupted_fit_leaves_every_record_on_disk(
    keras, make_model, tiny_data, tmp_path, error
):
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
    with pytest.raises(type(error)):
        fit(make_model(), tiny_data, counter, raise_at_step(keras, 17, error))
    # Keras does not call on_train_end here: these were flushed as taken.
    assert steps_of(tmp_path) == [6, 11, 16]


def test_exception_inside_track_leaves_records_and_the_file_open(tmp_path, writer_spy):
    step = tf.Variable(0, dtype=tf.int64)
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        with counter.track(step):
            for _ in range(13):
                step.assign_add(1)
                counter.step_done()
            raise KeyboardInterrupt
    assert steps_of(tmp_path) == [6, 11]
    assert writer_spy == [0]  # Flushed; kept for the counter's next run.
    counter.close()
    assert writer_spy == [1]


def test_reused_across_fits_and_models(keras, make_model, tiny_data, tmp_path, writer_spy):
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    model_a, model_b = make_model(), make_model()
    fit(model_a, tiny_data, counter)
    fit(model_a, tiny_data, counter)  # Steps 31..60 of model A.
    fit(model_b, tiny_data, counter)  # Model B's own optimizer: from step 0.
    # One event file for the counter's life (the report splits it where the
    # step starts over); closed by close(), once.
    assert steps_per_event_file(tmp_path, tmp_path / "scratch") == [
        [11, 21, 41, 51, 11, 21]
    ]
    assert writer_spy == [0]
    counter.close()
    counter.close()
    assert writer_spy == [1]


def test_writer_opened_by_it_is_closed_exactly_once(
    keras, make_model, tiny_data, tmp_path, writer_spy
):
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
    model = make_model()
    with pytest.raises(RuntimeError):
        fit(model, tiny_data, counter, raise_at_step(keras, 17, RuntimeError()))
    assert writer_spy == [0]  # No on_train_end: kept open for the next fit.
    fit(model, tiny_data, counter)  # Steps 18..47, in the same event file.
    counter.on_train_end()  # A second end (a CallbackList driven by hand).
    assert writer_spy == [0]  # Ends of runs flush; only close() closes.
    counter.close()
    counter.close()
    assert writer_spy == [1]
    assert steps_of(tmp_path) == [6, 11, 16, 23, 28, 33, 38, 43]


def test_writer_given_by_the_user_is_never_closed(
    keras, make_model, tiny_data, tmp_path
):
    writer = tf.summary.create_file_writer(str(tmp_path))
    close_calls = []
    real_close = writer.close
    writer.close = lambda: close_calls.append(1) or real_close()
    counter = keras_stepcounter.StepCounter(every_n_steps=10, summary_writer=writer)
    model = make_model()
    fit(model, tiny_data, counter)
    with pytest.raises(RuntimeError):
        fit(model, tiny_data, counter, raise_at_step(keras, 45, RuntimeError()))
    fit(make_model(), tiny_data, counter)
    counter.on_train_end()
    with counter.track(tf.Variable(0, dtype=tf.int64)):
        pass
    assert close_calls == []
    assert steps_of(tmp_path) == [11, 21, 41, 11, 21]
    with writer.as_default():  # Still open: writing works.
        tf.summary.scalar("after", 1.0, step=99)
    writer.flush()
    assert steps_of(tmp_path, "after") == [99]
