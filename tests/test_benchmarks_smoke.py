"""The README's benchmark command, in its quick mode, so it cannot rot.

No timing is asserted (speed lives in the benchmark's own table): only that
the command runs, exits 0 and prints every row of the table.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The first cell of each row the table must have.
EXPECTED_ROWS = [
    "| in place: `StepCounter(every_n_steps=100, output_dir=...)`",
    "| in place: `StepCounter(every_n_steps=1, output_dir=...)`",
    "| in place: Keras `TensorBoard(update_freq=100, write_steps_per_second=True)`",
    "| in place: hot path, µs per quiet batch above an empty callback",
    "| in place: step read, `iterations.numpy()` every batch",
    "| step read alone, Keras ",
    "| step read alone, tf_keras (TF_USE_LEGACY_KERAS=1)",
    "| sink alone: `EventFileSink` (`output_dir=`)",
    "| sink alone: the same file writes, `Event` proto built per record",
    "| sink alone: `SummarySink` (`summary_writer=`)",
    "| sink alone: previous sink: `tf.summary.scalar`",
    "| sink alone: `os.stat` of the event file",
    "| hot path: `StepCounter.on_train_batch_end`",
    "| hot path: `on_train_batch_end` with `step_time_stats=True`",
    "| hot path: `StepCounter.on_train_batch_begin`",
    "| `fit` 200 steps: `StepCounter()`",
    "| `fit` 200 steps: time inside `StepCounter`'s hooks",
    "| `fit` 200 steps: naive callback",
    "| `fit` 200 steps: Keras `TensorBoard(update_freq=100",
    "| `fit` 200 steps: Keras `TensorBoard(update_freq=1,",
    "| `GraphStepCounter` in a `tf.function` loop",
    "| v1 hook: `compat.v1.StepCounterHook`",
    "| accuracy: recorded vs true rate, within an epoch",
    "| accuracy: recorded vs true rate, across an epoch end",
    "| input share, Keras 3/TensorFlow, numpy",
    "| input share, Keras 3/TensorFlow, PyDataset",
    "| input share, Keras 3/JAX, numpy",
    "| input share, Keras 3/JAX, PyDataset",
    "| input_stats cost, Keras 3/TensorFlow, 1500 steps on arrays",
]


@pytest.mark.slow
def test_quick_benchmark_prints_the_table():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--quick"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| benchmark | measured | compared with |" in out
    assert "- CPU: " in out and "TensorFlow " in out
    lines = out.splitlines()
    for row in EXPECTED_ROWS:
        matching = [line for line in lines if line.startswith(row)]
        assert len(matching) == 1, f"row {row!r} missing from:\n{out}"
        assert "| error |" not in matching[0]
    # Every row ends with a verdict the README explains.
    verdicts = [line.rsplit("|", 2)[-2].strip() for line in lines if line.startswith("| ")]
    assert set(verdicts[2:]) <= {"met", "missed", "reference", "not available"}
