"""How long `python -m keras_stepcounter report` takes on long runs, and its
peak memory.

Event files are written in the counter's own record layout (the bytes
`tf.summary.scalar` writes, `writer.event_records.scalar_record`) through
`tf.io.TFRecordWriter`, with a `baseline_step` record first: rates around
100 steps/s with 5% lognormal noise, one record every 100 steps. Each case
runs the report command in a fresh process (as a user runs it: imports
included), which prints its own peak resident memory (VmHWM; Linux only,
it reads /proc). Targets from issue 28: 1,000,000 records in at most 10 s
and 200 MB; 300,000 in at most 5 s; 200 runs of 500 records with
`--baseline` in at most 5 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from benchmarks._common import Row, Settings, median, verdict

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_run(run_dir: str, records: int, seed: int) -> None:
    """One run's event file: a baseline at step 1, then `records` rates."""
    import numpy as np
    import tensorflow as tf

    from keras_stepcounter.writer.event_records import (
        file_version_record,
        scalar_record,
    )

    os.makedirs(run_dir, exist_ok=True)
    rates = 100.0 * np.exp(np.random.default_rng(seed).normal(0.0, 0.05, records))
    path = os.path.join(run_dir, f"events.out.tfevents.{seed}.bench.1.0.stepcounter.v2")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(file_version_record(0.0))
        writer.write(scalar_record(0.0, 1, "baseline_step", 1.0))
        for i, rate in enumerate(rates.tolist()):
            writer.write(scalar_record(float(i), 1 + 100 * (i + 1), "global_step/sec", rate))


# Runs the report as `python -m keras_stepcounter` does, then prints the
# process's own peak resident memory (VmHWM: since exec, so the parent's
# memory at fork does not count, as it would in getrusage's children).
# `alter_sys`: the module runs as `__main__`, as under `-m`, so the reader
# knows it is in the command line's own process and skips the remote-file
# clients (boto3) a training process may need: about 20 MB, up to 1 s.
_AS_MAIN = """
import runpy, sys
sys.argv = ["keras_stepcounter", *sys.argv[1:]]
try:
    runpy.run_module("keras_stepcounter", run_name="__main__", alter_sys=True)
except SystemExit as done:
    code = done.code
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print("peak", peak.split()[1], "exit", code, file=sys.stderr)
"""


def report_once(args: List[str]) -> Tuple[float, float]:
    """Wall seconds and the peak RSS (MB) of one report process."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _AS_MAIN, "report", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )
    wall = time.perf_counter() - began
    last = done.stderr.splitlines()[-1].split() if done.stderr else []
    if len(last) != 4 or last[3] not in ("0", "1", "3"):
        raise RuntimeError(f"report failed: {done.stderr[-500:]}")
    return wall, int(last[1]) / 1024


def run(settings: Settings) -> List[Row]:
    scale = 10 if settings.quick else 1
    cases = [
        (f"{1_000_000 // scale:,} records, one run", 1, 1_000_000 // scale, [], 10.0, 200),
        (f"{300_000 // scale:,} records, one run", 1, 300_000 // scale, [], 5.0, None),
        (f"{200 // scale} runs of 500 records, `--baseline`", 200 // scale, 500,
         ["--baseline", "run0"], 5.0, None),
    ]
    rows = []
    for name, runs, records, extra, secs_target, mb_target in cases:
        with tempfile.TemporaryDirectory() as logdir:
            for index in range(runs):
                write_run(os.path.join(logdir, f"run{index}"), records, seed=index)
            walls, peaks = [], []
            for _ in range(max(1, min(3, settings.rounds))):
                wall, peak = report_once([logdir, *extra])
                walls.append(wall)
                peaks.append(peak)
        ok = median(walls) <= secs_target and (
            mb_target is None or max(peaks) <= mb_target
        )
        target = f"≤ {secs_target:g} s" + ("" if mb_target is None else f", ≤ {mb_target} MB")
        rows.append(Row(
            name=f"report: {name}",
            measured=f"{median(walls):.1f} s (best {min(walls):.1f} s)",
            compared_with="fresh process, imports included",
            result=f"peak memory {max(peaks):.0f} MB (VmHWM)",
            target=target if not settings.quick else f"{target} (full size)",
            verdict=verdict(ok) if not settings.quick else "reference",
        ))
    return rows
