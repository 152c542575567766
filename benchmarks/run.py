"""Runs every benchmark and prints one markdown table.

    python3 benchmarks/run.py            # full run (a few minutes on 2 cores)
    python3 benchmarks/run.py --quick    # tiny mode (under a minute): a smoke run

Each row is a median over rounds in which the variants compared run in
alternating order (A B, B A, ...), and every ratio is taken between runs of
the same round. The heading names the machine and versions; progress goes
to stderr, so stdout is the table alone, ready to paste.

Exit status: 0 when every row ran (a target missed is reported, not an
error; so is a recorder that is not installed), 1 when a row raised.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

# Benchmark this checkout, also when run as `python3 benchmarks/run.py`.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks import (  # noqa: E402
    accuracy,
    fit_overhead,
    graph_step_counter,
    hot_path,
    in_place,
    input_wait,
    report_speed,
    rerun_read,
    sink,
    step_read,
    v1_hook,
)
from benchmarks._common import Row, Settings, log, machine_lines, markdown_table  # noqa: E402

BENCHMARKS = {
    "in_place": in_place,
    "step_read": step_read,
    "sink": sink,
    "hot_path": hot_path,
    "fit": fit_overhead,
    "graph": graph_step_counter,
    "v1_hook": v1_hook,
    "accuracy": accuracy,
    "rerun_read": rerun_read,
    "report_speed": report_speed,
    "input_wait": input_wait,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny mode, for smoke tests")
    parser.add_argument(
        "--rounds", type=int, default=0, help="interleaved rounds per row (default 9; 3 quick)"
    )
    parser.add_argument(
        "--only", choices=sorted(BENCHMARKS), action="append",
        help="run only this benchmark (repeatable)",
    )
    args = parser.parse_args(argv)
    settings = Settings.make(args.quick, args.rounds)

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # The counters' INFO lines would bury the table.
    rows, failed = [], False
    started = time.perf_counter()
    for name in args.only or BENCHMARKS:
        log(f"benchmark {name} ...")
        row_start = time.perf_counter()
        try:
            rows.extend(BENCHMARKS[name].run(settings))
        except Exception as error:  # Report the row, run the others.
            failed = True
            traceback.print_exc()
            rows.append(Row(name, "error", "", f"{type(error).__name__}: {error}", "", "error"))
        log(f"benchmark {name}: {time.perf_counter() - row_start:.1f} s")

    mode = "quick" if settings.quick else "full"
    print(f"keras_stepcounter benchmarks ({mode} mode, {settings.rounds} rounds per row, "
          f"{time.perf_counter() - started:.0f} s)\n")
    print("\n".join(machine_lines()))
    print()
    print(markdown_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
