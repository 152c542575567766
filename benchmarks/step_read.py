"""The step read: the part of a record that comes from the device.

Times, alone (timeit-style, interleaved rounds), two ways to read
`model.optimizer.iterations` of a compiled tiny model as a Python int:

* `iterations.numpy()`, Keras's public read (what `StepCounter` uses today);
* `tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.int64)` then
  `.numpy()`: the bare read op, public through `tf.raw_ops`.

For Keras 3 on the TensorFlow backend in this process, and for tf_keras in
a subprocess with `TF_USE_LEGACY_KERAS=1` (`tf.keras` is chosen at import).
Inside `fit` both cost more than alone (caches cold after a training step).

    python3 -m benchmarks.step_read    # prints this process's figures as JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Dict, List

from benchmarks._common import Row, Settings, median, spread

REPO_ROOT = Path(__file__).resolve().parents[1]


def measure(rounds: int, number: int) -> Dict[str, List[float]]:
    """µs per read of each way, one figure per round, in this process's Keras."""
    import tensorflow as tf

    from benchmarks._common import tiny_model

    iterations = tiny_model(tf.keras).optimizer.iterations
    # Keras 3 wraps a tf.Variable (`.value`); tf_keras's is one.
    variable = iterations if isinstance(iterations, tf.Variable) else iterations.value
    handle = variable.handle
    read_op = tf.raw_ops.ReadVariableOp

    ways = {
        "numpy": lambda: iterations.numpy(),
        "raw_op": lambda: read_op(resource=handle, dtype=tf.int64).numpy(),
    }
    assert int(ways["numpy"]()) == int(ways["raw_op"]()) == 0
    results: Dict[str, List[float]] = {name: [] for name in ways}
    for round_index in range(rounds + 1):
        order = list(ways) if round_index % 2 == 0 else list(ways)[::-1]
        for name in order:
            seconds = timeit.timeit(ways[name], number=number)
            if round_index:  # Round 0 warms up.
                results[name].append(seconds / number * 1e6)
    return results


def run(settings: Settings) -> List[Row]:
    import tensorflow as tf

    number = 200 if settings.quick else 2_000
    flavours = {f"Keras {tf.keras.__version__} (TensorFlow backend)": measure(
        settings.rounds, number
    )}
    flavours["tf_keras (TF_USE_LEGACY_KERAS=1)"] = _in_subprocess(
        settings.rounds, number, {"TF_USE_LEGACY_KERAS": "1"}
    )
    rows = []
    for flavour, results in flavours.items():
        numpy_us, raw_us = results["numpy"], results["raw_op"]
        rows.append(Row(
            name=f"step read alone, {flavour}",
            measured=f"`iterations.numpy()`: {spread(numpy_us, '{:.1f}')} µs",
            compared_with="`tf.raw_ops.ReadVariableOp(...)` + `.numpy()`",
            result=f"{spread(raw_us, '{:.1f}')} µs "
                   f"({median(numpy_us) / median(raw_us):.1f}x cheaper)",
            target="(for comparison)",
            verdict="reference",
        ))
    return rows


def _in_subprocess(rounds: int, number: int, env: Dict[str, str]) -> Dict[str, List[float]]:
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.step_read", str(rounds), str(number)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3", **env),
    )
    if process.returncode != 0:
        raise RuntimeError(f"step read in a subprocess failed: {process.stderr[-500:]}")
    return json.loads(process.stdout.splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
