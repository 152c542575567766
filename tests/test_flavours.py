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

pytestmark = pytest.mark.slow  # ~10 s per flavour: one TensorFlow start each.

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
    assert list(checks["every_10"]) == ["global_step/sec"]


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
        "global_step/sec": [[11, 8.0]], "examples/sec": [[11, 64.0]],
    }
    # Per-batch logs hold the replica mean (Keras 3) or sum (tf_keras) of
    # each replica's 4 examples; the README's count_fn recipe gives 8.
    assert mirrored["logged_examples"] == ([8.0] * 3 if name == "tf_keras" else [4.0] * 3)
    assert mirrored["count_fn"] == {
        "global_step/sec": [[21, 8.0], [26, 8.0]],
        "examples/sec": [[21, 64.0], [26, 64.0]],
    }
