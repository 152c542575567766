"""StepCounter in model.fit (Keras 3 on TensorFlow): issue 2's contract."""

import math
import time

import pytest
from conftest import counter_on, steps_of, values_of

import keras_stepcounter
from keras_stepcounter.tools.events import read_scalars


def _ticker(keras, clock, per_batch=0.125, per_validation_batch=0.0):
    """A callback that makes each batch take `per_batch` fake seconds.

    Placed before the StepCounter, so the counter sees the time advanced.
    """

    class Ticker(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(per_batch)

        def on_test_batch_end(self, batch, logs=None):
            clock.advance(per_validation_batch)

    return Ticker()


def test_every_n_steps_records_at_v1_steps(make_model, tiny_data, tmp_path, tf_log):
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])

    scalars = read_scalars(str(tmp_path))
    # The rate, and where its first interval starts (for the report's
    # throughput: the first record covers 11 - 1 steps).
    assert sorted(scalars) == ["baseline_step", "global_step/sec"]
    assert [(r.step, r.value) for r in scalars["baseline_step"]] == [(1, 1.0)]
    assert [r.step for r in scalars["global_step/sec"]] == [11, 21]
    assert all(r.value > 0 for r in scalars["global_step/sec"])
    lines = [m for _, m in tf_log.messages if m.startswith("global_step/sec: ")]
    assert len(lines) == 2


def test_steps_per_execution_counts_real_steps(make_model, tiny_data, tmp_path):
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    model = make_model(steps_per_execution=5)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
    assert steps_of(tmp_path) == [15, 25]


def test_custom_tag(make_model, tiny_data, tmp_path):
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=str(tmp_path), tag="train/steps_per_sec"
    )
    make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert sorted(read_scalars(str(tmp_path))) == ["baseline_step", "train/steps_per_sec"]
    assert steps_of(tmp_path, "train/steps_per_sec") == [11, 21]


def test_second_fit_continues_the_step_axis_without_the_gap(
    keras, make_model, tiny_data, tmp_path, fake_clock
):
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path)
    )
    model = make_model()
    callbacks = [_ticker(keras, fake_clock), counter]
    model.fit(x, y, batch_size=4, verbose=0, callbacks=callbacks)
    fake_clock.advance(500.0)  # A long pause between the two fits.
    model.fit(x, y, batch_size=4, verbose=0, callbacks=callbacks)

    assert steps_of(tmp_path) == [11, 21, 41, 51]
    # 10 steps of 0.125 s each, also for the first interval of the 2nd fit.
    assert values_of(tmp_path) == [8.0, 8.0, 8.0, 8.0]


def test_restored_optimizer_continues_the_step_axis(make_model, tiny_data, tmp_path):
    x, y = tiny_data
    model = make_model()
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(100)  # As after a checkpoint restore.
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert steps_of(tmp_path) == [111, 121]


def test_every_n_secs_records_where_the_fake_clock_says(
    keras, make_model, tiny_data, tmp_path, fake_clock
):
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=None, every_n_secs=1.0, output_dir=str(tmp_path)
    )
    callbacks = [_ticker(keras, fake_clock, per_batch=0.125), counter]
    make_model().fit(x, y, batch_size=4, verbose=0, callbacks=callbacks)
    # Baseline after step 1; then 1 s is 8 steps of 0.125 s.
    assert steps_of(tmp_path) == [9, 17, 25]
    assert values_of(tmp_path) == [8.0, 8.0, 8.0]


def test_validation_between_epochs_is_not_counted(
    keras, make_model, tiny_data, tmp_path, fake_clock
):
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path)
    )
    ticker = _ticker(keras, fake_clock, per_batch=0.125, per_validation_batch=50.0)
    history = make_model().fit(
        x[:80], y[:80], batch_size=4, epochs=2, verbose=0,
        validation_data=(x[80:], y[80:]), callbacks=[ticker, counter],
    )
    # The interval 11 -> 21 spans the slow validation after epoch 1.
    assert steps_of(tmp_path) == [11, 21, 31]
    assert values_of(tmp_path) == [8.0, 8.0, 8.0]
    assert history.history["steps_per_sec"] == [8.0, 8.0]


def test_epoch_pause_can_be_turned_off(keras, make_model, tiny_data, tmp_path, fake_clock):
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path),
        pause_between_epochs=False,
    )
    ticker = _ticker(keras, fake_clock, per_batch=0.125, per_validation_batch=10.0)
    make_model().fit(
        x[:80], y[:80], batch_size=4, epochs=2, verbose=0,
        validation_data=(x[80:80 + 4], y[80:80 + 4]), callbacks=[ticker, counter],
    )
    assert steps_of(tmp_path) == [11, 21, 31]
    # Stored as float32.
    assert values_of(tmp_path) == pytest.approx([8.0, 10 / (1.25 + 10.0), 8.0], rel=1e-6)


def test_epoch_logs_can_be_turned_off(make_model, tiny_data, tmp_path):
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(output_dir=str(tmp_path), epoch_logs=False)
    history = make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert "steps_per_sec" not in history.history


def test_known_step_time_gives_the_wall_clock_rate(keras, make_model, tiny_data, tmp_path):
    """Real sleeps: the point is real timing."""
    x, y = tiny_data
    step_ends, after_counter = [], []

    class SlowStep(keras.callbacks.Callback):  # Placed before the counter.
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(0.02)
            step_ends.append(time.perf_counter())

    class Stamp(keras.callbacks.Callback):  # Placed after the counter.
        def on_train_batch_end(self, batch, logs=None):
            after_counter.append(time.perf_counter())

    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    make_model().fit(
        x, y, batch_size=4, verbose=0, callbacks=[SlowStep(), counter, Stamp()]
    )
    # Step k ends at index k - 1. An interval runs from just after the
    # counter's work at its first step (the baseline is re-taken after a
    # record is written) to the end of its last step: 1 -> 11, 11 -> 21.
    expected = [
        10 / (step_ends[10] - after_counter[0]),
        10 / (step_ends[20] - after_counter[10]),
    ]
    assert values_of(tmp_path) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(
    "steps_per_execution, expected_reads, expected_records",
    [
        # Start of fit, baseline (after the first call), two records, end
        # of epoch (steps_per_sec); no read on any batch between.
        (1, [0, 1, 11, 21, 30], [11, 21]),
        (5, [0, 5, 15, 25, 30], [15, 25]),
    ],
)
def test_no_device_read_on_batches_where_no_trigger_can_fire(
    make_model, tiny_data, tmp_path, steps_per_execution, expected_reads, expected_records
):
    x, y = tiny_data
    model = make_model(steps_per_execution=steps_per_execution)
    reads = []

    def counted_step():
        reads.append(int(model.optimizer.iterations))
        return reads[-1]

    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=str(tmp_path), step_source=counted_step
    )
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert reads == expected_reads
    assert steps_of(tmp_path) == expected_records


def test_record_is_on_disk_while_fit_is_running(keras, make_model, tiny_data, tmp_path):
    x, y = tiny_data
    seen_during_fit = []

    class ReadBack(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 11:  # Step 12: one step after the first record.
                seen_during_fit.extend(steps_of(tmp_path))

    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter, ReadBack()])
    assert seen_during_fit == [11]


def test_user_writer_is_used_and_not_closed(keras, make_model, tiny_data, tmp_path):
    import tensorflow as tf

    x, y = tiny_data
    writer = tf.summary.create_file_writer(str(tmp_path))
    counter = keras_stepcounter.StepCounter(every_n_steps=10, summary_writer=writer)
    make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert steps_of(tmp_path) == [11, 21]
    with writer.as_default():  # Still open: writing works.
        tf.summary.scalar("after", 1.0, step=99)
    writer.flush()
    assert steps_of(tmp_path, "after") == [99]


def test_rate_is_finite_and_positive(make_model, tiny_data, tmp_path):
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path))
    make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert all(math.isfinite(v) and v > 0 for v in values_of(tmp_path))


def test_the_baseline_step_is_for_the_report_not_a_tensorboard_chart(
    make_model, tiny_data, tmp_path
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
    counter.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert list(events.PluginTagToContent("scalars")) == ["global_step/sec"]
    assert list(events.PluginTagToContent("keras_stepcounter")) == ["baseline_step"]
    assert [r.step for r in read_scalars(str(tmp_path))["baseline_step"]] == [1]
