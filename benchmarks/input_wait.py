"""The input wait (`keras_stepcounter.input_wait.InputWaitMeter`): accuracy and cost.

Accuracy: in each flavour (Keras 3 on TensorFlow, tf_keras, Keras 3 on
JAX; one subprocess each, `tests/input_wait_checks.py`), a one-Dense-layer
model (about 1 ms a step on TensorFlow; on JAX, where that step is 40 µs,
after two hidden layers of 1024 for about 1 ms) is fitted for 80 steps on each
input kind, with a meter attached at its defaults (a 30-call profiler
window from call 10 on TensorFlow; every batch on JAX). The share it
measures over the fit is set against the truth, `1 - c / s`: `s` the
median step time with this input, `c` the median step time on in-memory
arrays (a step that never waits), and for the slow inputs `sleep / s`, the
known sleep's share of a step. The slow inputs sleep 5 ms a batch: truth
about 0.8. The first truth assumes the step's own work is as fast as with
in-memory input, which the input's Python threads undo on two shared cores
(the true share is then lower); the second is exact where the batch is
fetched inside the step (JAX; one worker) and high where it is prefetched
while the step runs (tf.data on TensorFlow). "Off by" is the share's
distance to the range between them. Targets (issue 29): within 10 points;
on NumPy arrays (the reference, truth 0 by definition), under 0.2.

Cost: the meter at its defaults on in-memory arrays, the cheapest step
there is (the worst case): its own time around each `train_function` call
(wrapper, window start, stop, parse) plus the profiler's slowdown of the
calls inside a window (each windowed call's excess over the median call
outside), over the rest of the fit. For a fit of a few seconds (one window
gets its fixed cost) and a longer one (the budget rule spaces the windows).
Target (issue 29): at most 1% of fit where it samples. On JAX, the cost is
the wrapper and the timing proxy, a few µs a batch, shown against the bare
layer's 40 µs step (the worst case).

    python3 benchmarks/run.py --only input_wait
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

from benchmarks._common import Row, Settings, log, median, spread, verdict

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tests" / "input_wait_checks.py"
FLAVOURS = {
    "Keras 3/TensorFlow": {"KERAS_BACKEND": "tensorflow"},
    "tf_keras": {"TF_USE_LEGACY_KERAS": "1", "KERAS_BACKEND": "tensorflow"},
    "Keras 3/JAX": {"KERAS_BACKEND": "jax"},
}
INPUTS = [
    "numpy", "tf.data", "tf.data+py_function", "tf.data+numpy_function",
    "PyDataset", "PyDataset(workers=2)", "generator",
]
QUICK_INPUTS = ["numpy", "PyDataset"]
TARGET_POINTS = 0.10
TARGET_IN_MEMORY = 0.2
TARGET_COST = 0.01


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
    flavours = {k: v for k, v in FLAVOURS.items() if not (settings.quick and k == "tf_keras")}
    for flavour, env in flavours.items():
        log(f"  input_wait accuracy, {flavour} ...")
        runs = [_checks(env, [arg for name in inputs for arg in ("--only", name)])
                for _ in range(repeats)]
        rows.extend(_accuracy_rows(flavour, inputs, runs))
    cost_steps = [1_500] if settings.quick else [3_000, 30_000]
    cost_flavours = ["Keras 3/TensorFlow"] if settings.quick else ["Keras 3/TensorFlow", "Keras 3/JAX"]
    for flavour in cost_flavours:
        for steps in cost_steps:
            log(f"  input_wait cost, {flavour}, {steps} steps ...")
            rounds = 1 if settings.quick or steps > 10_000 else 3
            result = _checks(FLAVOURS[flavour], ["--cost", "--steps", str(steps), "--rounds", str(rounds)])
            rows.append(_cost_row(flavour, steps, result))
    return rows


def _accuracy_rows(flavour: str, inputs: List[str], runs: List[Dict[str, Any]]) -> List[Row]:
    rows = []
    for name in inputs:
        shares = [run[name]["share"] for run in runs if run[name]["share"] is not None]
        truths = [run[name]["truth"] for run in runs]
        sleeps = [run[name]["sleep_share"] for run in runs if run[name]["sleep_share"] is not None]
        # Off by: the distance to the nearer truth (0 between them).
        errors = [_distance(run[name]) for run in runs if run[name]["share"] is not None]
        if name == "numpy":  # The reference input: its truth is 0 by definition.
            ok, target = bool(shares) and median(shares) < TARGET_IN_MEMORY, f"under {TARGET_IN_MEMORY}"
        else:
            ok, target = bool(errors) and median(errors) <= TARGET_POINTS, f"within {TARGET_POINTS:.2f}"
        truth_text = f"1 - c/s {spread(truths, '{:.2f}')}"
        if sleeps:
            truth_text += f"; sleep/s {spread(sleeps, '{:.2f}')}"
        rows.append(Row(
            name=f"input share, {flavour}, {name}",
            measured=f"share {spread(shares, '{:.2f}')}",
            compared_with=truth_text,
            result=f"off by {spread(errors, '{:.2f}')}",
            target=target,
            verdict=verdict(ok),
        ))
    return rows


def _distance(result: Dict[str, Any]) -> float:
    """How far the share lies outside the truths' range (a point when the
    input has one truth)."""
    truths = [t for t in (result["truth"], result.get("sleep_share")) if t is not None]
    low, high = min(truths), max(truths)
    share = result["share"]
    return max(0.0, low - share, share - high)


def _cost_row(flavour: str, steps: int, result: Dict[str, Any]) -> Row:
    rounds = result["rounds"]
    fractions = [r["cost_frac"] * 100 for r in rounds]
    fit_secs = median([r["fit_secs"] for r in rounds])
    windows = median([r["windows"] for r in rounds])
    per_call_us = median([r["call_secs"] * 1e6 for r in rounds])
    if flavour.endswith("JAX"):
        detail = (f"wrapper {median([r['own_secs'] for r in rounds]) / steps * 1e6:.1f} µs"
                  f" + proxy {result['proxy_us_per_batch']:.1f} µs a batch")
        fractions = [
            (r["own_secs"] + steps * result["proxy_us_per_batch"] / 1e6) / r["fit_secs"] * 100
            for r in rounds
        ]
    else:
        detail = f"{windows:.0f} window(s)"
    return Row(
        name=f"input_stats cost, {flavour}, {steps} steps on arrays",
        measured=f"{spread(fractions, '{:.2f}')} % of fit",
        compared_with=f"fit {fit_secs:.1f} s, call {per_call_us:.0f} µs",
        result=detail,
        target=f"<= {TARGET_COST:.0%}",
        verdict=verdict(median(fractions) <= TARGET_COST * 100),
    )
