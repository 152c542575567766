"""The input wait (`keras_stepcounter.input_wait.InputWaitMeter`): accuracy and cost.

Accuracy: in each flavour (Keras 3 on TensorFlow, tf_keras, Keras 3 on
JAX and on PyTorch; one subprocess each, `tests/input_wait_checks.py`), a
one-Dense-layer model (about 0.7 ms a step on TensorFlow, 1-2 ms on
PyTorch; on JAX, where that step is 40 µs, after two hidden layers of 1024
for about 1 ms) is fitted for 160
steps on each input kind, with a meter attached at its defaults (a
30-call profiler window from call 10 on TensorFlow; every batch on JAX).
Meter and truths cover the same span, the one the meter measured: the
window on TensorFlow, the fit after its first quarter on JAX and PyTorch.
The slow inputs sleep 5 ms a batch (truth about 0.8). Three truths, each
from step times measured beside the input's fit (the shared machine's
load drifts), with `s` the mean step time with this input over that span:

* `1 - c / s`, with `c` the mean step on in-memory arrays run back to
  back, outside windows: the share of its time training would save if the
  input were free.
* `1 - c' / s`, with `c'` the mean step on the same arrays when a callback
  sleeps 5 ms before each step (no input at all), less that sleep: the
  step's own work after idling as long as the slow input makes it wait.
  It is longer than `c` (0.8 against 1.6 ms on TensorFlow here: thread
  pools park, caches cool, other jobs take the two cores), a slow input's
  step pays it too, and no meter of waits can see it: `s - c'` is the
  time the step waited.
* `sleep / s`, the known sleep's share of a step: the wait where the batch
  is made in the training thread, high where it is prefetched while the
  step runs.

"Off by" is the share's distance to the range of the truths. "Own work"
is the step's time less its measured wait, `s (1 - share)`, beside `c`
and `c'`. Targets (issue 29): within 10 points; on NumPy arrays (the
reference, truth 0 by definition), under 0.2.

Cost: the meter at its defaults on in-memory arrays, the cheapest step
there is (the worst case): on TensorFlow, its own time around each
`train_function` call (wrapper, window start, stop, parse) plus the
profiler's slowdown of the calls inside a window (each windowed call's
excess over the median call outside), over the rest of the fit, for a fit
of a few seconds (one window gets its fixed cost) and a longer one (the
budget rule spaces the windows). On JAX, the wrapper and the timing proxy
(µs a batch, timed apart from fit: a few µs are lost in a fit's noise)
times the batches, over the fit's time: on the accuracy rows' ~1 ms step
and on the bare layer's 40-75 µs step (the worst case). Target (issue
29): at most 1% of fit.

    python3 benchmarks/run.py --only input_wait
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from benchmarks._common import Row, Settings, log, median, spread, verdict

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "input_wait_checks.py"
FLAVOURS = {
    "Keras 3/TensorFlow": {"KERAS_BACKEND": "tensorflow"},
    "tf_keras": {"TF_USE_LEGACY_KERAS": "1", "KERAS_BACKEND": "tensorflow"},
    "Keras 3/JAX": {"KERAS_BACKEND": "jax"},
    "Keras 3/torch": {"KERAS_BACKEND": "torch"},
}
INPUTS = [
    "numpy", "tf.data", "tf.data+py_function", "tf.data+numpy_function",
    "PyDataset", "PyDataset(workers=2)", "generator",
]
QUICK_INPUTS = ["numpy", "PyDataset"]
QUICK_SKIPS = ("tf_keras", "Keras 3/torch")
REFERENCE_INPUT = "numpy"
ACCURACY_STEPS = 160
TARGET_POINTS = 0.10
TARGET_IN_MEMORY = 0.2
TARGET_COST = 0.01
JAX_HIDDEN = 1024  # the accuracy rows' JAX model: a ~1 ms step


def _checks(flavour_env: Dict[str, str], args: List[str]) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    env.update(flavour_env)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=900
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{SCRIPT.name} {' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULTS "):])


def run(settings: Settings) -> List[Row]:
    rows: List[Row] = []
    inputs = QUICK_INPUTS if settings.quick else INPUTS
    repeats = 1 if settings.quick else 3
    # Quick mode: two flavours, two inputs, one cost row (a smoke run).
    flavours = {k: v for k, v in FLAVOURS.items() if not (settings.quick and k in QUICK_SKIPS)}
    for flavour, env in flavours.items():
        log(f"  input_wait accuracy, {flavour} ...")
        args = ["--steps", str(ACCURACY_STEPS), *[arg for name in inputs for arg in ("--only", name)]]
        runs = [_checks(env, args) for _ in range(repeats)]
        rows.extend(_accuracy_rows(flavour, inputs, runs))
    for flavour, steps, hidden in _cost_cases(settings.quick):
        log(f"  input_wait cost, {flavour}, {steps} steps ...")
        rounds = 1 if settings.quick or steps > 10_000 else 3
        args = ["--cost", "--steps", str(steps), "--rounds", str(rounds), "--cost-hidden", str(hidden)]
        rows.append(_cost_row(flavour, steps, hidden, _checks(FLAVOURS[flavour], args)))
    return rows


def _cost_cases(quick: bool) -> List[Tuple[str, int, int]]:
    """(flavour, steps, hidden width) of each cost row: TensorFlow's bare
    layer (a 0.7 ms step) in a short and a long fit; on JAX, the accuracy
    rows' ~1 ms step (two hidden layers of 1024) and the bare layer's
    40-75 µs step (the worst case); on PyTorch the bare layer."""
    if quick:
        return [("Keras 3/TensorFlow", 1_500, 0)]
    return [
        ("Keras 3/TensorFlow", 3_000, 0),
        ("Keras 3/TensorFlow", 30_000, 0),
        ("Keras 3/JAX", 3_000, JAX_HIDDEN),
        ("Keras 3/JAX", 30_000, 0),
        ("Keras 3/torch", 3_000, 0),
    ]


def _accuracy_rows(flavour: str, inputs: List[str], runs: List[Dict[str, Any]]) -> List[Row]:
    rows = []
    for name in inputs:
        shares = [run[name]["share"] for run in runs if run[name]["share"] is not None]
        truths = [run[name]["truth"] for run in runs if run[name]["truth"] is not None]
        sleeps = [run[name]["sleep_share"] for run in runs if run[name]["sleep_share"] is not None]
        waits = [run[name]["wait_truth"] for run in runs if run[name]["wait_truth"] is not None]
        idles = [run[name]["idle_compute_secs"] * 1e3 for run in runs if run[name]["idle_compute_secs"]]
        owns = [run[name]["own_secs"] * 1e3 for run in runs if run[name]["own_secs"] is not None]
        computes = [run[name]["compute_secs"] * 1e3 for run in runs if run[name]["compute_secs"]]
        # Off by: the distance to the nearer truth (0 between them).
        errors = [_distance(run[name]) for run in runs if run[name]["share"] is not None]
        if name == REFERENCE_INPUT:  # The step that never waits: truth 0 by definition.
            ok, target = bool(shares) and median(shares) < TARGET_IN_MEMORY, f"under {TARGET_IN_MEMORY}"
        else:
            ok, target = bool(errors) and median(errors) <= TARGET_POINTS, f"within {TARGET_POINTS:.2f}"
        truth_text = f"1 - c/s {spread(truths, '{:.2f}')}"
        if waits:
            truth_text += f"; 1 - c'/s {spread(waits, '{:.2f}')}"
        if sleeps:
            truth_text += f"; sleep/s {spread(sleeps, '{:.2f}')}"
        rows.append(Row(
            name=f"input share, {flavour}, {name}",
            measured=f"share {spread(shares, '{:.2f}')}",
            compared_with=truth_text,
            result=(f"off by {spread(errors, '{:.2f}')}; own work {median(owns):.2f} ms,"
                    f" c {median(computes):.2f} ms, c' {median(idles):.2f} ms"),
            target=target,
            verdict=verdict(ok),
        ))
    return rows


def _distance(result: Dict[str, Any]) -> float:
    """How far the share lies outside the truths' range (a point when the
    input has one truth)."""
    named = (result["truth"], result.get("sleep_share"), result.get("wait_truth"))
    truths = [t for t in named if t is not None]
    low, high = min(truths), max(truths)
    share = result["share"]
    return max(0.0, low - share, share - high)


def _cost_row(flavour: str, steps: int, hidden: int, result: Dict[str, Any]) -> Row:
    rounds = result["rounds"]
    fit_secs = median([r["fit_secs"] for r in rounds])
    windows = median([r["windows"] for r in rounds])
    if flavour.endswith("JAX") or flavour.endswith("torch"):
        # Every batch pays the wrapper and the proxy (JAX) or the timed
        # hooks (PyTorch), timed apart from fit.
        on_jax = flavour.endswith("JAX")
        per_batch_us = result["jax_us_per_batch" if on_jax else "torch_us_per_batch"]
        fractions = [steps * per_batch_us / 1e6 / r["fit_secs"] * 100 for r in rounds]
        what = "wrapper + proxy" if on_jax else "timed batch hooks"
        detail = f"{what} {per_batch_us:.2f} µs a batch"
    else:
        fractions = [r["cost_frac"] * 100 for r in rounds]
        detail = f"{windows:.0f} window(s)"
    model = f"2 x {hidden} hidden" if hidden else "bare layer"
    return Row(
        name=f"input_stats cost, {flavour}, {steps} steps on arrays, {model}",
        measured=f"{spread(fractions, '{:.2f}')} % of fit",
        compared_with=f"fit {fit_secs:.1f} s, step {fit_secs / steps * 1e6:.0f} µs",
        result=detail,
        target=f"<= {TARGET_COST:.0%}",
        verdict=verdict(median(fractions) <= TARGET_COST * 100),
    )
