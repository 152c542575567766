"""StepCounter in jobs of several processes: who writes, what is counted,
and how each process reports a hang.

Real jobs run in subprocesses: two `MultiWorkerMirroredStrategy` workers
(`multiworker_script.py`) and two JAX processes (`jax_multiprocess_script.py`).
MirroredStrategy (two logical CPU devices, `examples/sec` at the global batch)
is checked in `test_flavours.py`, whose subprocesses configure the devices
before TensorFlow starts.
"""

import json
import logging
import os
import threading
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import steps_of

import keras_stepcounter
from keras_stepcounter._distribute import (
    chief_decision,
    is_chief,
    jax_process,
    process_label,
    tf_config_decision,
)
from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.recorder import Recorder
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.timer import SecondOrStepTimer
from keras_stepcounter.core.watchdog import _Watch
from keras_stepcounter.core.watchdog import StallWatchdog
from keras_stepcounter.tools.events import event_files, read_scalars

REPO = Path(__file__).resolve().parents[1]
WORKER_SCRIPT = REPO / "tests" / "multiworker_script.py"
TIME_LIMIT_SECS = 240


def tf_config(task_type, index, chief=False, workers=2, master=False):
    cluster = {"worker": [f"127.0.0.1:{9000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:8999"]
    if master:  # The Estimator-era name of the chief.
        cluster["master"] = ["127.0.0.1:8998"]
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, True),
        ("", True),
        (json.dumps({"cluster": {"worker": ["a:1"]}}), True),  # No task.
        (tf_config("worker", 0), True),
        (tf_config("worker", 1), False),
        (tf_config("worker", 0, chief=True), False),
        (tf_config("chief", 0, chief=True), True),
        (tf_config("evaluator", 0), True),
        (tf_config("ps", 0), False),
        ("{not json", True),
        (tf_config("master", 0, master=True), True),
        (tf_config("worker", 0, master=True), False),
        (tf_config("worker", 1, master=True), False),
        # A launcher that sets only the task, as some Estimator-era ones do.
        (json.dumps({"task": {"type": "master", "index": 0}}), True),
    ],
)
def test_tf_config_names_the_chief_as_tensorflow_does(config, expected):
    assert tf_config_decision(config).is_chief is expected


@pytest.mark.parametrize(
    "config, reason",
    [
        (tf_config("worker", 1), 'TF_CONFIG names this task "worker" 1; with no '
                                 '"chief" task in the cluster, worker 0 is the chief'),
        (tf_config("worker", 0, chief=True),
         'TF_CONFIG names this task "worker" 0, and the cluster\'s chief is its "chief" task'),
        (tf_config("worker", 0, master=True),
         'TF_CONFIG names this task "worker" 0, and the cluster\'s chief is its "master" task'),
        (tf_config("ps", 0), 'TF_CONFIG names this task "ps" 0, which is never the chief'),
    ],
)
def test_not_the_chief_says_why(config, reason):
    assert tf_config_decision(config).reason == reason
    assert not tf_config_decision(config)


def test_not_the_chief_warns_once_per_decision_saying_why(monkeypatch, tf_log):
    monkeypatch.setenv("TF_CONFIG", tf_config("worker", 1))
    assert is_chief() is False
    warnings = [m for level, m in tf_log.messages if level == logging.WARNING]
    assert warnings == [
        "keras_stepcounter: this process is not the chief of its job (TF_CONFIG "
        'names this task "worker" 1; with no "chief" task in the cluster, worker 0 '
        "is the chief), so the step counter records nothing here: no event file, "
        "no rate or goodput line (with stall_secs, its stall watchdog still warns "
        "here). The chief records the global steps/sec for the whole job."
    ]
    assert chief_decision().reason in warnings[0]  # chief_decision itself is quiet.
    assert len([m for level, m in tf_log.messages if level == logging.WARNING]) == 1


def test_the_chief_does_not_warn(monkeypatch, tf_log):
    monkeypatch.setenv("TF_CONFIG", tf_config("master", 0, master=True))
    assert is_chief() is True
    assert [m for level, m in tf_log.messages if level == logging.WARNING] == []


def test_strategy_that_does_not_save_summaries_is_named(monkeypatch):
    class Extended:
        should_save_summary = False

    class FakeWorkerStrategy:
        extended = Extended()

    class Model:
        distribute_strategy = FakeWorkerStrategy()

    monkeypatch.delenv("TF_CONFIG", raising=False)
    decision = chief_decision(Model())
    assert not decision
    assert decision.reason.startswith("its tf.distribute strategy, FakeWorkerStrategy,")


def test_master_task_records_in_a_single_process_fit(
        monkeypatch, make_model, tiny_data, tmp_path, tf_log):
    # Issue 13 item 10: a launcher setting the Estimator-era "master" task.
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"master": ["127.0.0.1:8998"]}, "task": {"type": "master", "index": 0}}))
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path))
    make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert steps_of(tmp_path) == [11, 21]
    assert not [m for _, m in tf_log.messages if "not the chief" in m]


def test_without_strategy_or_tf_config_the_process_is_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief() is True


@pytest.mark.parametrize("task_index, writes", [(0, True), (1, False)])
def test_only_the_chief_records_in_fit(
    monkeypatch, make_model, tiny_data, tmp_path, tf_log, task_index, writes
):
    monkeypatch.setenv("TF_CONFIG", tf_config("worker", task_index))
    x, y = tiny_data
    model = make_model()
    reads = []

    def counted_step():
        reads.append(int(model.optimizer.iterations))
        return reads[-1]

    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=str(tmp_path), step_source=counted_step,
        time_to_first_step=True,
    )
    history = model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])

    log_lines = [m for _, m in tf_log.messages if m.startswith("global_step/sec")]
    if writes:
        assert steps_of(tmp_path) == [11, 21]
        assert len(log_lines) == 2
        assert "steps_per_sec" in history.history
    else:  # Nothing visible, and the step counter is never even read.
        assert event_files(str(tmp_path)) == []
        assert log_lines == []
        assert "steps_per_sec" not in history.history
        assert reads == []
    not_chief = [m for _, m in tf_log.messages if "is not the chief" in m]
    assert len(not_chief) == (0 if writes else 1)  # Said once, with why.


# JAX processes: asked only when JAX is imported and in use. ----------------


class FakeJax:
    """What `jax_process` reads of `jax`; counts the questions it is asked."""

    def __init__(self, index, count, initialized=True):
        self.index, self.count, self.asked = index, count, 0
        self.distributed = types.SimpleNamespace(is_initialized=lambda: initialized)

    def process_count(self):
        self.asked += 1
        return self.count

    def process_index(self):
        self.asked += 1
        return self.index


@pytest.fixture
def no_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)


@pytest.mark.parametrize("index, writes", [(0, True), (1, False)])
def test_only_jax_process_0_writes(monkeypatch, no_tf_config, index, writes):
    monkeypatch.setitem(sys.modules, "jax", FakeJax(index, 2))
    decision = chief_decision()
    assert decision.is_chief is writes
    assert decision.reason == (
        "JAX process 0 of 2" if writes else "it is JAX process 1 of 2; process 0 writes"
    )
    assert process_label() == f"JAX process {index} of 2"


def test_a_jax_process_that_does_not_write_warns_once_saying_why(
        monkeypatch, no_tf_config, tf_log):
    monkeypatch.setitem(sys.modules, "jax", FakeJax(3, 4))
    assert is_chief() is False
    [warning] = [m for level, m in tf_log.messages if level == logging.WARNING]
    assert "(it is JAX process 3 of 4; process 0 writes)" in warning


def test_one_jax_process_leaves_the_decision_to_tf_distribute(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", FakeJax(0, 1))
    monkeypatch.setenv("TF_CONFIG", tf_config("worker", 1))
    assert jax_process() is None
    assert chief_decision().reason.startswith('TF_CONFIG names this task "worker" 1')
    assert process_label() == "worker 1 (TF_CONFIG)"


def test_jax_is_never_imported_to_decide(monkeypatch, no_tf_config):
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    assert chief_decision().is_chief and process_label() is None
    assert "jax" not in sys.modules


def test_jax_imported_but_not_in_use_is_not_asked(monkeypatch, no_tf_config):
    # Keras runs on TensorFlow here; asking JAX would start its backends.
    fake = FakeJax(1, 2, initialized=False)
    monkeypatch.setitem(sys.modules, "jax", fake)
    assert chief_decision().is_chief and process_label() is None
    assert fake.asked == 0


def test_a_jax_that_cannot_answer_is_one_process(monkeypatch, no_tf_config):
    fake = FakeJax(1, 2)
    fake.process_count = lambda: (_ for _ in ()).throw(RuntimeError("no backend"))
    monkeypatch.setitem(sys.modules, "jax", fake)
    assert jax_process() is None and chief_decision().is_chief


@pytest.mark.parametrize(
    "config, label",
    [
        (None, None),
        (tf_config("worker", 1), "worker 1 (TF_CONFIG)"),
        (tf_config("chief", 0, chief=True), "chief 0 (TF_CONFIG)"),
        (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}),
         None),  # A cluster of one: a single process.
        (json.dumps({"task": {"type": "master", "index": 0}}), None),
        ("{not json", None),
    ],
)
def test_process_label_names_the_tf_config_task(monkeypatch, config, label):
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config)
    assert process_label() == label


# The watchdog names its process; a process that does not write still watches.


class ListSink:
    def __init__(self):
        self.records, self.flushes = [], 0

    def write(self, step, scalars):
        self.records.append((step, dict(scalars)))
        return True

    def flush(self):
        self.flushes += 1


def _non_writing_run(clock, **instruments):
    sink = ListSink()
    rates = RateTracker(SecondOrStepTimer(every_steps=10, clock=clock), batch_size=8)
    recorder = Recorder(rates, sink, clock, time_to_first_step=True, **instruments)
    step = [0]
    reads = []

    def read():
        reads.append(step[0])
        return step[0]

    recorder.begin_run(RunSource(read=read))
    recorder.set_writing(False)
    recorder.begin_steps()
    return recorder, sink, step, reads


def test_a_process_that_does_not_write_still_times_and_watches(fake_clock, tf_log):
    recorder, sink, step, reads = _non_writing_run(
        fake_clock, stall_secs=1000.0, goodput=True)
    watchdog = recorder._watchdog
    for _ in range(15):
        fake_clock.advance(0.25)
        step[0] += 1
        recorder.batch_end()
    assert watchdog.running  # Started with the run, as in the writer.
    watchdog.stop()  # The test plays its thread (poll() by hand) from here.
    watchdog._watch = _Watch(threading.get_ident(), None)
    fake_clock.advance(1500.0)
    assert watchdog.poll()  # The hang is reported here too...
    fake_clock.advance(0.25)
    step[0] += 1
    recorder.batch_end()  # ...and its end read at once.
    recorder.end_run()
    assert reads == [0, 1, 11, 16, 16]
    assert sink.records == []  # No rate, time_to_first_step, stall_secs or ledger.
    messages = [m for _, m in tf_log.messages]
    assert messages[0].startswith("keras_stepcounter: no training step has ended for 1500.0 s")
    assert messages[1] == (
        "keras_stepcounter: training resumed after a 1500.2 s stall, at global step 16."
    )
    assert len(messages) == 2  # No rate line, no goodput line.
    assert not watchdog.running


def test_a_process_that_does_not_write_nor_watch_goes_idle(fake_clock, tf_log):
    recorder, sink, step, reads = _non_writing_run(fake_clock)
    for _ in range(30):
        fake_clock.advance(0.25)
        step[0] += 1
        recorder.batch_end()
    recorder.end_run()
    assert reads == [] and sink.records == [] and tf_log.messages == []


@pytest.mark.parametrize("task_index, writes", [(0, True), (1, False)])
def test_every_worker_warns_of_its_own_stall_naming_itself(
    monkeypatch, make_model, tiny_data, tmp_path, tf_log, keras, task_index, writes
):
    monkeypatch.setenv("TF_CONFIG", tf_config("worker", task_index))
    x, y = tiny_data

    def wait_in_user_code():
        time.sleep(1.5)  # Three times stall_secs.

    class Hang(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 14:
                wait_in_user_code()

    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=str(tmp_path), stall_secs=0.5, goodput=True)
    history = make_model().fit(
        x, y, batch_size=4, verbose=0, callbacks=[counter, Hang()])

    warnings = [m for level, m in tf_log.messages
                if level == logging.WARNING and "no training step has ended" in m]
    assert warnings, tf_log.messages
    for warning in warnings:  # A loaded machine may add a stall: each is named.
        assert warning.startswith(
            f"keras_stepcounter: no training step has ended in worker {task_index} "
            "(TF_CONFIG) for ")
    assert any("in wait_in_user_code" in warning for warning in warnings)
    assert f"training resumed in worker {task_index} (TF_CONFIG) after a " in "\n".join(
        m for _, m in tf_log.messages)
    rate_lines = [m for _, m in tf_log.messages if m.startswith("global_step/sec")]
    goodput_lines = [m for _, m in tf_log.messages if m.startswith("goodput:")]
    if writes:
        assert steps_of(tmp_path) == [11, 21]
        assert 16 in steps_of(tmp_path, "stall_secs")
        assert len(rate_lines) == 2 and len(goodput_lines) == 1
        assert "steps_per_sec" in history.history
    else:
        assert event_files(str(tmp_path)) == []
        assert rate_lines == [] and goodput_lines == []
        assert "steps_per_sec" not in history.history


# A real two-worker job. ---------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_workers(mode, log_dir, env_extra):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_USE_LEGACY_KERAS", None)
        env.update(env_extra)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        processes.append(subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), mode, str(log_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    return processes


def finish(processes, deadline):
    """(returncode, stdout, stderr) per process; kills all past the deadline."""
    outcomes = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outcomes.append((process.returncode, out, err))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
            process.communicate()
        pytest.fail(f"the workers did not finish within {TIME_LIMIT_SECS} s")
    return outcomes


@pytest.fixture(scope="module")
def two_worker_runs(tmp_path_factory):
    """Both jobs (tf_keras fit, Keras 3 custom loop) at once: they mostly wait."""
    jobs = {
        "fit": {"TF_USE_LEGACY_KERAS": "1"},
        "loop": {},
    }
    started = {}
    for mode, env_extra in jobs.items():
        log_dir = tmp_path_factory.mktemp(f"multiworker_{mode}")
        started[mode] = (log_dir, start_workers(mode, log_dir, env_extra))
    deadline = time.monotonic() + TIME_LIMIT_SECS
    return {
        mode: (log_dir, finish(processes, deadline))
        for mode, (log_dir, processes) in started.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fit", "loop"])
def test_two_workers_only_the_chief_writes_and_logs(two_worker_runs, mode):
    log_dir, outcomes = two_worker_runs[mode]
    for returncode, _, err in outcomes:
        assert returncode == 0, err[-4000:]
    results = [
        json.loads(line[len("RESULTS "):])
        for _, out, _ in outcomes
        for line in out.splitlines() if line.startswith("RESULTS ")
    ]
    chief, other = sorted(results, key=lambda r: r["task_index"])
    assert chief["iterations"] == other["iterations"] == 30

    # Exactly one event file in the whole log tree, written by the chief.
    files = [p for p in Path(log_dir).rglob("*") if "tfevents" in p.name]
    assert len(files) == 1
    assert f".{chief['pid']}." in files[0].name
    scalars = read_scalars(str(log_dir))
    rates = scalars["global_step/sec"]
    assert [r.step for r in rates] == [11, 21]
    # Examples are global: the global batch of 8, not a worker's 4.
    examples = scalars["examples/sec"]
    for rate, example_rate in zip(rates, examples):
        assert example_rate.value == pytest.approx(8 * rate.value, rel=1e-6)

    chief_err, other_err = outcomes[0][2], outcomes[1][2]  # Task 0, task 1.
    assert chief_err.count("global_step/sec: ") == 2
    assert "global_step/sec" not in other_err
    if mode == "fit":
        assert "steps_per_sec" in chief["epoch_logs"]
        assert "steps_per_sec" not in other["epoch_logs"]


# A real two-process JAX job. ------------------------------------------------

JAX_SCRIPT = REPO / "tests" / "jax_multiprocess_script.py"
JAX_TIME_LIMIT_SECS = 120


@pytest.fixture(scope="module")
def jax_job(tmp_path_factory):
    """Two JAX processes on 127.0.0.1; process 1 hangs 3 s after step 15."""
    log_dir = tmp_path_factory.mktemp("jax_two_processes")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    for name in ("TF_USE_LEGACY_KERAS", "TF_CONFIG", "JAX_PLATFORMS"):
        env.pop(name, None)
    processes = [
        subprocess.Popen(
            [sys.executable, str(JAX_SCRIPT), str(port), str(index), str(log_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index in range(2)
    ]
    outcomes = finish(processes, time.monotonic() + JAX_TIME_LIMIT_SECS)
    for returncode, _, err in outcomes:
        assert returncode == 0, err[-4000:]
    results = [
        json.loads(line[len("RESULTS "):])
        for _, out, _ in outcomes
        for line in out.splitlines() if line.startswith("RESULTS ")
    ]
    return log_dir, results, [err for _, _, err in outcomes]


def stall_warnings(log):
    """Each stall warning of a process's log: its first line and its stack."""
    blocks = []
    for line in log.splitlines():
        if "keras_stepcounter: no training step has ended" in line:
            blocks.append([line])
        elif blocks and line.startswith("  "):
            blocks[-1].append(line)
    return ["\n".join(block) for block in blocks]


def test_jax_two_processes_record_each_step_once(jax_job):
    log_dir, results, logs = jax_job
    assert [(r["process_index"], r["process_count"], r["iterations"]) for r in results] == [
        (0, 2, 30), (1, 2, 30)]
    writer, other = results

    # One event file in the whole log tree, written by process 0.
    files = [p for p in Path(log_dir).rglob("*") if "tfevents" in p.name]
    assert len(files) == 1 and f".{writer['pid']}." in files[0].name
    scalars = read_scalars(str(log_dir))
    rates = scalars["global_step/sec"]
    assert [r.step for r in rates] == [11, 21]  # Global steps, each once.
    examples = scalars["examples/sec"]  # The global batch of 8, not a process's 4.
    assert [e.step for e in examples] == [11, 21]
    for rate, example_rate in zip(rates, examples):
        assert example_rate.value == pytest.approx(8 * rate.value, rel=1e-6)
    assert [r.step for r in scalars["time_to_first_step"]] == [1]
    assert [r.step for r in scalars["goodput/total_secs"]] == [30]
    stall_steps = [r.step for r in scalars["stall_secs"]]
    assert stall_steps.count(16) == 1 and len(set(stall_steps)) == len(stall_steps)

    writer_log, other_log = logs
    assert writer_log.count("global_step/sec: ") == 2
    assert writer_log.count("goodput: ") == 1
    assert "global_step/sec" not in other_log and "goodput: " not in other_log
    assert "(it is JAX process 1 of 2; process 0 writes)" in other_log
    assert "is not the chief" not in writer_log
    assert "steps_per_sec" in writer["epoch_logs"]
    assert "steps_per_sec" not in other["epoch_logs"]


def test_jax_hang_is_reported_by_every_process_naming_itself(jax_job):
    _, _, logs = jax_job
    for index, log in enumerate(logs):
        warnings = stall_warnings(log)
        assert warnings, log[-4000:]
        for warning in warnings:
            assert warning.startswith(
                "WARNING:tensorflow:keras_stepcounter: no training step has ended in "
                f"JAX process {index} of 2 for ")
        assert f"training resumed in JAX process {index} of 2 after a " in log
    # Each stack is its own process's: the straggler's shows where it hangs;
    # process 0, waiting for it inside the training step, never shows that.
    straggler = [w for w in stall_warnings(logs[1]) if "in hang_in_user_code" in w]
    assert straggler and "time.sleep(seconds)" in straggler[0]
    assert "hang_in_user_code" not in logs[0]
