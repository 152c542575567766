"""StepCounter's optional scalars in model.fit: examples/sec, mfu, time_to_first_step."""

import numpy as np
import pytest
from conftest import counter_on, steps_of, values_of

import keras_stepcounter
from keras_stepcounter.tools.events import read_scalars


def _ticker(keras, clock, per_batch=0.125):
    """Each batch takes `per_batch` fake seconds (placed before the counter)."""

    class Ticker(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(per_batch)

    return Ticker()


def test_batch_size_gives_examples_per_sec(keras, make_model, tiny_data, tmp_path, fake_clock):
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path), batch_size=4
    )
    make_model().fit(x, y, batch_size=4, verbose=0,
                     callbacks=[_ticker(keras, fake_clock), counter])
    assert sorted(read_scalars(str(tmp_path))) == [
        "baseline_step", "examples/sec", "global_step/sec"]
    assert steps_of(tmp_path, "examples/sec") == [11, 21]
    # 8 steps/sec times the global batch of 4.
    assert values_of(tmp_path) == [8.0, 8.0]
    assert values_of(tmp_path, "examples/sec") == [32.0, 32.0]


def test_count_fn_counts_items_from_the_batch_logs(
    keras, tiny_data, tmp_path, fake_clock
):
    """Padding-aware counting: only the 'tokens' the model reports per batch."""
    x, y = tiny_data

    class TokenCounting(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, inputs):
            return self.dense(inputs)

        def train_step(self, data):
            logs = dict(super().train_step(data))
            inputs = data[0]
            logs["tokens"] = keras.ops.sum(keras.ops.cast(inputs[:, 0] > 0.5, "float32"))
            return logs

    model = TokenCounting()
    model.compile(optimizer="sgd", loss="mse")
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path),
        count_fn=lambda logs: logs["tokens"],
    )
    model.fit(x, y, batch_size=4, verbose=0, shuffle=False,
              callbacks=[_ticker(keras, fake_clock), counter])

    tokens_per_batch = (x[:, 0] > 0.5).reshape(30, 4).sum(axis=1)
    # Step 1 is the baseline; the record at 11 covers batches 2..11, the
    # one at 21 batches 12..21, each 10 batches of 0.125 s.
    expected = [tokens_per_batch[1:11].sum() / 1.25, tokens_per_batch[11:21].sum() / 1.25]
    assert len(set(expected)) == 2  # The data makes the two intervals differ.
    assert steps_of(tmp_path, "examples/sec") == [11, 21]
    assert values_of(tmp_path, "examples/sec") == pytest.approx(expected, rel=1e-6)
    assert values_of(tmp_path) == [8.0, 8.0]


def test_failing_count_fn_warns_once_and_training_goes_on(
    make_model, tiny_data, tmp_path, tf_log
):
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=str(tmp_path), count_fn=lambda logs: logs["nope"]
    )
    history = make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert len(history.history["loss"]) == 1
    assert steps_of(tmp_path) == [11, 21]
    warnings = [m for _, m in tf_log.messages if "count_fn failed" in m]
    assert len(warnings) == 1
    assert "'nope'" in warnings[0]


def test_mfu_from_flops_per_step_and_peak(keras, make_model, tiny_data, tmp_path, fake_clock):
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path),
        flops_per_step=3e6, peak_flops_per_sec=1.2e8,
    )
    make_model().fit(x, y, batch_size=4, verbose=0,
                     callbacks=[_ticker(keras, fake_clock), counter])
    assert steps_of(tmp_path, "mfu") == [11, 21]
    # 8 steps/sec * 3e6 FLOPs = 2.4e7 FLOP/s of a 1.2e8 peak.
    assert values_of(tmp_path, "mfu") == pytest.approx([0.2, 0.2], rel=1e-6)


def test_time_to_first_step_once_per_fit_and_above_a_steady_step(
    make_model, tiny_data, tmp_path
):
    """Real clock: the point is that tracing makes the first step slow."""
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=str(tmp_path), time_to_first_step=True
    )
    model = make_model()
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])

    assert steps_of(tmp_path, "time_to_first_step") == [1, 31]
    first_fit_seconds = values_of(tmp_path, "time_to_first_step")[0]
    steady_step_seconds = 1 / np.array(values_of(tmp_path)[:2])
    assert first_fit_seconds > steady_step_seconds.max()
    assert steps_of(tmp_path) == [11, 21, 41, 51]  # Unchanged by the extra record.


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ({"batch_size": 4.0}, TypeError, "batch_size must be a positive int"),
        ({"count_fn": 3}, TypeError, "count_fn must be callable"),
        ({"batch_size": 4, "count_fn": len}, ValueError,
         "at most one of batch_size and count_fn"),
        ({"flops_per_step": 1e9}, ValueError, "got only flops_per_step"),
        ({"peak_flops_per_sec": 1e12}, ValueError, "got only peak_flops_per_sec"),
        ({"flops_per_step": -1.0, "peak_flops_per_sec": 1e12}, ValueError,
         "flops_per_step must be a positive finite number"),
    ],
)
def test_bad_extra_arguments_fail_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        keras_stepcounter.StepCounter(**kwargs)


def test_the_counter_is_not_async_safe():
    # Keras (JAX backend) would run on_train_batch_end in a thread pool;
    # test_flavours.py checks that it does not with this counter.
    assert keras_stepcounter.StepCounter.async_safe is False
