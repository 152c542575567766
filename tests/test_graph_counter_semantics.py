"""GraphStepCounter: recording conditions, name scopes, a step that goes back,
time_to_first_step, and where it agrees (or differs on purpose) with
StepCounter's shared core."""

import math
import time

import pytest
import tensorflow as tf
from conftest import steps_of, values_of

from keras_stepcounter import GraphStepCounter
from keras_stepcounter.core.options import RecorderOptions
from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.timer import SecondOrStepTimer
from keras_stepcounter.tools.events import read_scalars


def graph_loop(counter, step):
    """A tf.function running `n` steps, the counter called after each."""

    @tf.function
    def loop(n):
        for _ in tf.range(n):
            step.assign_add(1)
            counter(step)

    return loop


# A record the counter takes always reaches the file. ---------------------------


@pytest.mark.parametrize("condition", ["false", "every_10th_step"])
def test_records_land_whatever_record_if_the_user_set(tmp_path, condition):
    step = tf.Variable(0, dtype=tf.int64)
    writer = tf.summary.create_file_writer(str(tmp_path))
    counter = GraphStepCounter(every_n_steps=7, log=False, time_to_first_step=True)

    @tf.function
    def loop(n):
        for _ in tf.range(n):
            step.assign_add(1)
            tf.summary.scalar("user/loss", 1.0, step=step)
            counter(step)

    record_if = False if condition == "false" else (lambda: step % 10 == 0)
    with writer.as_default(), tf.summary.record_if(record_if):
        loop(tf.constant(30))
    writer.flush()
    assert steps_of(tmp_path) == [8, 15, 22, 29]  # Not one at a 10th step.
    assert steps_of(tmp_path, "time_to_first_step") == [1]
    # The user's own condition still holds for the user's summaries (whose
    # tag tf.summary.scalar prefixes with the loop's name scope).
    (user_tag,) = [t for t in read_scalars(str(tmp_path)) if t.endswith("user/loss")] or [None]
    if condition == "false":
        assert user_tag is None
    else:
        assert steps_of(tmp_path, user_tag) == [10, 20, 30]


def test_records_with_own_writer_land_under_record_if_false(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)
    with tf.summary.record_if(False):
        graph_loop(counter, step)(tf.constant(25))
        counter(step + 10)  # And eagerly.
    assert steps_of(tmp_path) == [11, 21, 35]


# Tags exactly as given. ---------------------------------------------------------


def test_tags_ignore_name_scopes_inside_tf_function(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False,
                               tag="train/steps_per_sec", batch_size=4,
                               time_to_first_step=True)

    @tf.function
    def loop(n):
        with tf.name_scope("inner"):
            for _ in tf.range(n):
                step.assign_add(1)
                counter(step)

    with tf.name_scope("experiment_1"):
        loop(tf.constant(21))
    assert sorted(read_scalars(str(tmp_path))) == [
        "examples/sec", "time_to_first_step", "train/steps_per_sec"]


def test_tags_ignore_name_scopes_eagerly(tmp_path):
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)
    with tf.name_scope("experiment_1"):
        for s in range(1, 22):
            counter(s)
    assert list(read_scalars(str(tmp_path))) == ["global_step/sec"]
    assert steps_of(tmp_path) == [11, 21]


# A step that goes back. ---------------------------------------------------------


def test_step_going_back_starts_a_new_baseline_and_warns_once(tmp_path, capfd):
    step = tf.Variable(0, dtype=tf.int64)
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)
    loop = graph_loop(counter, step)
    loop(tf.constant(25))
    step.assign(3)  # A restore.
    loop(tf.constant(25))

    # Steps 4..28 after the restore: step 4 is the new baseline.
    assert steps_of(tmp_path) == [11, 21, 14, 24]
    err = capfd.readouterr().err
    assert err.count("the global step went back") == 1
    # On purpose, unlike StepCounter (which names the last step it read, 25):
    # the graph keeps only its baseline step (21), so that a call where
    # nothing is due writes no variable.
    assert "the global step went back: 4 is below 21, the step of the last baseline" in err
    assert loop.experimental_get_tracing_count() == 1


def test_step_going_back_with_every_n_secs(tmp_path, capfd):
    counter = GraphStepCounter(every_n_steps=None, every_n_secs=3600.0,
                               output_dir=str(tmp_path), log=False)
    for s in (10, 11, 12):
        counter(s)
    assert math.isnan(float(counter(5)))  # Below the last baseline (10).
    assert "the global step went back: 5 is below 10" in capfd.readouterr().err
    assert steps_of(tmp_path) == []


def test_same_records_as_the_shared_rate_tracker_when_the_step_goes_back(
        tmp_path, fake_clock):
    # The core rule (RateTracker, used by StepCounter and the v1 hook) and
    # the graph ops, on one step sequence: same record steps.
    sequence = list(range(1, 26)) + list(range(4, 30))
    tracker = RateTracker(SecondOrStepTimer(every_steps=10, clock=fake_clock))
    expected = []
    for s in sequence:
        fake_clock.advance(0.01)
        if tracker.interval(s) is not None:
            expected.append(s)
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)
    for s in sequence:
        counter(s)
    assert steps_of(tmp_path) == expected == [11, 21, 14, 24]


# time_to_first_step: from creation or reset() to the end of the first step. -----


def test_time_to_first_step_counts_from_creation_then_from_reset(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    created = time.time()
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False,
                               time_to_first_step=True)
    loop = graph_loop(counter, step)
    time.sleep(0.3)
    loop(tf.constant(12))
    first_done = time.time()

    time.sleep(0.5)  # Not part of the next run: reset() starts it.
    reset_at = time.time()
    counter.reset()
    time.sleep(0.1)
    loop(tf.constant(12))
    second_done = time.time()

    assert steps_of(tmp_path, "time_to_first_step") == [1, 13]
    first, second = values_of(tmp_path, "time_to_first_step")
    assert 0.3 <= first <= first_done - created
    assert 0.1 <= second <= second_done - reset_at < 0.5
    assert steps_of(tmp_path) == [11, 23]  # The baseline restarts too.


# One formula, one rule, shared with the core. -----------------------------------


def test_examples_per_sec_from_count_fn_is_written_at_every_record_even_zero(tmp_path):
    # Batches 0..29 hold no counted item before step 15, then 2 each.
    counter = GraphStepCounter(every_n_steps=5, output_dir=str(tmp_path), log=False,
                               count_fn=lambda batch: batch)
    for s in range(1, 31):
        counter(s, tf.constant(0.0 if s <= 15 else 2.0))
    assert steps_of(tmp_path, "examples/sec") == steps_of(tmp_path) == [6, 11, 16, 21, 26]
    rates = values_of(tmp_path)
    examples = values_of(tmp_path, "examples/sec")
    assert examples[:2] == [0.0, 0.0]
    # Steps 12..16 hold one counted batch (16), steps 17..21 five.
    assert examples[2] == pytest.approx(2 / 5 * rates[2], rel=1e-5)
    assert examples[3] == pytest.approx(2 * rates[3], rel=1e-5)


def test_options_are_the_shared_validated_object():
    counter = GraphStepCounter(every_n_steps=50, batch_size=8, log=False,
                               flops_per_step=1e9, peak_flops_per_sec=1e12)
    assert counter.options == RecorderOptions(
        every_n_steps=50, batch_size=8, flops_per_step=1e9, peak_flops_per_sec=1e12)


def test_differences_from_step_counter_on_purpose(tmp_path, capfd):
    """What the graph counter does differently from StepCounter, by design:
    it logs with tf.print to stderr (a graph cannot call Python's logger),
    and it returns the rate (NaN when nothing was recorded)."""
    counter = GraphStepCounter(every_n_steps=2, output_dir=str(tmp_path))
    results = [float(counter(s)) for s in (1, 2, 3)]
    assert math.isnan(results[0]) and math.isnan(results[1])
    assert results[2] == pytest.approx(values_of(tmp_path)[0], rel=1e-6)
    assert capfd.readouterr().err.startswith("global_step/sec: ")


# The private attribute the per-call cost relies on. -----------------------------


def test_trigger_is_a_never_inlined_function_in_the_callers_graph(tmp_path):
    # one_op_function relies on TensorFlow's private `_noinline` function
    # attribute; if TensorFlow stops carrying it into the caller's graph,
    # this fails (and benchmarks/graph_step_counter.py shows the cost).
    counter = GraphStepCounter(every_n_steps=10, output_dir=str(tmp_path), log=False)

    @tf.function
    def call(step):
        return counter(step)

    graph_def = call.get_concrete_function(tf.TensorSpec([], tf.int64)).graph.as_graph_def()
    noinline = [f.signature.name for f in graph_def.library.function
                if f.attr["_noinline"].b]
    assert len(noinline) == 1 and "_trigger" in noinline[0]
    callers = [node for f in graph_def.library.function for node in f.node_def
               if node.op in ("StatefulPartitionedCall", "PartitionedCall")
               and node.attr["f"].func.name == noinline[0]]
    assert len(callers) == 1  # One call node in the due branch.
