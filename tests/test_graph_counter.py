"""GraphStepCounter: steps/sec recorded from inside a tf.function (issue 4)."""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import steps_of, values_of

from keras_stepcounter import GraphStepCounter
from keras_stepcounter.tools.events import read_scalars

REPO = Path(__file__).resolve().parents[1]


def sleep_op(seconds):
    """A graph op that takes `seconds` of real time (a step of known length)."""
    return tf.py_function(lambda: time.sleep(seconds) or 0, [], tf.int32)


def counted_loop(counter, step):
    """A tf.function running `n` steps and returning the last recorded rate."""

    @tf.function
    def loop(n):
        last = tf.constant(math.nan, tf.float64)
        for _ in tf.range(n):
            step.assign_add(1)
            rate = counter(step)
            last = tf.where(tf.math.is_nan(rate), last, rate)
        return last

    return loop


def test_1000_steps_in_one_call_and_no_retracing(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(every_n_steps=100, output_dir=str(tmp_path), log=False)
    loop = counted_loop(counter, step)

    loop(tf.constant(1000))
    assert steps_of(tmp_path) == list(range(101, 1000, 100))
    loop(tf.constant(1000))
    last_rate = loop(tf.constant(1000))

    # The baseline carries over between calls of the function.
    assert steps_of(tmp_path) == list(range(101, 3000, 100))
    assert loop.experimental_get_tracing_count() == 1
    assert float(last_rate) == pytest.approx(values_of(tmp_path)[-1], rel=1e-6)


def test_tf_while_loop(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)

    @tf.function
    def loop():
        def body(i):
            step.assign_add(1)
            counter(step)
            return (i + 1,)

        return tf.while_loop(lambda i: i < 30, body, (tf.constant(0),))

    loop()
    assert steps_of(tmp_path) == [11, 21]


def test_eager_calls_return_the_rate_or_nan(tmp_path):
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)
    rates = {s: float(counter(s)) for s in range(1, 31)}
    recorded = {s: r for s, r in rates.items() if not math.isnan(r)}
    assert list(recorded) == [11, 21]
    assert steps_of(tmp_path) == [11, 21]
    assert values_of(tmp_path) == pytest.approx(list(recorded.values()), rel=1e-6)


def test_never_twice_at_one_step(tmp_path):
    counter = GraphStepCounter(every_n_steps=1, output_dir=str(tmp_path), log=False)
    counter(1)
    assert not math.isnan(float(counter(2)))
    assert math.isnan(float(counter(2)))
    assert steps_of(tmp_path) == [2]


def test_reset_starts_a_new_baseline(tmp_path):
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)
    for s in range(1, 16):
        counter(s)
    counter.reset()
    for s in range(16, 31):
        counter(s)
    assert steps_of(tmp_path) == [11, 26]


def test_every_n_secs_records_where_the_clock_says(tmp_path):
    step_secs, every_secs, steps = 0.02, 0.1, 40
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(
        every_n_steps=None, every_n_secs=every_secs, output_dir=str(tmp_path), log=False
    )

    @tf.function
    def loop(n):
        ends = tf.TensorArray(tf.float64, size=n + 1)
        ends = ends.write(0, tf.timestamp())
        for i in tf.range(1, n + 1):
            with tf.control_dependencies([sleep_op(step_secs)]):
                step.assign_add(1)
            ends = ends.write(i, tf.timestamp())  # The end of step `first + i`.
            counter(step)
        return ends.stack()

    # Step 1 sets the baseline, and runs the trigger once (its first run
    # instantiates it: not training time, so not in any interval).
    loop(tf.constant(1))
    ends = loop(tf.constant(steps)).numpy()  # ends[k]: the end of step 1 + k.
    records = steps_of(tmp_path)
    assert len(records) >= 3
    # Replay the rule on the clock: from each record (step 1 is the
    # baseline), the next is due at the first step ending every_secs later.
    for last, actual in zip([1] + records, records):
        expected = next(
            s for s in range(last + 1, steps + 2)
            if ends[s - 1] - ends[last - 1] >= every_secs
        )
        assert abs(actual - expected) <= 1, (last, actual, expected)


def test_rate_matches_total_wall_time(tmp_path):
    step_secs, steps = 0.02, 61
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)

    @tf.function
    def loop(n):
        for _ in tf.range(n):
            with tf.control_dependencies([sleep_op(step_secs)]):
                step.assign_add(1)
            counter(step)

    loop(tf.constant(1))  # Trace and optimize the graph before timing.
    counter.reset()
    start = time.perf_counter()
    loop(tf.constant(steps))
    wall_secs_per_step = (time.perf_counter() - start) / steps

    records = read_scalars(str(tmp_path))["global_step/sec"]
    assert [r.step for r in records] == [12, 22, 32, 42, 52, 62]
    # Each record covers 10 steps; their total time over their total steps.
    recorded_secs_per_step = sum(10 / r.value for r in records) / 60
    assert recorded_secs_per_step == pytest.approx(wall_secs_per_step, rel=0.05)


def test_examples_per_sec_from_batch_size(tmp_path):
    counter = GraphStepCounter(
        every_n_steps=10, output_dir=str(tmp_path), batch_size=32, log=False
    )
    for s in range(1, 31):
        counter(s)
    assert steps_of(tmp_path, "examples/sec") == [11, 21]
    expected = [32 * v for v in values_of(tmp_path)]
    assert values_of(tmp_path, "examples/sec") == pytest.approx(expected, rel=1e-6)


def test_examples_per_sec_from_count_fn_in_graph(tmp_path):
    # Batches of 4 sequences; in batch i, i % 5 tokens per row are not padding.
    lengths = tf.data.Dataset.range(30).map(lambda i: i % 5)
    dataset = lengths.map(lambda n: tf.sequence_mask(tf.fill([4], n), 6, tf.int32))
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(
        every_n_steps=10, output_dir=str(tmp_path), log=False,
        count_fn=lambda batch: tf.math.count_nonzero(batch),
    )

    @tf.function
    def loop(dataset):
        for batch in dataset:
            step.assign_add(1)
            counter(step, batch)

    loop(dataset)
    assert steps_of(tmp_path, "examples/sec") == [11, 21]
    # Steps 2..11 and 12..21 hold two batches of each length 0..4: 80 tokens
    # in 10 steps, so tokens/sec is 8 times steps/sec.
    expected = [8 * v for v in values_of(tmp_path)]
    assert values_of(tmp_path, "examples/sec") == pytest.approx(expected, rel=1e-5)


def test_mfu(tmp_path):
    counter = GraphStepCounter(
        every_n_steps=10, output_dir=str(tmp_path), log=False,
        flops_per_step=2e9, peak_flops_per_sec=1e14,
    )
    for s in range(1, 31):
        counter(s)
    assert steps_of(tmp_path, "mfu") == [11, 21]
    expected = [v * 2e9 / 1e14 for v in values_of(tmp_path)]
    assert values_of(tmp_path, "mfu") == pytest.approx(expected, rel=1e-5)


def test_time_to_first_step_once(tmp_path):
    start = time.time()
    counter = GraphStepCounter(
        every_n_steps=10, output_dir=str(tmp_path), log=False, time_to_first_step=True
    )
    time.sleep(0.05)
    for s in range(1, 31):
        counter(s)
    elapsed = time.time() - start
    assert steps_of(tmp_path, "time_to_first_step") == [1]
    (seconds,) = values_of(tmp_path, "time_to_first_step")
    assert 0.05 <= seconds <= elapsed
    assert steps_of(tmp_path) == [11, 21]


def test_log_line_in_v1_format(capfd):
    counter = GraphStepCounter(every_n_steps=10)

    @tf.function
    def loop():
        for s in tf.range(1, 31, dtype=tf.int64):
            counter(s)

    loop()
    lines = [l for l in capfd.readouterr().err.splitlines() if "global_step/sec" in l]
    assert len(lines) == 2
    for line in lines:
        prefix, value = line.split(": ")
        assert prefix == "global_step/sec" and float(value) > 0


def test_log_false_prints_nothing(capfd):
    counter = GraphStepCounter(every_n_steps=10, log=False)
    for s in range(1, 31):
        counter(s)
    assert "global_step/sec" not in capfd.readouterr().err


def test_given_writer_is_flushed_not_closed(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    counter = GraphStepCounter(every_n_steps=10, summary_writer=writer, log=False)
    for s in range(1, 31):
        counter(s)
    assert steps_of(tmp_path) == [11, 21]  # On disk before close().
    counter.close()
    with writer.as_default():
        tf.summary.scalar("still_open", 1.0, step=0)
    writer.flush()
    assert steps_of(tmp_path, "still_open") == [0]


def test_without_a_writer_uses_the_default_one_at_trace_time(tmp_path):
    counter = GraphStepCounter(every_n_steps=10, log=False)

    @tf.function
    def loop():
        for s in tf.range(1, 31, dtype=tf.int64):
            counter(s)

    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        loop()
    assert steps_of(tmp_path) == [11, 21]


def test_xla_raises_at_trace_time_naming_cause_and_fix():
    counter = GraphStepCounter(every_n_steps=10, log=False)

    @tf.function(jit_compile=True)
    def compiled(step):
        return counter(step)

    with pytest.raises(RuntimeError) as error:
        compiled(tf.constant(1))
    message = str(error.value)
    assert "XLA-compiled function" in message
    assert "tf.timestamp() and tf.summary ops have no XLA kernels" in message
    assert "Call the counter outside the compiled function" in message


def test_created_inside_tf_function_fails():
    @tf.function
    def make():
        GraphStepCounter()

    with pytest.raises(RuntimeError, match="must be created outside tf.function"):
        make()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(every_n_steps=None), ValueError, "exactly one of every_n_steps and every_n_secs"),
        (dict(every_n_secs=1.0), ValueError, "exactly one of every_n_steps and every_n_secs"),
        (dict(every_n_steps=0), ValueError, "every_n_steps must be a positive int"),
        (dict(every_n_steps=True), ValueError, "every_n_steps must be a positive number, not a bool"),
        (dict(every_n_steps=None, every_n_secs=float("nan")), ValueError, "every_n_secs"),
        (dict(tag=""), ValueError, "tag must be a non-empty str"),
        (dict(log="no"), TypeError, "log must be True or False, got 'no'"),
        (dict(time_to_first_step=1), TypeError, "time_to_first_step must be True or False"),
        (dict(batch_size=0), ValueError, "batch_size must be a positive int"),
        (dict(count_fn=3), TypeError, "count_fn must be callable"),
        (dict(flops_per_step=-1.0, peak_flops_per_sec=1e12), ValueError,
         "flops_per_step must be a positive"),
        (dict(flops_per_step=1e9, peak_flops_per_sec="x"), TypeError,
         "peak_flops_per_sec must be a positive"),
        # The extras pairing check, shared with StepCounter (RecorderOptions).
        (dict(flops_per_step=1e9), ValueError, "flops_per_step and peak_flops_per_sec go together"),
        (dict(peak_flops_per_sec=1e12), ValueError, "got only peak_flops_per_sec"),
        (dict(batch_size=8, count_fn=len), ValueError, "at most one of batch_size and count_fn"),
        (dict(summary_writer="w"), TypeError, "summary_writer must be a tf.summary.SummaryWriter"),
        (dict(output_dir=3), TypeError, "output_dir must be a str"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        GraphStepCounter(**kwargs)


def test_output_dir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        GraphStepCounter(output_dir=str(path))


@pytest.mark.slow  # A subprocess importing TensorFlow: 12-20 s.
def test_graph_loop_example_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "graph_loop.py"),
         "--logdir", str(tmp_path), "--epochs", "2"],
        env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "Recorded 5 rates of global_step/sec" in result.stdout
    (run,) = [p for p in tmp_path.iterdir() if p.name.startswith("run-")]
    assert steps_of(run / "train") == [101, 201, 301, 401, 501]
    assert steps_of(run / "train", "examples/sec") == [101, 201, 301, 401, 501]
