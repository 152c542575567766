"""Command line: `python -m keras_stepcounter report LOGDIR [--json] [--plot FILE.png]`.

Exit codes: 0 on success, 2 for a usage error, a LOGDIR that does not
exist or holds no rate records, or `--plot` without matplotlib (the message
goes to stderr, without a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

# Reading event files imports TensorFlow (through TensorBoard); keep its
# C++ start-up chatter out of the report.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_stepcounter",
        description="Read back what keras_stepcounter recorded.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    report = commands.add_parser(
        "report",
        help="summarise the steps/sec records of every run under LOGDIR",
        description=(
            "Per run and tag (tags ending in /sec, time_to_first_step, mfu): "
            "records, steps covered, median / p10 / p90 / min (numpy's linear "
            "percentiles) and stalls (records below half the run's median)."
        ),
    )
    report.add_argument(
        "logdir", metavar="LOGDIR", help="directory of runs (as for tensorboard)"
    )
    report.add_argument(
        "--json", action="store_true", help="print the summary as JSON, not a table"
    )
    report.add_argument(
        "--plot", metavar="FILE.png", help="also plot rate against step per run"
    )
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from keras_stepcounter.tools import plot, report

    if args.plot:
        try:
            plot.require_matplotlib()  # Fail before the slow part.
        except plot.PlotUnavailableError as error:
            return _fail(str(error))
    try:
        result = report.load_report(args.logdir)
    except report.ReportError as error:
        return _fail(str(error))
    if args.json:
        print(json.dumps(result.to_json_dict(), indent=2))
    else:
        print(result.table())
    if args.plot:
        try:
            plot.plot_rates(result, args.plot)
        except OSError as error:
            return _fail(f"cannot write the plot to {args.plot!r}: {error}")
        print(f"Plot written to {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
