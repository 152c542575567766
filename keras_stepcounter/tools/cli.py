"""Command line: `python -m keras_stepcounter report LOGDIR [--json] [--plot FILE]
[--baseline RUN [--fail-slower PCT]] [--from-step N]`.

Output: the report on stdout (a table and sections, or strict JSON with
`--json`); on stderr, one `notice:` line per file that could not be read
or was read only in part, and per directory split into several runs; with
`--fail-slower`, one `slower:` line per run and tag that fails the gate and
one `undecided:` line per one it cannot decide (`gate`).

Exit codes:

* 0: the report was printed (notices or not) and, with `--fail-slower`,
  every run is shown not slower than 1 - PCT with 95% confidence;
* 1: with `--fail-slower`, a run is slower than the baseline by more than
  PCT percent of throughput with 95% confidence (the report is printed
  first); never anything else;
* 2: a usage error: a wrong argument, a LOGDIR that does not exist, cannot
  be read or holds no records of the recorders' tags, a `--baseline` that
  is none of its runs, a `--plot` path matplotlib cannot write (no or an
  unknown extension, a directory, not writable), or `--plot` without
  matplotlib;
* 3: with `--fail-slower`, no run failed but the gate cannot decide for
  some (an interval across the line, too few effective records, no shared
  rate tag, no run beside the baseline);
* 4: an unexpected error, or the reader of the output went away;
* 130: interrupted.

Every error is one line on stderr, never a traceback.

Nothing here imports TensorFlow, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import List, NoReturn, Optional

from keras_stepcounter.core.tags import EXTRA_TAGS, RATE_SUFFIX

USAGE_ERROR = 2
UNEXPECTED_ERROR = 4


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
            f"Per run and tag (tags ending in {RATE_SUFFIX}, "
            f"{', '.join(EXTRA_TAGS)}): "
            "records, steps covered, median / p10 / p90 / min (numpy's linear "
            "percentiles, NaN and inf left out) and stalls (records below half "
            "the run's median); then, where recorded, step times, the "
            "watchdog's stalls, the goodput ledger and time_frac/<name>. "
            "With --baseline, every other run's throughput (steps / training "
            "seconds) over the baseline's, with a 95% interval that allows for "
            "autocorrelated records and a verdict; where a run's rate dropped "
            "and stayed down (at once or as a drift), a slowdown section. "
            "Files that cannot be read are named on stderr; a directory whose "
            "steps start over, or written by two writers at once, is reported "
            "as separate runs. Exit codes: 0 printed (and the gate passed), "
            "1 a run failed --fail-slower, 2 bad input, 3 the gate cannot "
            "decide, 4 unexpected error."
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
    report.add_argument(
        "--baseline", metavar="RUN",
        help="compare every other run's rates with this run's (a run name as "
        "the report lists it)",
    )
    report.add_argument(
        "--fail-slower", metavar="PCT", type=_percent,
        help="with --baseline: exit 1 when a run is slower than the baseline by "
        "more than PCT percent of throughput with 95%% confidence, 0 only when "
        "every run is shown not that much slower, else 3 (undecided)",
    )
    report.add_argument(
        "--from-step", metavar="N", type=_step,
        help="leave out the records that measure steps before N (warm-up) from "
        "the comparison and the slowdowns",
    )
    return parser


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(
            f"expected a percentage above 0 and below 100, got {text!r}"
        )
    return value


def _step(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a step (an integer >= 0), got {text!r}"
        )
    return value


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.fail_slower is not None and args.baseline is None:
        parser.error("--fail-slower needs --baseline RUN: the run to compare with")
    try:
        return _report(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return UNEXPECTED_ERROR
    except Exception as error:  # The promise is: never a traceback.
        print(f"error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return UNEXPECTED_ERROR


def _report(args: argparse.Namespace) -> int:
    from keras_stepcounter.tools import formatting, gate, plot, report

    if args.plot:
        try:
            plot.check_plot_path(args.plot)  # Fail before the slow part.
        except (plot.PlotUnavailableError, plot.PlotPathError) as error:
            return _fail(str(error))
    try:
        result = report.load_report(
            args.logdir, baseline=args.baseline, from_step=args.from_step
        )
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
    if args.fail_slower is not None:
        outcome = gate.judge(
            result.comparisons, result.runs, args.baseline, args.fail_slower
        )
        for line in outcome.lines:
            print(line, file=sys.stderr)
        return outcome.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
