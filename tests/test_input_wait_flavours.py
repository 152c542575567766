"""InputWaitMeter on real slow inputs under Keras 3/TensorFlow, tf_keras,
Keras 3/JAX and Keras 3/PyTorch: each flavour in a fresh process
(`input_wait_checks.py`).

Every input kind of the issue: NumPy arrays, tf.data (plain, and mapped
with tf.py_function and tf.numpy_function sleeping), a PyDataset sleeping
a batch's time (tf_keras: a Sequence) with one worker, and with two
workers sleeping twice as long each, and a Python generator sleeping. A
batch every 20 ms: the input threads sleep beside the step, so the truth
is `1 - c / s` and the step's own time `c` grows with the machine's load
(at 5 ms a batch a loaded machine took the truth from 0.8 to 0.35, and the
test's 2x margin with it; the benchmarks keep the issue's 5 ms). The
truths are `1 - c / s` (the step time on in-memory arrays over the step
time with this input) and `sleep / s` (the known sleep's share of a step;
input_wait_checks.py says where each is exact): a slow input's share must
be at least half the lower (truth about 0.9: at least 0.4), an in-memory
input's under 0.4 (twice 0.2), where `1 - c / s` is noise.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~25 s per flavour: one TensorFlow start and 14 fits.

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "input_wait_checks.py"
FLAVOURS = {
    "keras3-tensorflow": {"KERAS_BACKEND": "tensorflow"},
    "tf_keras": {"TF_USE_LEGACY_KERAS": "1", "KERAS_BACKEND": "tensorflow"},
    "keras3-jax": {"KERAS_BACKEND": "jax"},
    "keras3-torch": {"KERAS_BACKEND": "torch"},
}
STEPS = 80
WINDOW_CALLS = 30
SLEEP = 0.02
SLOW_INPUTS = ["tf.data+py_function", "tf.data+numpy_function", "PyDataset", "generator"]
IN_MEMORY_INPUTS = ["numpy", "tf.data"]
ALL_INPUTS = [*IN_MEMORY_INPUTS, *SLOW_INPUTS, "PyDataset(workers=2)"]


@pytest.fixture(scope="module", params=sorted(FLAVOURS))
def flavour(request):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.update(FLAVOURS[request.param])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--steps", str(STEPS), "--window-calls", str(WINDOW_CALLS),
         "--sleep", str(SLEEP)],
        env=env, capture_output=True, text=True, timeout=280,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return request.param, json.loads(lines[-1][len("RESULTS "):])


def test_every_input_is_measured_and_train_function_restored(flavour):
    name, results = flavour
    for input_kind in ALL_INPUTS:
        result = results[input_kind]
        assert result["attached"], input_kind
        assert result["restored"], input_kind
        assert result["steps"] == STEPS, input_kind
        # JAX: every batch's wait; PyTorch: every fetch between two batches
        # (the epoch's first comes before its steps); TensorFlow: the one
        # window's calls.
        expected_waits = {"keras3-jax": STEPS, "keras3-torch": STEPS - 1}.get(name, WINDOW_CALLS)
        assert result["waits"] == expected_waits, input_kind


@pytest.mark.parametrize("input_kind", [*SLOW_INPUTS, "PyDataset(workers=2)"])
def test_a_slow_inputs_share_is_within_twice_the_truth(flavour, input_kind):
    _, results = flavour
    result = results[input_kind]
    truths = [t for t in (result["truth"], result["sleep_share"]) if t is not None]
    share = result["share"]
    assert share <= 1.0
    # Two workers too, now that step times are means over the meter's own
    # span (their batches come in pairs: a median step was the short one).
    assert min(truths) / 2 <= share, (truths, share)
    assert share >= 0.4  # about 0.9 (0.86-0.95 measured), with a 2x margin


@pytest.mark.parametrize("input_kind", IN_MEMORY_INPUTS)
def test_an_in_memory_inputs_share_is_small(flavour, input_kind):
    """Under 0.4 (twice 0.2), or where iterating is itself a large part of
    a step, twice the truth: `tf.data` on JAX and PyTorch is read in
    Python, each batch converted, beside steps well under a millisecond
    (on PyTorch the share and the truth both read about 0.3, and the
    measured truth is noisy: twice at least 0.3)."""
    name, results = flavour
    truth, share = results[input_kind]["truth"], results[input_kind]["share"]
    read_in_python = input_kind == "tf.data" and name in ("keras3-jax", "keras3-torch")
    floor = 0.3 if read_in_python else 0.2
    assert 0.0 <= share <= 2 * max(floor, truth), (truth, share)
    if input_kind == "numpy":
        assert share < 0.4
