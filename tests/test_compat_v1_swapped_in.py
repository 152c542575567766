"""compat.v1 swapped in for TensorFlow's own classes, as TF1 code uses them.

Each test puts our `StepCounterHook` and `SecondOrStepTimer` where TF1 code
finds TensorFlow's (`tensorflow.python.training.basic_session_run_hooks`,
from which `MonitoredTrainingSession` builds its step counter), drives them
the way TensorFlow's own tests drive TF's (`time.time` patched with
`mock.patch.object`, `tf_logging` functions patched, `_HookedSession`), and
checks each behaviour those tests check, beside TF's classes as the oracle
wherever both can run on the same input.
"""

import glob
import os
import time
from unittest import mock

import pytest
import tensorflow as tf
from tensorflow.python.platform import tf_logging
from tensorflow.python.summary import summary_iterator
from tensorflow.python.training import basic_session_run_hooks, monitored_session

from keras_stepcounter.compat import v1

# TensorFlow's classes, taken before any test swaps ours in.
TF_HOOK = basic_session_run_hooks.StepCounterHook
TF_TIMER = basic_session_run_hooks.SecondOrStepTimer
START = 1_500_000_000.25  # A realistic time.time() value to start from.


def swap_in(monkeypatch):
    """Ours in TensorFlow's place, for the rest of the test.

    TensorFlow's classes find each other through the module (TF's hook
    builds `SecondOrStepTimer(...)`, TF's timer calls
    `super(SecondOrStepTimer, self)`), so an oracle object is built before
    the swap, or it would be half ours.
    """
    monkeypatch.setattr(basic_session_run_hooks, "StepCounterHook", v1.StepCounterHook)
    monkeypatch.setattr(basic_session_run_hooks, "SecondOrStepTimer", v1.SecondOrStepTimer)
    return basic_session_run_hooks


@pytest.fixture
def swapped(monkeypatch):
    """Ours in TensorFlow's place, for the length of a test."""
    return swap_in(monkeypatch)


@pytest.fixture
def mock_time():
    with mock.patch.object(time, "time") as patched:
        patched.return_value = START
        yield patched


class RecordingWriter:
    """A v1 writer that keeps what it is given, by step."""

    def __init__(self):
        self.summaries = {}
        self.flushes = 0

    def add_summary(self, summary, global_step):
        values = [(value.tag, value.simple_value) for value in summary.value]
        self.summaries.setdefault(int(global_step), []).extend(values)

    def flush(self):
        self.flushes += 1


def drive(hooks, runs, increment=1, before_each_run=None, make_step=None):
    """`runs` runs of a train op adding `increment` to the global step, with
    `hooks` on a `_HookedSession`, as TensorFlow's hook tests drive hooks."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        if make_step is None:
            tf.compat.v1.train.get_or_create_global_step()
        else:
            make_step()
        from tensorflow.python.training import training_util

        train_op = training_util._increment_global_step(increment)
        for hook in hooks:
            hook.begin()
        session.run(tf.compat.v1.global_variables_initializer())
        hooked = monitored_session._HookedSession(session, hooks)
        for _ in range(runs):
            if before_each_run is not None:
                before_each_run()
            hooked.run(train_op)
        for hook in hooks:
            hook.end(session)


def twin_writers_and_hooks(monkeypatch, **kwargs):
    """(ours, theirs) writers and hooks with the same arguments; ours built
    through the swapped-in name, as MonitoredTrainingSession builds it."""
    writers = RecordingWriter(), RecordingWriter()
    theirs = TF_HOOK(summary_writer=writers[1], **kwargs)
    ours = swap_in(monkeypatch).StepCounterHook(summary_writer=writers[0], **kwargs)
    return writers, (ours, theirs)


# The timer. -----------------------------------------------------------------


def test_swapped_in_names_are_ours(swapped):
    assert swapped.StepCounterHook is v1.StepCounterHook
    assert swapped.SecondOrStepTimer is v1.SecondOrStepTimer


@pytest.mark.parametrize("kwargs", [{}, {"every_secs": 2.0, "every_steps": 10}])
def test_timer_needs_exactly_one_of_secs_and_steps(swapped, kwargs):
    with pytest.raises(ValueError):
        swapped.SecondOrStepTimer(**kwargs)


def test_timer_every_secs_follows_patched_time_like_tensorflows(monkeypatch, mock_time):
    theirs = TF_TIMER(every_secs=1.0)
    timers = swap_in(monkeypatch).SecondOrStepTimer(every_secs=1.0), theirs
    script = [("due", 1), ("trigger", 1), ("due", 1), ("due", 2), ("wait", 1.0),
              ("due", 1), ("due", 2), ("trigger", 2), ("wait", 0.5), ("due", 3)]
    traces = []
    for timer in timers:
        mock_time.return_value = START
        trace = []
        for action, value in script:
            if action == "wait":
                mock_time.return_value += value
            elif action == "due":
                trace.append(timer.should_trigger_for_step(value))
            else:
                trace.append(timer.update_last_triggered_step(value))
        traces.append(trace)
    assert traces[0] == traces[1] == [
        True, (None, None), False, False, False, True, (1.0, 1), False]


def test_timer_every_steps(swapped):
    timer = swapped.SecondOrStepTimer(every_steps=3)
    assert timer.should_trigger_for_step(1)
    timer.update_last_triggered_step(1)
    assert [timer.should_trigger_for_step(s) for s in (1, 2, 3, 4)] == [
        False, False, False, True]


def test_timer_elapsed_time_and_steps_from_the_real_clock(swapped):
    timer = swapped.SecondOrStepTimer(every_steps=1)
    assert timer.update_last_triggered_step(1) == (None, None)
    for step, steps in ((5, 4), (7, 2)):
        time.sleep(0.001)
        elapsed_secs, elapsed_steps = timer.update_last_triggered_step(step)
        assert elapsed_secs > 0 and elapsed_steps == steps


# The hook, on a _HookedSession. -----------------------------------------------


def test_every_n_steps_same_records_as_tensorflows_and_no_warning(monkeypatch, mock_time):
    writers, hooks = twin_writers_and_hooks(monkeypatch, every_n_steps=10)

    def tick():
        mock_time.return_value += 0.01

    with mock.patch.object(tf_logging, "warning") as warning:
        drive(hooks, 30, before_each_run=tick)
    assert warning.call_args is None
    # Two hooks read one patched clock: 10 steps in 0.1 s, 100 steps/sec.
    assert writers[0].summaries == writers[1].summaries
    assert sorted(writers[0].summaries) == [11, 21]
    for step in (11, 21):
        ((tag, value),) = writers[0].summaries[step]
        assert tag == "global_step/sec" and value == pytest.approx(100.0)


def test_every_n_secs_records_where_the_patched_clock_says(monkeypatch, mock_time):
    writers, hooks = twin_writers_and_hooks(monkeypatch, every_n_steps=None, every_n_secs=0.1)
    waits = iter([0.0, 0.2, 0.2])

    def wait():
        mock_time.return_value += next(waits)

    drive(hooks, 3, before_each_run=wait)
    assert writers[0].summaries == writers[1].summaries
    assert sorted(writers[0].summaries) == [2, 3]
    for step in (2, 3):
        ((tag, value),) = writers[0].summaries[step]
        assert tag == "global_step/sec" and value == pytest.approx(5.0)


def test_tag_is_the_global_step_op_name(monkeypatch):
    def bar_foo():
        with tf.compat.v1.variable_scope("bar"):
            tf.compat.v1.get_variable(
                "foo", initializer=0, trainable=False,
                collections=[tf.compat.v1.GraphKeys.GLOBAL_STEP,
                             tf.compat.v1.GraphKeys.GLOBAL_VARIABLES])

    writers, hooks = twin_writers_and_hooks(monkeypatch, every_n_steps=1, every_n_secs=None)
    drive(hooks, 2, make_step=bar_foo)
    for writer in writers:
        assert list(writer.summaries) == [2]
        assert [tag for tag, _ in writer.summaries[2]] == ["bar/foo/sec"]
    assert hooks[0]._summary_tag == hooks[1]._summary_tag == "bar/foo/sec"


def test_stalled_step_warns_through_tf_logging_log_first_n(swapped):
    hook = swapped.StepCounterHook(every_n_steps=1, every_n_secs=None)
    with mock.patch.object(tf_logging, "log_first_n") as log_first_n:
        drive([hook], 30, increment=0)
    assert log_first_n.call_count == 29  # Every run after the first.
    level, message, n, current, previous = log_first_n.call_args.args
    assert (level, n, current, previous) == (tf_logging.WARN, 5, 0, 0)
    assert "global step (tf.train.get_global_step) has not been increased" in message


def test_log_line_through_tf_logging_info(swapped, mock_time):
    def tick():
        mock_time.return_value += 0.25

    with mock.patch.object(tf_logging, "info") as info:
        drive([swapped.StepCounterHook(every_n_steps=4)], 9, before_each_run=tick)
    assert [call.args for call in info.call_args_list] == [
        ("%s: %g", "global_step/sec", 4.0)] * 2


@pytest.mark.parametrize(
    "every_n_steps, steps_per_run, expected",
    [(10, 5, [15, 25]), (5, 5, [10, 15, 20, 25]), (5, 10, [20, 30, 40, 50])],
)
def test_steps_per_run(monkeypatch, mock_time, every_n_steps, steps_per_run, expected):
    writers, hooks = twin_writers_and_hooks(monkeypatch, every_n_steps=every_n_steps)
    for hook in hooks:
        hook._set_steps_per_run(steps_per_run)

    def tick():
        mock_time.return_value += 0.01

    drive(hooks, 5, increment=steps_per_run, before_each_run=tick)
    assert writers[0].summaries == writers[1].summaries
    assert sorted(writers[0].summaries) == expected
    for step in expected:
        ((tag, value),) = writers[0].summaries[step]
        assert tag == "global_step/sec" and value > 0


def test_end_flushes_the_writer(swapped):
    writer = RecordingWriter()
    drive([swapped.StepCounterHook(every_n_steps=10, summary_writer=writer)], 3)
    assert writer.flushes == 1  # No record yet; end() flushed.


# Built by MonitoredTrainingSession. -------------------------------------------


def event_tags(log_dir):
    """Tags of the summaries in the newest event file of `log_dir`."""
    path = sorted(glob.glob(os.path.join(log_dir, "events.*")))[-1]
    return [event.summary.value[0].tag
            for event in summary_iterator.summary_iterator(path)
            if event.HasField("summary")]


@pytest.mark.parametrize("save_summaries", [{"save_summaries_steps": 100},
                                            {"save_summaries_steps": None,
                                             "save_summaries_secs": 0.1}])
def test_monitored_training_session_builds_ours_and_shares_its_writer(
        swapped, monkeypatch, tmp_path, save_summaries):
    built = []
    original_init = v1.StepCounterHook.__init__

    def spy(self, *args, **kwargs):
        built.append((type(self), kwargs))
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(v1.StepCounterHook, "__init__", spy)
    with tf.Graph().as_default():
        step = tf.compat.v1.train.get_or_create_global_step()
        next_step = tf.compat.v1.assign_add(step, 1)
        tf.compat.v1.summary.scalar("my_summary_tag", next_step * 2)
        with tf.compat.v1.train.MonitoredTrainingSession(
                is_chief=True, checkpoint_dir=str(tmp_path), log_step_count_steps=10,
                **save_summaries) as session:
            session.run(next_step)
            time.sleep(0.2)
            for _ in range(100):
                session.run(next_step)

    assert built == [(v1.StepCounterHook,
                      {"output_dir": str(tmp_path), "every_n_steps": 10})]
    tags = event_tags(str(tmp_path))
    assert "my_summary_tag" in tags  # The summary saver's, in the same file.
    assert tags.count("global_step/sec") == 10  # Steps 12, 22, ..., 102.


# A subclass written for TF1's hook. -----------------------------------------


def examples_per_second_hook(base):
    """The Estimator-era ExamplesPerSecondHook pattern, on `base`."""

    class ExamplesPerSecondHook(base):
        def __init__(self, batch_size, every_n_steps=100, every_n_secs=None,
                     output_dir=None, summary_writer=None):
            self._batch_size = batch_size
            super().__init__(every_n_steps=every_n_steps, every_n_secs=every_n_secs,
                             output_dir=output_dir, summary_writer=summary_writer)

        def _log_and_record(self, elapsed_steps, elapsed_time, global_step):
            steps_per_sec = elapsed_steps / elapsed_time
            examples_per_sec = self._batch_size * steps_per_sec
            if self._summary_writer is not None:
                for tag, value in ((self._summary_tag, steps_per_sec),
                                   ("examples/sec", examples_per_sec)):
                    summary = tf.compat.v1.Summary(
                        value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=value)])
                    self._summary_writer.add_summary(summary, global_step)
            tf_logging.info("examples/sec: %g", examples_per_sec)

    return ExamplesPerSecondHook


def test_subclass_overriding_log_and_record_works_like_on_tensorflows(mock_time):
    writers = RecordingWriter(), RecordingWriter()
    hooks = [examples_per_second_hook(base)(batch_size=32, every_n_steps=5,
                                            summary_writer=writer)
             for base, writer in zip((v1.StepCounterHook, TF_HOOK), writers)]

    def tick():
        mock_time.return_value += 0.5

    with mock.patch.object(tf_logging, "info") as info:
        drive(hooks, 11, before_each_run=tick)
    assert writers[0].summaries == writers[1].summaries == {
        6: [("global_step/sec", 2.0), ("examples/sec", 64.0)],
        11: [("global_step/sec", 2.0), ("examples/sec", 64.0)],
    }
    assert [call.args for call in info.call_args_list] == [
        ("examples/sec: %g", 64.0)] * 4  # Two records, two hooks.
    assert writers[0].flushes >= 2  # Ours flushes after each record.


def test_subclass_with_output_dir_gets_the_cached_writer_and_records_are_on_disk(
        tmp_path):
    hook = examples_per_second_hook(v1.StepCounterHook)(
        batch_size=8, every_n_steps=5, output_dir=str(tmp_path))
    seen = {}

    class Probe(tf.compat.v1.train.SessionRunHook):
        def end(self, session):  # Right after ours ended; nothing closed yet.
            seen["tags"] = event_tags(str(tmp_path))

    drive([hook, Probe()], 11)
    assert hook._summary_writer is tf.compat.v1.summary.FileWriterCache.get(str(tmp_path))
    assert hook._output_dir == str(tmp_path)
    assert seen["tags"] == ["global_step/sec", "examples/sec"] * 2
