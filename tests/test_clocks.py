"""Clocks: wall-clock jumps bend no rate; no elapsed time records nothing."""

import inspect
import itertools
import time

import pytest
import tensorflow as tf
from conftest import counter_on, steps_of, values_of

import keras_stepcounter


def test_default_clock_is_monotonic_and_not_an_argument(tmp_path):
    assert "clock" not in inspect.signature(keras_stepcounter.StepCounter).parameters
    counter = keras_stepcounter.StepCounter(output_dir=str(tmp_path))
    assert counter._clock is time.perf_counter
    with pytest.raises(TypeError, match="clock"):
        keras_stepcounter.StepCounter(clock=time.monotonic)


def test_wall_clock_jumps_change_no_recorded_rate(
    keras, make_model, tiny_data, tmp_path, monkeypatch
):
    """Real sleeps: the point is real timing under a lying wall clock."""
    x, y = tiny_data
    real_time = time.time
    # NTP steps, DST mistakes, a VM resumed: hours back and forth per call.
    jumps = itertools.cycle([-3600.0, 7200.0, -86400.0, 0.0, 86400.0])
    monkeypatch.setattr(time, "time", lambda: real_time() + next(jumps))
    batch_ends = []

    class SlowStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.02)
            batch_ends.append(time.perf_counter())
            time.time()  # The wall clock jumps between every two batches.

    after_counter = []

    class AfterCounter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            after_counter.append(time.perf_counter())

    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    callbacks = [SlowStep(), counter, AfterCounter()]
    make_model().fit(x, y, batch_size=4, verbose=0, callbacks=callbacks)

    assert steps_of(tmp_path) == [11, 21]
    # Steps 1..30 end at batch_ends[0..29]; each record covers 10 steps.
    # The interval after a record starts once it is written (SPEC 3).
    true_rates = [
        10 / (batch_ends[10] - batch_ends[0]),
        10 / (batch_ends[20] - after_counter[10]),
    ]
    # Loose enough for a loaded machine; an hour's jump is off by 10^4.
    assert values_of(tmp_path) == pytest.approx(true_rates, rel=0.1)


def test_triggers_at_the_same_instant_record_nothing(tmp_path, fake_clock, tf_log):
    step = tf.Variable(0, dtype=tf.int64)
    counter = counter_on(fake_clock, every_n_steps=1, output_dir=str(tmp_path)
    )
    with counter.track(step):
        for _ in range(5):  # Five steps, not a tick of the clock.
            step.assign_add(1)
            counter.step_done()
        fake_clock.advance(0.5)
        step.assign_add(1)
        counter.step_done()
    # Each zero-time trigger moved the baseline on; step 6 is 1 step / 0.5 s.
    assert steps_of(tmp_path) == [6]
    assert values_of(tmp_path) == [2.0]
    lines = [m for _, m in tf_log.messages if m.startswith("global_step/sec")]
    assert lines == ["global_step/sec: 2"]


def test_fit_on_a_frozen_clock_records_nothing(make_model, tiny_data, tmp_path, fake_clock):
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path)
    )
    history = make_model().fit(
        x, y, batch_size=4, epochs=2, verbose=0, callbacks=[counter]
    )
    assert steps_of(tmp_path) == []
    assert "steps_per_sec" not in history.history  # Nor an epoch rate.
