"""Moving from the v1 hook to StepCounter; the example runs (the guide's blocks run in test_docs)."""

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import FakeClock, steps_of
from test_compat_v1 import run_session

import keras_stepcounter
from keras_stepcounter.callback import _counters_use_clock
from keras_stepcounter.compat import v1
from keras_stepcounter.compat.v1 import timer as v1_timer
from keras_stepcounter.tools.events import read_scalars

REPO = Path(__file__).resolve().parents[1]


def fit_30_batches(make_model, tiny_data, counter, callbacks_before=()):
    x, y = tiny_data
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0,
                     callbacks=[*callbacks_before, counter])


def ticker(keras, clock, seconds):
    """Makes each batch take `seconds` on `clock` (placed before the counter)."""

    class Ticker(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(seconds)

    return Ticker()


def test_from_our_hook_same_steps_as_the_hook(make_model, tiny_data, tmp_path):
    run_session([v1.StepCounterHook(every_n_steps=10, output_dir=str(tmp_path / "hook"))], 30)
    assert steps_of(tmp_path / "hook") == [11, 21]

    counter = v1.to_step_counter(
        v1.StepCounterHook(every_n_steps=10, output_dir=str(tmp_path / "fit")))
    assert isinstance(counter, keras_stepcounter.StepCounter)
    fit_30_batches(make_model, tiny_data, counter)
    assert steps_of(tmp_path / "fit") == [11, 21]


def test_from_tensorflows_hook_every_n_secs(make_model, tiny_data, tmp_path, keras,
                                            fake_clock, monkeypatch):
    session_clock = FakeClock()
    monkeypatch.setattr(v1_timer, "time", types.SimpleNamespace(time=session_clock))
    hook = v1.StepCounterHook(every_n_steps=None, every_n_secs=1.0,
                              output_dir=str(tmp_path / "hook"))
    run_session([hook], 30, before_each_run=lambda i: session_clock.advance(0.25))

    tf_hook = tf.compat.v1.train.StepCounterHook(
        every_n_steps=None, every_n_secs=1.0, output_dir=str(tmp_path / "fit"))
    with _counters_use_clock(fake_clock):
        counter = v1.to_step_counter(tf_hook)
    fit_30_batches(make_model, tiny_data, counter,
                   callbacks_before=[ticker(keras, fake_clock, 0.25)])

    assert steps_of(tmp_path / "fit") == steps_of(tmp_path / "hook") == [5, 9, 13, 17, 21,
                                                                         25, 29]


def test_v1_file_writer_becomes_its_logdir(make_model, tiny_data, tmp_path):
    with tf.Graph().as_default():
        file_writer = tf.compat.v1.summary.FileWriter(str(tmp_path))
    counter = v1.to_step_counter(v1.StepCounterHook(every_n_steps=10,
                                                    summary_writer=file_writer))
    fit_30_batches(make_model, tiny_data, counter)
    file_writer.close()
    assert steps_of(tmp_path) == [11, 21]


def test_without_a_hook_takes_the_v1_arguments(make_model, tiny_data, tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    counter = v1.to_step_counter(every_n_steps=10, summary_writer=writer,
                                 tag="train/steps_per_sec")
    fit_30_batches(make_model, tiny_data, counter)
    assert steps_of(tmp_path, "train/steps_per_sec") == [11, 21]


def test_keywords_override_and_v1_rules_apply(tmp_path):
    hook = v1.StepCounterHook(every_n_steps=10)
    with pytest.raises(ValueError, match="exactly one of every_n_steps and every_n_secs"):
        v1.to_step_counter(hook, every_n_secs=5)  # every_n_steps=10 is still set.
    assert v1.to_step_counter(hook, every_n_steps=None, every_n_secs=5) is not None
    with pytest.raises(ValueError, match="exactly one of every_n_steps and every_n_secs"):
        v1.to_step_counter(every_n_secs=5)  # As v1: every_n_steps defaults to 100.


def test_not_a_hook_is_a_type_error():
    with pytest.raises(TypeError, match="hook must be a StepCounterHook"):
        v1.to_step_counter(tf.compat.v1.train.StopAtStepHook(last_step=1))


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.slow  # A subprocess: TensorFlow's start-up dominates.
def test_example_monitored_session_runs(tmp_path):
    logdir = tmp_path / "logs"
    result = _run([str(REPO / "examples" / "monitored_session.py"), "--logdir",
                   str(logdir), "--steps", "300", "--every-n-steps", "100"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Recorded 2 rates of global_step/sec" in result.stdout
    assert [r.step for r in read_scalars(str(logdir))["global_step/sec"]] == [101, 201]
    assert len(re.findall(r"global_step/sec: [0-9.e+]+\n", result.stderr)) == 2
    assert "has not been increased" not in result.stderr

