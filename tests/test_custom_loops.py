"""StepCounter in custom training loops, and the same loop three ways (issue 4)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import counter_on, steps_of, values_of

import keras_stepcounter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def guide_loop(keras, tiny_data):
    """The Keras guide's loop pieces: uncompiled model, own optimizer, 30 batches."""
    x, y = tiny_data
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.MeanSquaredError()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return loss

    return model, optimizer, dataset, step


def _run_with_callback_list(guide_loop, log_dir):
    model, optimizer, dataset, step = guide_loop
    train_step = tf.function(step)
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=log_dir, step_source=optimizer.iterations
    )
    callbacks = tf.keras.callbacks.CallbackList([counter], model=model)
    logs = {}
    callbacks.on_train_begin(logs)
    callbacks.on_epoch_begin(0, logs)
    for batch, (xb, yb) in enumerate(dataset):
        callbacks.on_train_batch_begin(batch, logs)
        logs = {"loss": train_step(xb, yb)}
        callbacks.on_train_batch_end(batch, logs)
    callbacks.on_epoch_end(0, logs)
    callbacks.on_train_end(logs)


def _run_with_step_source(guide_loop, log_dir):
    _, optimizer, dataset, step = guide_loop
    train_step = tf.function(step)
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=log_dir)
    with counter.track(optimizer.iterations):
        for xb, yb in dataset:
            train_step(xb, yb)
            counter.step_done()


def _run_in_graph(guide_loop, log_dir):
    _, optimizer, dataset, step = guide_loop
    counter = keras_stepcounter.GraphStepCounter(
        every_n_steps=10, output_dir=log_dir, log=False
    )

    @tf.function
    def train(dataset):
        for xb, yb in dataset:
            step(xb, yb)
            counter(optimizer.iterations)

    train(dataset)
    counter.close()


@pytest.mark.parametrize(
    "run", [_run_with_callback_list, _run_with_step_source, _run_in_graph],
    ids=["CallbackList", "step_source", "GraphStepCounter"],
)
def test_same_30_step_loop_records_at_11_and_21(guide_loop, tmp_path, run):
    run(guide_loop, str(tmp_path))
    assert int(guide_loop[1].iterations) == 30
    assert steps_of(tmp_path) == [11, 21]
    assert all(value > 0 for value in values_of(tmp_path))


class CountingSource:
    """A callable step source that remembers the step at each read."""

    def __init__(self):
        self.step = 0
        self.reads = []

    def __call__(self):
        self.reads.append(self.step)
        return self.step


def test_step_source_is_read_only_when_a_step_trigger_can_fire(tmp_path, fake_clock):
    source = CountingSource()
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path)
    )
    with counter.track(source):
        for _ in range(30):
            source.step += 1
            fake_clock.advance(0.25)
            counter.step_done()
    # Once at the start, then the baseline (1), the two records, and once
    # at the end of the block (the run's last step).
    assert source.reads == [0, 1, 11, 21, 30]
    assert steps_of(tmp_path) == [11, 21]
    assert values_of(tmp_path) == [4.0, 4.0]


def test_step_source_is_read_only_when_a_secs_trigger_can_fire(tmp_path, fake_clock):
    source = CountingSource()
    counter = counter_on(fake_clock, every_n_steps=None, every_n_secs=1.0, output_dir=str(tmp_path), step_source=source,
    )
    with counter.track():
        for _ in range(30):
            source.step += 1
            fake_clock.advance(0.25)
            counter.step_done()
    assert source.reads == [0, 1, 5, 9, 13, 17, 21, 25, 29, 30]  # 30: the end
    assert steps_of(tmp_path) == [5, 9, 13, 17, 21, 25, 29]
    assert values_of(tmp_path) == [4.0] * 7


def test_several_steps_per_call_count_real_steps(tmp_path, fake_clock):
    iterations = tf.Variable(0, dtype=tf.int64)
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path), steps_per_call=5
    )
    with counter.track(iterations):
        for _ in range(6):
            iterations.assign_add(5)  # One call runs five steps.
            fake_clock.advance(0.5)
            counter.step_done()
    assert steps_of(tmp_path) == [15, 25]
    assert values_of(tmp_path) == [10.0, 10.0]


def test_track_writes_the_records_taken_before_an_error(tmp_path, fake_clock):
    iterations = tf.Variable(0, dtype=tf.int64)
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path)
    )
    with pytest.raises(KeyboardInterrupt):
        with counter.track(iterations):
            for _ in range(15):
                iterations.assign_add(1)
                fake_clock.advance(0.1)
                counter.step_done()
            raise KeyboardInterrupt
    assert steps_of(tmp_path) == [11]


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda: "iterations", "step_source must be an integer tf.Variable"),
        (lambda: tf.Variable(0.0), "step_source must hold an integer step, got a "
         "variable of dtype float32"),
    ],
)
def test_bad_step_source_fails_at_construction(make_source, message):
    source = make_source()
    with pytest.raises(TypeError, match=message):
        keras_stepcounter.StepCounter(step_source=source)
    with pytest.raises(TypeError, match=message):
        keras_stepcounter.StepCounter().track(source).__enter__()


def test_keras_variable_step_source_is_checked_by_dtype(keras):
    # tf.keras is Keras 3 in this process; its variables report their
    # dtype as a string. (tf_keras has no keras.Variable.)
    assert keras.__name__.startswith("keras") and hasattr(keras, "Variable")
    with pytest.raises(TypeError, match="dtype float32"):
        keras_stepcounter.StepCounter(step_source=keras.Variable(0.0))
    keras_stepcounter.StepCounter(step_source=keras.Variable(0, dtype="int64"))


def test_track_without_source_or_model_names_the_fix():
    counter = keras_stepcounter.StepCounter()
    with pytest.raises(ValueError, match="pass step_source= to StepCounter"):
        with counter.track():
            pass


def _run_example(name, log_dir):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / name), "--logdir", str(log_dir),
         "--epochs", "1"],
        env=env, cwd=str(log_dir), capture_output=True, text=True, timeout=240,
    )


@pytest.mark.slow  # A subprocess importing TensorFlow: 12-20 s.
def test_custom_loop_example_runs(tmp_path):
    result = _run_example("custom_loop.py", tmp_path)
    assert result.returncode == 0, result.stderr
    # One epoch of 256 steps.
    assert "Recorded 2 rates of global_step/sec" in result.stdout
    (run,) = [p for p in tmp_path.iterdir() if p.name.startswith("run-")]
    assert steps_of(run / "train") == [101, 201]

