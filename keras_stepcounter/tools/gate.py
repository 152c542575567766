"""The CI gate, `report --baseline RUN --fail-slower PCT`: three outcomes.

With `line = 1 - PCT / 100`, each comparison (`compare`: one run and rate
tag against the baseline's, throughput ratio with its 95% interval) is

* failed: slower by more than PCT with confidence, the interval's upper
  end below `line`;
* passed: shown not slower than that, the interval's lower end at or
  above `line`;
* undecided: anything else, one line of reason each: an interval across
  the line, no interval (too few effective records, or none), a run that
  shares no rate tag with the baseline, no run beside the baseline.

The outcome is the worst one found: fail before undecided before pass.
Exit codes (`cli`): 0 passed, 1 failed, 3 undecided (2 stays bad usage).

Example:

    outcome = judge(report.comparisons, report.runs, "main", percent=10)
    print(outcome.code, outcome.lines)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, List, Mapping, Sequence

from keras_stepcounter.tools.confidence import CONFIDENCE, MIN_EFFECTIVE
from keras_stepcounter.tools.results import Comparison

PASSED: Final = 0
FAILED: Final = 1
UNDECIDED: Final = 3


@dataclass
class GateOutcome:
    """The gate's exit code, and its lines (`slower: ...`, `undecided: ...`)."""

    code: int = PASSED
    failed: List[str] = field(default_factory=list)
    undecided: List[str] = field(default_factory=list)

    @property
    def lines(self) -> List[str]:
        return [f"slower: {line}" for line in self.failed] + [
            f"undecided: {line}" for line in self.undecided
        ]


def _interval(c: Comparison) -> str:
    return f"ratio {c.ratio:.3f}, {CONFIDENCE:.0%} interval {c.low:.3f}-{c.high:.3f}"


def judge(
    comparisons: Sequence[Comparison],
    runs: Mapping[str, object],
    baseline: str,
    percent: float,
) -> GateOutcome:
    """The gate's outcome for `comparisons` against a `percent` slowdown.

    Args:
        comparisons: Every run's comparisons with `baseline` (`compare_runs`).
        runs: The report's runs by name (the baseline among them).
        baseline: The baseline run's name.
        percent: PCT, above 0 and below 100.
    """
    line = 1 - percent / 100
    outcome = GateOutcome()
    others = [run for run in runs if run != baseline]
    if not others:
        outcome.undecided.append(f"no run beside the baseline {baseline} to compare")
    compared = {c.run for c in comparisons}
    outcome.undecided += [
        f"run {run} shares no rate tag with the baseline {baseline}"
        for run in others if run not in compared
    ]
    for c in comparisons:
        what = f"run {c.run} ({c.tag}) against the baseline {c.baseline}"
        if c.low is None or c.high is None or c.ratio is None:
            outcome.undecided.append(f"{what}: {_declined(c)}")
        elif c.high < line:
            outcome.failed.append(
                f"{what} is slower by more than {percent:g}%: {_interval(c)}"
            )
        elif c.low < line:
            outcome.undecided.append(
                f"{what}: the interval crosses {line:.3g} ({_interval(c)}); "
                "more records, or a quieter machine, can tell"
            )
    if outcome.failed:
        outcome.code = FAILED
    elif outcome.undecided:
        outcome.code = UNDECIDED
    return outcome


def _declined(c: Comparison) -> str:
    if not c.records or not c.baseline_records:
        side = "the run" if not c.records else "the baseline"
        return f"no records to compare in {side} after warm-up"
    return (
        f"too few effective records to tell ({c.effective:.1f}, at least "
        f"{MIN_EFFECTIVE:g} needed on each side: {c.records} and "
        f"{c.baseline_records} records, autocorrelated)"
    )
