"""Command line: `python -m keras_stepcounter report LOGDIR [--json] [--plot FILE]`.

Output: the report on stdout (a table and sections, or strict JSON with
`--json`); on stderr, one `notice:` line per file that could not be read
or was read only in part, and per directory split into several runs.

Exit codes: 0 when a report was printed (notices or not); 2 for a usage
error: a wrong argument, a LOGDIR that does not exist, cannot be read or
holds no records of the recorders' tags, a `--plot` path matplotlib cannot
write (no or an unknown extension, a directory, not writable), or `--plot`
without matplotlib; 1 for anything unexpected; 130 when interrupted.
Every error is one line on stderr, never a traceback.

Nothing here imports TensorFlow, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, NoReturn, Optional

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m keras_stepcounter",
        description="Read back what keras_stepcounter recorded.",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    commands.required = True
    report = commands.add_parser(
        "report",
        help="summarise the steps/sec records of every run under LOGDIR",
        description=(
            "Per run and tag (tags ending in /sec, time_to_first_step, mfu): "
            "records, steps covered, median / p10 / p90 / min (numpy's linear "
            "percentiles, NaN and inf left out) and stalls (records below half "
            "the run's median); then, where recorded, step times, the "
            "watchdog's stalls, the goodput ledger and time_frac/<name>. "
            "Files that cannot be read are named on stderr; a directory whose "
            "steps start over is reported as separate runs."
        ),
    )
    report.add_argument(
        "logdir",
        metavar="LOGDIR",
        help="directory of runs (as for tensorboard), or one event file",
    )
    report.add_argument(
        "--json",
        action="store_true",
        help="print the summary as strict JSON, not a table",
    )
    report.add_argument(
        "--plot", metavar="FILE.png",
        help="also plot rate (and step time) against step per run; the "
        "extension picks the format (png, pdf, svg, ...)",
    )
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _report(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:  # The promise is: never a traceback.
        print(f"error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def _report(args: argparse.Namespace) -> int:
    from keras_stepcounter.tools import formatting, plot, report

    if args.plot:
        try:
            plot.check_plot_path(args.plot)  # Fail before the slow part.
        except (plot.PlotUnavailableError, plot.PlotPathError) as error:
            return _fail(str(error))
    try:
        result = report.load_report(args.logdir)
    except report.ReportError as error:
        report.print_notices(error.notices)
        return _fail(str(error))
    report.print_notices(result.notices)
    print(formatting.to_json_text(result) if args.json else result.table())
    if args.plot:
        try:
            plot.plot_rates(result, args.plot)
        except Exception as error:  # OSError, or a format's own tool missing.
            return _fail(f"cannot write the plot to {args.plot!r}: {error}")
        print(f"Plot written to {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
