"""StepCounter under tf.distribute: who writes, and what is counted.

MirroredStrategy (two logical CPU devices) is checked in `test_flavours.py`,
whose subprocesses configure the devices before TensorFlow starts.
"""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import steps_of

import keras_stepcounter
from keras_stepcounter._distribute import (
    _tf_config_says_chief,
    chief_decision,
    is_chief,
    tf_config_decision,
)
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
    assert _tf_config_says_chief(config) is expected


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
        "no log line. The chief records the global steps/sec for the whole job."
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
