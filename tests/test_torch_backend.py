"""StepCounter in Keras 3 on the PyTorch backend (`KERAS_BACKEND=torch`).

The backend is fixed when Keras is first imported, so `torch_checks.py`
runs every check in one fresh process (one TensorFlow and PyTorch start-up)
and reports JSON. PyTorch comes with the `torch` extra, which the README's
test command installs: a missing torch fails here, it is not skipped.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~15 s: TensorFlow and PyTorch start in a subprocess.

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "torch_checks.py"
STEP_SLEEP = 0.02  # torch_checks.STEP_SLEEP: each step takes at least this.


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="torch")
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path_factory.mktemp("torch"))],
        env=env, capture_output=True, text=True, timeout=240,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len("RESULTS "):])


def test_the_counter_runs_on_the_torch_backend_synchronously(results):
    assert results["backend"] == {
        "backend": "torch", "is_keras_callback": True, "async_with_counter": False,
    }


@pytest.mark.parametrize("slow_in", ["step", "data"])
def test_records_at_the_steps_of_the_other_backends(results, slow_in):
    # 2 epochs of 30 steps, every_n_steps=10: the baseline is step 1 (the
    # run's first step is its startup), records at 11, 21, ... as on TF/JAX.
    records = results[f"rate_{slow_in}"]["records"]
    assert [step for step, _ in records["global_step/sec"]] == [11, 21, 31, 41, 51]
    assert [step for step, _ in records["step_time/max"]] == [11, 21, 31, 41, 51]


def _wall_clock_rate(batch_ends, since, step):
    """Steps per second between the batch ends of global steps `since` and
    `step` by a callback's own perf_counter (global step n ends batch call n)."""
    return (step - since) / (batch_ends[step - 1] - batch_ends[since - 1])


@pytest.mark.parametrize("slow_in", ["step", "data"])
def test_rates_match_the_known_step_time_and_the_wall_clock(results, slow_in):
    # Each step sleeps STEP_SLEEP in a callback (inside the hooks) or in
    # PyDataset.__getitem__ (Keras fetches between one batch's end and the
    # next one's begin on this backend): either way the step takes it.
    run = results[f"rate_{slow_in}"]
    rates = run["records"]["global_step/sec"]
    # An epoch's first batch is fetched before its first step begins (in the
    # epoch boundary), so in the data run an interval of 10 steps holding
    # an epoch's first step has only 9 sleeps in it.
    fastest = 1 / STEP_SLEEP if slow_in == "step" else 10 / (9 * STEP_SLEEP)
    for _, rate in rates:
        assert 0.5 / STEP_SLEEP <= rate <= fastest, rates
    # Records within an epoch (11 from 1, 21 from 11; 41, 51) against the
    # wall clock; 31 spans the epoch end, whose pause the counter leaves out.
    for since, step in ((1, 11), (11, 21), (31, 41), (41, 51)):
        truth = _wall_clock_rate(run["batch_ends"], since, step)
        assert dict(rates)[step] == pytest.approx(truth, rel=0.05), (step, truth, rates)
    epoch_rates = run["steps_per_sec"]
    assert len(epoch_rates) == 2
    for rate in epoch_rates:
        assert 0.5 / STEP_SLEEP <= rate <= fastest, epoch_rates


@pytest.mark.parametrize("slow_in", ["step", "data"])
def test_the_ledger_adds_up_and_books_the_steps(results, slow_in):
    records = results[f"rate_{slow_in}"]["records"]
    ledger = {tag.split("/")[1]: values for tag, values in records.items()
              if tag.startswith("goodput/")}
    assert {step for values in ledger.values() for step, _ in values} == {60}
    seconds = {name: values[0][1] for name, values in ledger.items()}
    fraction, total = seconds.pop("fraction"), seconds.pop("total_secs")
    assert sorted(seconds) == sorted(
        f"{name}_secs" for name in
        ("startup", "step", "epoch_boundary", "stall", "recorder", "other")
    )
    assert sum(seconds.values()) == pytest.approx(total, rel=1e-5)
    assert seconds["stall_secs"] == 0.0
    # 60 steps of at least STEP_SLEEP: step 1 is startup; in the data run the
    # first fetch of epoch 2 comes before its first batch begins (a boundary).
    assert seconds["step_secs"] >= 58 * STEP_SLEEP
    assert fraction == pytest.approx(seconds["step_secs"] / total, rel=1e-5)


def test_a_hang_is_a_stall_in_the_warning_the_records_and_the_ledger(results):
    # 30 steps of ~0.01 s, a 1.6 s hang after the 15th batch end,
    # stall_secs=0.8: the 16th step's end ends it.
    stall = results["stall"]
    records = stall["records"]
    ((step, stall_secs),) = records["stall_secs"]
    assert step == 16 and 1.6 <= stall_secs < 2 * 1.6
    rates = dict(records["global_step/sec"])
    assert sorted(rates) == [6, 11, 16, 21, 26]
    assert dict(records["step_time/max"])[16] == pytest.approx(stall_secs, rel=1e-6)
    assert stall_secs <= 5 / rates[16] < stall_secs + 4 * 0.1
    assert records["goodput/stall_secs"] == [[30, pytest.approx(stall_secs, rel=1e-6)]]
    buckets = ("startup", "step", "epoch_boundary", "stall", "recorder", "other")
    seconds = {name: records[f"goodput/{name}_secs"][0][1] for name in buckets}
    (total,) = [value for _, value in records["goodput/total_secs"]]
    assert sum(seconds.values()) == pytest.approx(total, rel=1e-5)
    assert 28 * 0.01 <= seconds["step"] < 1.6
    (warning,) = [m for m in stall["warnings"] if "keras_stepcounter" in m]
    # The watchdog looks every so often, so it says 0.8 s or a little more.
    assert "no training step has ended for" in warning
    assert "(stall_secs: 0.8); training is at global step about 15" in warning
    # The watchdog's stack shows where the training thread waits.
    assert "keras/src/backend/torch/trainer.py" in warning
    assert "time.sleep(self.hang)" in warning


def test_input_stats_sees_a_slow_input_on_torch(results):
    # Each batch takes STEP_SLEEP (20 ms) to fetch, between the hooks, on a
    # step of a few ms: truth above 0.9; asserted with a 2x margin.
    records = results["input_slow"]["records"]
    shares = [value for _, value in records["time_frac/input"]]
    assert [step for step, _ in records["time_frac/input"]] == [11, 21]
    assert all(0.45 <= share <= 1.0 for share in shares), shares
    [[_, input_secs]] = records["goodput/input_secs"]
    [[_, step_secs]] = records["goodput/step_secs"]
    assert input_secs >= 0.45 * (input_secs + step_secs)
    assert input_secs >= 0.5 * 29 * STEP_SLEEP  # 29 fetches between hooks


def test_input_stats_on_torch_in_memory_arrays_wait_little(results):
    records = results["input_arrays"]["records"]
    shares = [value for _, value in records["time_frac/input"]]
    assert len(shares) == 11 and all(share < 0.4 for share in shares), shares
