"""compat.v1.StepCounterHook against TensorFlow's own hook (the oracle).

Both hooks run in the same `MonitoredSession`, on the same graph, in the
same run; their event directories are read back with TensorBoard's reader.
The oracle's `FileWriter` flushes only every 120 s, so its records are read
after flushing its cached writer (`oracle_records`).
"""

import logging
import math
import os
import time
import types

import pytest
import tensorflow as tf
from tensorflow.python.platform import tf_logging
from tensorflow.python.training import basic_session_run_hooks

import keras_stepcounter
from keras_stepcounter.compat import v1
from keras_stepcounter.compat.v1 import timer as v1_timer
from keras_stepcounter.tools.events import read_scalars

Oracle = tf.compat.v1.train.StepCounterHook
TAG = "global_step/sec"
# Where our log lines come from: the package itself, wherever it is installed
# (a path merely containing its name may be TensorFlow's, in a venv there).
PACKAGE_DIR = os.path.dirname(os.path.abspath(keras_stepcounter.__file__)) + os.sep


# Helpers. -----------------------------------------------------------------


def default_global_step():
    return tf.compat.v1.train.get_or_create_global_step()


def run_session(hooks, runs, steps_per_run=1, global_step=default_global_step,
                before_each_run=None):
    """Runs a train op adding `steps_per_run` to the global step `runs` times.

    The train op runs after the step read the hooks fetch (as in Estimator),
    so the stale step they see is always the one from before the run.
    """
    with tf.Graph().as_default():
        step = global_step()
        with tf.control_dependencies([v1.global_step_read()]):
            train_op = tf.compat.v1.assign_add(step, steps_per_run)
        with tf.compat.v1.train.MonitoredSession(hooks=hooks) as session:
            for i in range(runs):
                if before_each_run is not None:
                    before_each_run(i)
                session.run(train_op)


def records(run_dir, tag=TAG):
    return [(r.step, r.value) for r in read_scalars(str(run_dir)).get(tag, [])]


def oracle_records(run_dir, tag=TAG):
    """The oracle's records, after flushing the cached writer it used."""
    with tf.Graph().as_default():
        tf.compat.v1.summary.FileWriterCache.get(str(run_dir)).flush()
    return records(run_dir, tag)


def steps(recs):
    return [step for step, _ in recs]


def both_hooks(tmp_path, **kwargs):
    """The oracle and ours, same arguments, each with its own directory."""
    oracle = Oracle(output_dir=str(tmp_path / "oracle"), **kwargs)
    ours = v1.StepCounterHook(output_dir=str(tmp_path / "ours"), **kwargs)
    return oracle, ours


@pytest.fixture
def oracle_clock(monkeypatch, fake_clock):
    """Makes both hooks' timers read `fake_clock` instead of `time.time`
    (each looks `time.time` up in its module when called)."""
    fake_time = types.SimpleNamespace(time=fake_clock)
    monkeypatch.setattr(basic_session_run_hooks, "time", fake_time)
    monkeypatch.setattr(v1_timer, "time", fake_time)
    return fake_clock


class SourceCapture(logging.Handler):
    """TensorFlow-logger messages, split by which hook logged them."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = {"ours": [], "oracle": []}

    def emit(self, record):
        if os.path.abspath(record.pathname).startswith(PACKAGE_DIR):
            self.messages["ours"].append((record.levelno, record.getMessage()))
        elif record.pathname.endswith("basic_session_run_hooks.py"):
            self.messages["oracle"].append((record.levelno, record.getMessage()))


@pytest.fixture
def split_log(monkeypatch):
    # The oracle's log_first_n counts per process: start it from zero.
    monkeypatch.setattr(tf_logging, "_log_counter_per_token", {})
    logger = logging.getLogger("tensorflow")
    handler = SourceCapture()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(old_level)


# API. ---------------------------------------------------------------------


def test_aliases_mirror_tensorflow():
    assert keras_stepcounter.compat.v1.StepCounterHook is v1.StepCounterHook
    assert v1.train.StepCounterHook is v1.StepCounterHook
    assert v1.estimator.StepCounterHook is v1.StepCounterHook
    assert v1.train.SecondOrStepTimer is v1.SecondOrStepTimer
    assert v1.estimator.SecondOrStepTimer is v1.SecondOrStepTimer
    # The v1 timer is the shared one with TF1's clock (time.time at call time).
    assert issubclass(v1.SecondOrStepTimer, keras_stepcounter.core.timer.SecondOrStepTimer)
    assert issubclass(v1.StepCounterHook, tf.compat.v1.train.SessionRunHook)
    for method in ("begin", "after_create_session", "before_run", "after_run",
                   "end", "_set_steps_per_run"):
        assert callable(getattr(v1.StepCounterHook, method))


def test_timer_has_tensorflows_methods_and_messages():
    theirs = tf.compat.v1.train.SecondOrStepTimer
    public = {n for n in dir(theirs) if not n.startswith("_")}
    assert public <= set(dir(v1.SecondOrStepTimer))
    for kwargs in ({}, {"every_secs": 1, "every_steps": 1}):
        with pytest.raises(ValueError) as expected:
            theirs(**kwargs)
        with pytest.raises(ValueError, match=str(expected.value)):
            v1.SecondOrStepTimer(**kwargs)
    ours, tfs = v1.SecondOrStepTimer(every_steps=3), theirs(every_steps=3)
    trace = []
    for step in range(12):
        due = ours.should_trigger_for_step(step)
        assert due == tfs.should_trigger_for_step(step)
        if due:
            trace.append(step)
            ours.update_last_triggered_step(step)
            tfs.update_last_triggered_step(step)
            assert ours.last_triggered_step() == tfs.last_triggered_step() == step
    assert trace == [0, 3, 6, 9]


# Same records as the oracle. ----------------------------------------------


def test_every_n_steps_same_steps_tag_and_rates(tmp_path, split_log):
    oracle, ours = both_hooks(tmp_path, every_n_steps=10)
    # Real time: 20 ms a step, so both hooks time ~200 ms intervals.
    run_session([oracle, ours], 30, before_each_run=lambda i: time.sleep(0.02))

    mine, theirs = records(tmp_path / "ours"), oracle_records(tmp_path / "oracle")
    assert steps(mine) == steps(theirs) == [11, 21]
    assert list(read_scalars(str(tmp_path / "ours"))) == [TAG]
    for (_, value), (_, expected) in zip(mine, theirs):
        assert 0 < expected <= 50  # 10 steps take at least 10 sleeps of 20 ms
        assert value == pytest.approx(expected, rel=0.1)
    for source in ("ours", "oracle"):
        lines = [m for level, m in split_log[source] if level == logging.INFO]
        assert [line.split(": ")[0] for line in lines] == [TAG, TAG]


def test_fake_clock_gives_identical_records_and_log_lines(tmp_path, oracle_clock, split_log):
    oracle, ours = both_hooks(tmp_path, every_n_steps=4)
    run_session([oracle, ours], 13, before_each_run=lambda i: oracle_clock.advance(0.5))

    assert records(tmp_path / "ours") == oracle_records(tmp_path / "oracle")
    assert records(tmp_path / "ours") == [(5, 2.0), (9, 2.0), (13, 2.0)]
    assert split_log["ours"] == split_log["oracle"] == [(logging.INFO, f"{TAG}: 2")] * 3


def test_every_n_secs_real_sleeps_same_steps(tmp_path):
    oracle, ours = both_hooks(tmp_path, every_n_steps=None, every_n_secs=0.2)
    # Runs take ~1 ms; a 0.45 s pause before runs 4, 10 and 15 is the only
    # thing that can cross 0.2 s, so triggers land right after each pause.
    pauses = {4, 10, 15}
    run_session([oracle, ours], 20,
                before_each_run=lambda i: time.sleep(0.45) if i in pauses else None)

    mine, theirs = records(tmp_path / "ours"), oracle_records(tmp_path / "oracle")
    assert steps(mine) == steps(theirs) == [5, 11, 16]


def test_every_n_secs_fake_clock_same_records(tmp_path, oracle_clock):
    oracle, ours = both_hooks(tmp_path, every_n_steps=None,
                              every_n_secs=1.0)
    advances = [0.25] * 8 + [0.75, 0.5, 2.0, 0.125, 0.125, 0.5, 0.25]
    run_session([oracle, ours], len(advances),
                before_each_run=lambda i: oracle_clock.advance(advances[i]))

    mine = records(tmp_path / "ours")
    assert mine == oracle_records(tmp_path / "oracle")
    assert steps(mine) == [5, 9, 11, 15]
    assert [value for _, value in mine] == pytest.approx([4.0, 4 / 1.5, 0.8, 4.0])


@pytest.mark.parametrize(
    "steps_per_run, every_n_steps, expected",
    [(5, 10, [15, 25]), (5, 5, [10, 15, 20, 25]), (10, 5, [20, 30, 40, 50])],
)
def test_steps_per_run(tmp_path, oracle_clock, steps_per_run, every_n_steps, expected):
    oracle, ours = both_hooks(tmp_path, every_n_steps=every_n_steps)
    for hook in (oracle, ours):
        hook._set_steps_per_run(steps_per_run)
    run_session([oracle, ours], 5, steps_per_run=steps_per_run,
                before_each_run=lambda i: oracle_clock.advance(1.0))

    mine = records(tmp_path / "ours")
    assert mine == oracle_records(tmp_path / "oracle")
    assert steps(mine) == expected
    # Rates are in real steps: steps_per_run steps per (fake) second.
    assert all(value == steps_per_run for _, value in mine)


def test_tag_is_the_global_step_name(tmp_path):
    def bar_foo():
        with tf.compat.v1.variable_scope("bar"):
            return tf.compat.v1.get_variable(
                "foo", initializer=0, trainable=False,
                collections=[tf.compat.v1.GraphKeys.GLOBAL_STEP,
                             tf.compat.v1.GraphKeys.GLOBAL_VARIABLES])

    oracle, ours = both_hooks(tmp_path, every_n_steps=5)
    run_session([oracle, ours], 12, global_step=bar_foo)

    assert ours.tag == "bar/foo/sec"
    assert list(read_scalars(str(tmp_path / "ours"))) == ["bar/foo/sec"]
    assert steps(records(tmp_path / "ours", "bar/foo/sec")) == [6, 11]
    assert steps(oracle_records(tmp_path / "oracle", "bar/foo/sec")) == [6, 11]


def test_tag_keyword_overrides_the_global_step_name(tmp_path):
    ours = v1.StepCounterHook(
        every_n_steps=5, output_dir=str(tmp_path), tag="global_step/sec"
    )
    run_session([ours], 12)
    assert ours.tag == "global_step/sec"
    assert list(read_scalars(str(tmp_path))) == ["global_step/sec"]
    assert steps(records(tmp_path, "global_step/sec")) == [6, 11]


def test_both_hooks_fetch_the_same_step_read():
    oracle, ours = Oracle(), v1.StepCounterHook()
    with tf.Graph().as_default():
        default_global_step()
        oracle.begin()
        ours.begin()
        assert ours.before_run(None).fetches is oracle.before_run(None).fetches
        assert ours.before_run(None).fetches is v1.global_step_read()


def test_no_global_step_is_a_runtime_error_in_begin():
    for hook in (Oracle(every_n_steps=10), v1.StepCounterHook(every_n_steps=10)):
        with tf.Graph().as_default():
            tf.Variable(0, name="not_a_global_step")
            with pytest.raises(RuntimeError,
                               match="^Global step should be created to use StepCounterHook.$"):
                hook.begin()
            assert v1.global_step_read() is None


def warnings_of(messages):
    return [m for level, m in messages if level == logging.WARNING]


def test_stalled_global_step_warns_like_oracle_at_most_5_times(
        tmp_path, split_log, monkeypatch):
    # log_first_n counts per calling line, which for both hooks is the line
    # of MonitoredSession that calls after_run: in one session they would
    # share the 5. So each runs alone, from a fresh count.
    for hook in both_hooks(tmp_path, every_n_steps=1):
        monkeypatch.setattr(tf_logging, "_log_counter_per_token", {})
        run_session([hook], 9, steps_per_run=0)  # The step stays at 0.

    warnings = warnings_of(split_log["ours"])
    assert warnings == warnings_of(split_log["oracle"])
    assert len(warnings) == 5
    assert warnings[0].startswith(
        "It seems that global step (tf.train.get_global_step) has not been "
        "increased. Current value (could be stable): 0 vs previous value: 0."
    )
    assert records(tmp_path / "ours") == oracle_records(tmp_path / "oracle") == []


@pytest.mark.parametrize("source", ["ours", "oracle"])
def test_stall_warnings_count_per_process_as_in_v1(split_log, source):
    hook_class = v1.StepCounterHook if source == "ours" else Oracle
    for _ in range(2):
        run_session([hook_class(every_n_steps=1)], 8, steps_per_run=0)
    assert len(warnings_of(split_log[source])) == 5


# Writing: on disk when `end` returns. ---------------------------------------


class DiskProbe(tf.compat.v1.train.SessionRunHook):
    """Placed after both hooks: reads their directories as soon as they ended."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.seen = None

    def end(self, session):
        self.seen = {name: steps(records(self.tmp_path / name))
                     for name in ("ours", "oracle")}


@pytest.mark.parametrize("how", ["output_dir", "summary_writer"])
def test_records_are_on_disk_when_end_returns(tmp_path, how):
    probe = DiskProbe(tmp_path)
    with tf.Graph().as_default():
        train_op = tf.compat.v1.assign_add(default_global_step(), 1)
        if how == "output_dir":
            oracle, ours = both_hooks(tmp_path, every_n_steps=10)
        else:
            writers = {name: tf.compat.v1.summary.FileWriter(str(tmp_path / name))
                       for name in ("ours", "oracle")}
            oracle = Oracle(every_n_steps=10, summary_writer=writers["oracle"])
            ours = v1.StepCounterHook(every_n_steps=10, summary_writer=writers["ours"])
        with tf.compat.v1.train.MonitoredSession(hooks=[oracle, ours, probe]) as session:
            for _ in range(30):
                session.run(train_op)

    # The oracle's writer flushes the first event it gets (the graph, when
    # the hook opened it; else the first record), then only every 120 s.
    first_record_flushed = [11] if how == "summary_writer" else []
    assert probe.seen == {"ours": [11, 21], "oracle": first_record_flushed}
    # The oracle's records reach the disk only when its writer flushes.
    if how == "output_dir":
        assert steps(oracle_records(tmp_path / "oracle")) == [11, 21]
    else:
        writers["oracle"].flush()
        assert steps(records(tmp_path / "oracle")) == [11, 21]
        for writer in writers.values():
            writer.close()


def test_without_a_writer_only_logs(tmp_path, split_log):
    run_session([v1.StepCounterHook(every_n_steps=10)], 12)
    assert [m.split(": ")[0] for _, m in split_log["ours"]] == [TAG]


def test_write_failure_warns_once_and_training_goes_on(split_log):
    class BrokenWriter:
        def add_summary(self, summary, step):
            raise OSError("disk full")

    hook = v1.StepCounterHook(every_n_steps=5, summary_writer=BrokenWriter())
    with pytest.warns(RuntimeWarning, match="disk full") as caught:
        run_session([hook], 21)
    assert len([w for w in caught if w.category is RuntimeWarning]) == 1
    assert len(split_log["ours"]) == 4  # The log lines still come.


# Differences from the oracle, on purpose. -----------------------------------


class SlowWriter:
    """A v1 writer whose every write takes one second on `clock`."""

    def __init__(self, clock):
        self.clock = clock
        self.records = []

    def add_summary(self, summary, step):
        self.clock.advance(1.0)
        self.records.append((int(step), round(summary.value[0].simple_value, 4)))


def test_writing_is_not_charged_to_the_next_interval(oracle_clock):
    # Separate sessions: each writer's second must only be seen by its hook.
    writers = {"oracle": SlowWriter(oracle_clock), "ours": SlowWriter(oracle_clock)}
    run_session([Oracle(every_n_steps=4, summary_writer=writers["oracle"])], 13,
                before_each_run=lambda i: oracle_clock.advance(0.5))
    run_session([v1.StepCounterHook(every_n_steps=4, summary_writer=writers["ours"])], 13,
                before_each_run=lambda i: oracle_clock.advance(0.5))
    # 4 steps in 2 s; the oracle adds its 1 s write to the next interval.
    assert writers["oracle"].records == [(5, 2.0), (9, 1.3333), (13, 1.3333)]
    assert writers["ours"].records == [(5, 2.0), (9, 2.0), (13, 2.0)]


def test_zero_interval_records_nothing_where_oracle_records_inf(tmp_path, oracle_clock):
    # The fake clock never moves: no time elapses between triggers.
    oracle, ours = both_hooks(tmp_path, every_n_steps=2)
    with pytest.warns(RuntimeWarning, match="divide by zero"):  # numpy, in the oracle
        run_session([oracle, ours], 5)
    assert oracle_records(tmp_path / "oracle") == [(3, math.inf), (5, math.inf)]
    assert records(tmp_path / "ours") == []


def went_back_warnings(messages):
    return [m for level, m in messages
            if level == logging.WARNING and "went back" in m]


def test_step_going_back_records_nothing_where_oracle_records_negative(
        tmp_path, oracle_clock, split_log):
    # A global step that goes back one step a run while every_n_secs fires.
    oracle, ours = both_hooks(tmp_path, every_n_steps=None,
                              every_n_secs=1.0)
    run_session([oracle, ours], 5, steps_per_run=-1,
                before_each_run=lambda i: oracle_clock.advance(0.5))
    assert oracle_records(tmp_path / "oracle") == [(-4, -2.0)]
    assert records(tmp_path / "ours") == []
    # Ours sees it when the stale step is below its baseline (runs 3 and 5),
    # reads the real step and starts a new baseline there, saying so.
    warnings = went_back_warnings(split_log["ours"])
    assert len(warnings) == 2
    assert "the global step went back from -1 to -3" in warnings[0]
    assert "the global step went back from -3 to -5" in warnings[1]
    assert went_back_warnings(split_log["oracle"]) == []


def test_step_going_back_with_every_n_steps_starts_a_new_baseline(
        tmp_path, oracle_clock, split_log):
    # 25 runs, then the step is set back to 0 (a restore) and 35 runs more,
    # one fake second each. v1 waits for the step to pass its old baseline
    # (21) and then records 10 steps over 35 s; ours starts again at once.
    oracle, ours = both_hooks(tmp_path, every_n_steps=10)
    with tf.Graph().as_default():
        step = default_global_step()
        with tf.control_dependencies([v1.global_step_read()]):
            train_op = tf.compat.v1.assign_add(step, 1)
        restore = tf.compat.v1.assign(step, 0)
        with tf.compat.v1.train.MonitoredSession(hooks=[oracle, ours]) as session:
            for run in range(60):
                if run == 25:
                    session.run_step_fn(lambda step_context: step_context.session.run(restore))
                oracle_clock.advance(1.0)
                session.run(train_op)

    assert oracle_records(tmp_path / "oracle") == [
        (11, 1.0), (21, 1.0), (31, pytest.approx(10 / 35))]
    assert records(tmp_path / "ours") == [
        (11, 1.0), (21, 1.0), (11, 1.0), (21, 1.0), (31, 1.0)]
    (warning,) = went_back_warnings(split_log["ours"])
    assert "the global step went back from 21 to 1" in warning


def test_wall_clock_jump_back_records_nothing_where_oracle_records_negative(
        tmp_path, monkeypatch):
    # Both read time.time(), as v1 did; here it jumps back an hour after
    # run 15. The oracle records a negative rate at 21; ours records nothing
    # for that interval (SPEC section 3: never a silently wrong rate).
    runs = {"count": 0}
    real_time = time.time
    monkeypatch.setattr(
        time, "time", lambda: real_time() - (3600 if runs["count"] > 15 else 0))

    def tick(i):
        runs["count"] = i
        time.sleep(0.002)

    oracle, ours = both_hooks(tmp_path, every_n_steps=10)
    run_session([oracle, ours], 30, before_each_run=tick)
    theirs, mine = oracle_records(tmp_path / "oracle"), records(tmp_path / "ours")
    assert steps(theirs) == [11, 21] and theirs[1][1] < 0
    assert steps(mine) == [11]


# Arguments. -----------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"every_n_steps": None},
    {"every_n_secs": 5},  # every_n_steps defaults to 100: both given, as in v1.
    {"every_n_steps": 10, "every_n_secs": 5},
])
def test_exactly_one_of_is_the_oracles_value_error(kwargs):
    with pytest.raises(ValueError) as expected:
        Oracle(**kwargs)
    assert str(expected.value) == (
        "exactly one of every_n_steps and every_n_secs should be provided.")
    with pytest.raises(ValueError, match=f"^{str(expected.value)}$"):
        v1.StepCounterHook(**kwargs)


BAD_VALUES = [
    # (kwargs, the argument named, our error at construction); the oracle
    # accepts all of these at construction and misbehaves or fails later.
    ({"every_n_steps": 0}, "every_n_steps", ValueError),
    ({"every_n_steps": -1}, "every_n_steps", ValueError),
    ({"every_n_steps": math.nan}, "every_n_steps", ValueError),
    ({"every_n_steps": True}, "every_n_steps", ValueError),
    ({"every_n_steps": 2.5}, "every_n_steps", TypeError),
    ({"every_n_steps": None, "every_n_secs": 0}, "every_n_secs", ValueError),
    ({"every_n_steps": None, "every_n_secs": -1.0}, "every_n_secs", ValueError),
    ({"every_n_steps": None, "every_n_secs": math.nan}, "every_n_secs", ValueError),
    ({"every_n_steps": None, "every_n_secs": math.inf}, "every_n_secs", ValueError),
    ({"every_n_steps": None, "every_n_secs": True}, "every_n_secs", ValueError),
    ({"output_dir": 3}, "output_dir", TypeError),
    ({"summary_writer": "logs"}, "summary_writer", TypeError),
]


@pytest.mark.parametrize("kwargs, name, error", BAD_VALUES)
def test_bad_values_fail_at_construction_naming_the_argument(kwargs, name, error):
    Oracle(**kwargs)  # No error from the oracle here.
    with pytest.raises(error, match=name):
        v1.StepCounterHook(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"every_n_steps": "10"},
    {"every_n_steps": None, "every_n_secs": "1"},
])
def test_string_values_are_a_type_error_in_both(kwargs):
    with pytest.raises(TypeError, match="every_n_s"):
        v1.StepCounterHook(**kwargs)
    with pytest.raises(TypeError):  # The oracle only once it runs.
        run_session([Oracle(**kwargs)], 3)


def test_v2_summary_writer_is_refused_at_construction(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with pytest.raises(TypeError, match="summary_writer.*v2 tf.summary.SummaryWriter"):
        v1.StepCounterHook(every_n_steps=1, summary_writer=writer)
    with pytest.raises(AttributeError, match="add_summary"):  # The oracle, at run time.
        run_session([Oracle(every_n_steps=1, summary_writer=writer)], 3)


def test_output_dir_that_is_a_file(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ValueError, match="output_dir .* is not a directory"):
        v1.StepCounterHook(output_dir=str(a_file))
    with pytest.raises(tf.errors.FailedPreconditionError):  # The oracle, in begin.
        run_session([Oracle(output_dir=str(a_file))], 1)


def test_bad_steps_per_run():
    with pytest.raises(ValueError, match="steps_per_run"):
        v1.StepCounterHook()._set_steps_per_run(0)


# Tags exactly as given, whatever name scope is active. ----------------------


@pytest.mark.parametrize("tag, expected", [(None, "global_step/sec"),
                                           ("train/steps_per_sec", "train/steps_per_sec")])
def test_tag_ignores_the_active_name_scope(tmp_path, tag, expected):
    hook = v1.StepCounterHook(every_n_steps=5, output_dir=str(tmp_path), tag=tag)
    with tf.Graph().as_default():
        with tf.name_scope("experiment_1"):
            step = default_global_step()
            train_op = tf.compat.v1.assign_add(step, 1)
            with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as session:
                for _ in range(11):
                    session.run(train_op)
    assert hook.tag == expected
    assert list(read_scalars(str(tmp_path))) == [expected]
