"""The same records under Keras 3/TensorFlow, tf_keras and Keras 3/JAX.

Each flavour is fixed when Keras is first imported, so `flavour_checks.py`
runs in a fresh process per flavour (one process runs every check of its
flavour, to pay TensorFlow's start-up once) and reports JSON.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~15 s per flavour: one TensorFlow start each.

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "flavour_checks.py"
FLAVOURS = {
    "keras3-tensorflow": {"KERAS_BACKEND": "tensorflow"},
    "tf_keras": {"TF_USE_LEGACY_KERAS": "1", "KERAS_BACKEND": "tensorflow"},
    "keras3-jax": {"KERAS_BACKEND": "jax"},
}


@pytest.fixture(scope="module", params=sorted(FLAVOURS))
def flavour(request, tmp_path_factory):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.update(FLAVOURS[request.param])
    log_root = tmp_path_factory.mktemp(request.param)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(log_root)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return request.param, json.loads(lines[-1][len("RESULTS "):])


def steps(records, tag="global_step/sec"):
    return [step for step, _ in records.get(tag, [])]


def test_the_callback_subclasses_the_flavours_callback(flavour):
    name, results = flavour
    checks = results["flavour"]
    assert checks["is_tf_keras_callback"]
    expected_package = "tf_keras" if name == "tf_keras" else "keras"
    assert checks["callback_base"].split(".")[0] == expected_package
    assert checks["backend"] == ("jax" if name == "keras3-jax" else "tensorflow")


def test_thirty_step_fit_records_at_the_same_steps(flavour):
    _, results = flavour
    checks = results["flavour"]
    assert steps(checks["every_10"]) == [11, 21]
    assert steps(checks["every_10_spe_5"]) == [15, 25]
    assert sorted(checks["every_10"]) == ["baseline_step", "global_step/sec"]


def test_extras_over_two_epochs_with_a_fake_clock(flavour):
    _, results = flavour
    checks = results["flavour"]["fake_clock_extras"]
    # 2 epochs of 15 steps, 0.125 fake seconds each: 8 steps/sec.
    assert checks["global_step/sec"] == [[11, 8.0], [21, 8.0]]
    assert checks["examples/sec"] == [[11, 32.0], [21, 32.0]]
    assert checks["mfu"] == [[11, pytest.approx(0.08)], [21, pytest.approx(0.08)]]
    assert checks["time_to_first_step"] == [[1, 0.125]]
    assert results["flavour"]["steps_per_sec_epoch_logs"] == [8.0, 8.0]


def test_keras_never_dispatches_the_counter_asynchronously(flavour):
    name, results = flavour
    checks = results["flavour"]
    if name == "tf_keras":  # tf_keras has no asynchronous dispatch at all.
        assert checks["async_with_counter"] is None
        return
    assert checks["async_with_counter"] is False
    if name == "keras3-jax":  # The one flavour where Keras would.
        assert checks["async_without"] is True


def test_mirrored_strategy_counts_global_steps_and_examples(flavour):
    name, results = flavour
    if name == "keras3-jax":  # tf.distribute is TensorFlow only: not run there.
        assert "mirrored" not in results
        return
    mirrored = results["mirrored"]
    assert mirrored["replicas"] == 2
    # 120 examples, global batch 8: 15 global steps, not 30 replica steps.
    assert mirrored["iterations_after"] == 15
    assert mirrored["batch_size"] == {
        "baseline_step": [[1, 1.0]], "global_step/sec": [[11, 8.0]], "examples/sec": [[11, 64.0]],
    }
    # Per-batch logs hold the replica mean (Keras 3) or sum (tf_keras) of
    # each replica's 4 examples; the README's count_fn recipe gives 8.
    assert mirrored["logged_examples"] == ([8.0] * 3 if name == "tf_keras" else [4.0] * 3)
    assert mirrored["count_fn"] == {
        "baseline_step": [[16, 16.0]],
        "global_step/sec": [[21, 8.0], [26, 8.0]],
        "examples/sec": [[21, 64.0], [26, 64.0]],
    }


def _outside(values, low, high, around):
    return [v for v in values if not low * around <= v <= high * around]


@pytest.mark.parametrize("run", ["plain", "validation"])
def test_records_spanning_an_epoch_end_read_like_their_neighbours(flavour, run):
    # Real time: 0.02 s a step, 0.3 s of other callbacks' work after each
    # epoch's last batch (a pause by the rule, whatever hook the counter
    # learns of it in). Were the tail counted, the records at 11 and 21
    # (6 -> 11, 16 -> 21) would read about a quarter of the others.
    _, results = flavour
    checks = results["epoch_end"][run]
    rates = checks["records"]["global_step/sec"]
    assert [step for step, _ in rates] == [6, 11, 16, 21, 26]
    values = [value for _, value in rates]
    median = sorted(values)[len(values) // 2]
    assert _outside(values, 0.5, 2.0, median) == [], rates
    # The epoch's rate too: three epochs, each within the same bounds.
    epoch_rates = checks["steps_per_sec"]
    assert len(epoch_rates) == 3
    assert _outside(epoch_rates, 0.5, 2.0, median) == [], (epoch_rates, median)


@pytest.mark.parametrize("run", ["plain", "validation"])
def test_the_ledger_books_the_epoch_tails_as_boundary_time(flavour, run):
    # The same seconds the rate leaves out: 3 tails of 0.3 s (the last one
    # is the run's tail) are boundary time, and since every second is in
    # one bucket, never step time; 30 steps of at least 0.02 s each.
    _, results = flavour
    ledger = {tag.split("/")[1]: values[0]
              for tag, values in results["epoch_end"][run]["records"].items()
              if tag.startswith("goodput/") and tag != "goodput/fraction"}
    assert {step for step, _ in ledger.values()} == {30}
    seconds = {name: value for name, (_, value) in ledger.items()}
    assert seconds["epoch_boundary_secs"] >= 3 * 0.3
    assert seconds["step_secs"] + seconds["startup_secs"] >= 30 * 0.02
    assert seconds["stall_secs"] == 0.0
    total = seconds.pop("total_secs")
    assert sum(seconds.values()) == pytest.approx(total, rel=1e-5)


def test_gradient_accumulation_counts_the_examples_of_applied_updates(flavour):
    # Keras 3 optimizer with gradient_accumulation_steps=2, batch_size=4,
    # 0.125 fake seconds a batch: an update every 0.25 s, 8 examples each.
    name, results = flavour
    if name == "tf_keras":  # tf_keras optimizers have no gradient accumulation.
        assert "accumulation" not in results
        return
    checks = results["accumulation"]
    assert checks["iterations_after"] == 12  # 24 batches, 12 applied updates.
    rates = checks["records"]["global_step/sec"]
    examples = checks["records"]["examples/sec"]
    assert [step for step, _ in examples] == [step for step, _ in rates]
    for (_, rate), (_, per_sec) in zip(rates, examples):
        assert per_sec == pytest.approx(rate * 4 * 2)
    assert [value for _, value in rates[1:]] == [4.0] * (len(rates) - 1)


def test_gradient_accumulation_first_record_leaves_out_the_first_update(flavour):
    # The run's first step is its first applied update (2 batches here), not
    # its first batch call: the first record and the first epoch's rate read
    # 4.0 like the rest. (With the baseline at the first batch end, step 0
    # and half an update done, the first record read 3 updates over 5
    # batches, 4.8, and the first epoch 6 over 11, 4.36.)
    name, results = flavour
    if name == "tf_keras":
        assert "accumulation" not in results
        return
    checks = results["accumulation"]
    values = [value for _, value in checks["records"]["global_step/sec"]]
    assert len(values) >= 3 and set(values) == {4.0}, values
    assert checks["steps_per_sec"] == [4.0, 4.0]


def test_a_hang_tells_one_story_in_every_instrument(flavour):
    # 30 steps of ~0.01 s, a 1.6 s hang after the 15th batch end: the 16th
    # step's end ends it; the record at 16 holds it in its rate and its
    # step_time/max, the ledger in its stall bucket alone.
    _, results = flavour
    records = results["stalls"]["hang"]
    ((step, stall),) = records["stall_secs"]
    assert step == 16 and 1.6 <= stall < 2 * 1.6
    rates = dict(records["global_step/sec"])
    assert sorted(rates) == [6, 11, 16, 21, 26]
    assert dict(records["step_time/max"])[16] == pytest.approx(stall, rel=1e-6)
    assert stall <= 5 / rates[16] < stall + 4 * 0.1
    assert records["goodput/stall_secs"] == [[30, pytest.approx(stall, rel=1e-6)]]
    buckets = ("startup", "step", "epoch_boundary", "stall", "recorder", "other")
    seconds = {name: records[f"goodput/{name}_secs"][0][1] for name in buckets}
    (total,) = [value for _, value in records["goodput/total_secs"]]
    assert sum(seconds.values()) == pytest.approx(total, rel=1e-5)
    # 28 steps of at least 0.01 s: step 1 is startup, step 16 in the stall.
    assert 28 * 0.01 <= seconds["step"] < 1.6  # With the hang it would be over.
    (warning,) = [m for m in results["stalls"]["hang_warnings"] if "keras_stepcounter" in m]
    assert "no training step has ended for" in warning
    assert "training is at global step about 15 (step 11 read, and 4 batch calls since)" in warning


def test_an_interrupted_fit_leaves_no_watchdog_and_the_counter_works_on(flavour):
    # KeyboardInterrupt from a callback at the 5th batch of a fit from step
    # 30: Keras skips on_train_end; the watchdog goes with the fit, says
    # nothing while the interpreter idles, and the next fit (steps 36..45)
    # writes the interrupted fit's ledger (at its last step read, its
    # baseline 31), records at its baseline + 5 and writes its own ledger.
    _, results = flavour
    stalls = results["stalls"]
    assert stalls["interrupted"] is True
    assert stalls["thread_gone_secs"] < 2.0
    assert [line for line in stalls["idle_lines"] if "keras_stepcounter" in line[1]] == []
    last = stalls["last_fit"]
    assert [step for step, _ in last["global_step/sec"]] == [6, 11, 16, 21, 26, 41]
    assert [step for step, _ in last["goodput/total_secs"]] == [30, 31, 45]
    assert stalls["threads_at_end"] == 0
