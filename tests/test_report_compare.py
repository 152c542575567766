"""`report --baseline`, `--fail-slower`, `--from-step` and the slowdown
section, on event files written by real short runs.

Four runs of a custom loop under a real `StepCounter` (`report_runs`), at
the same time so the machine's load is shared: `base`, its `twin` (the same
configuration, other noise), `slower` (every step 1.25 times as long, the
noise of `base`: a true rate ratio of 0.8), and `halved` (its step time
doubles at step 200). The statistics are seeded; nothing here asserts a
duration.
"""

import json
import re

import numpy as np
import pytest

from keras_stepcounter.tools import cli, plot, report
from report_runs import EVERY_N_STEPS, STEP_SECS, STEPS, run_at_once, steady

TRUE_RATIO = 0.8
HALVED_AT = STEPS // 2  # Steps after this one take twice as long.


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    halved = np.concatenate(
        [steady(steps=HALVED_AT), steady(2 * STEP_SECS, STEPS - HALVED_AT)]
    )
    run_at_once({
        str(root / "compare" / "base"): (steady(), 0),
        str(root / "compare" / "twin"): (steady(), 1),
        str(root / "compare" / "slower"): (steady(STEP_SECS / TRUE_RATIO), 0),
        str(root / "slowdown" / "halved"): (halved, 2),
    })
    return root


@pytest.fixture(scope="module")
def compared(logs):
    return report.load_report(str(logs / "compare"), baseline="base")


def only(items, run, tag="global_step/sec"):
    [item] = [i for i in items if i.run == run and i.tag == tag]
    return item


def reject_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def run_cli(capsys, *args):
    """Exit code, stdout, and stderr without the notice a run gets where the
    counter wrote no `baseline_step` (test_report_throughput.py checks it)."""
    code = cli.main(["report", *map(str, args)])
    captured = capsys.readouterr()
    err = "".join(
        line for line in captured.err.splitlines(keepends=True)
        if "no baseline_step records" not in line
    )
    return code, captured.out, err


# Comparing with a baseline.

def test_a_slower_run_is_called_slower_with_the_true_ratio_in_its_interval(compared):
    c = only(compared.comparisons, "slower")
    assert (c.baseline, c.verdict) == ("base", "slower")
    assert c.low < TRUE_RATIO < c.high
    assert c.ratio == pytest.approx(c.throughput / c.baseline_throughput)
    # 79 records, the first left out as warm-up; nothing else dropped.
    assert (c.records, c.baseline_records, c.left_out) == (78, 78, 0)
    assert c.steady_ratio == pytest.approx(TRUE_RATIO, rel=0.1)
    examples = only(compared.comparisons, "slower", "examples/sec")
    assert examples.verdict == "slower"
    assert examples.ratio == pytest.approx(c.ratio, rel=1e-6)  # 32 x the rate


def test_identical_configurations_are_not_told_apart(compared):
    for tag in ("global_step/sec", "examples/sec"):
        assert only(compared.comparisons, "twin", tag).verdict == "no difference"
    assert [(c.run, c.tag) for c in compared.comparisons] == [
        ("slower", "global_step/sec"), ("slower", "examples/sec"),
        ("twin", "global_step/sec"), ("twin", "examples/sec"),
    ]


def test_the_same_files_give_the_same_figures(logs, capsys):
    first = run_cli(capsys, logs / "compare", "--baseline", "base", "--json")
    assert first[0] == 0
    assert run_cli(capsys, logs / "compare", "--baseline", "base", "--json") == first


def test_from_step_leaves_out_the_records_before_it(logs, compared):
    later = report.load_report(str(logs / "compare"), baseline="base", from_step=200)
    c = only(later.comparisons, "slower")
    # Records at 206 to 396 measure from step 201 on: 39.
    assert (c.records, c.baseline_records) == (39, 39)
    assert c.verdict == "slower" and c.low < TRUE_RATIO < c.high
    assert later.from_step == 200
    assert "records before step 200 left out as warm-up" in later.table()
    assert "records before step" not in compared.table()


def test_comparison_in_the_text_report(compared):
    lines = compared.table().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Compared")))
    assert lines[start] == (
        "Compared with the baseline run base (throughput: steps / training "
        "seconds; ratio with its 95% interval, which allows for autocorrelated "
        "records; each run's first record left out as warm-up; a verdict needs "
        "the whole interval beyond 1 +/- 0.02; steady: ratio of median rates; "
        "stalls: the watchdog's, with the share of training time they cost):"
    )
    rows = [line.split()[:2] for line in lines[start + 1:start + 8]]
    assert rows == [
        ["run", "tag"], ["base", "global_step/sec"], ["base", "examples/sec"],
        ["slower", "global_step/sec"], ["slower", "examples/sec"],
        ["twin", "global_step/sec"], ["twin", "examples/sec"],
    ]
    c = only(compared.comparisons, "slower")
    assert lines[start + 4].split()[2:] == [
        str(c.records), f"{c.throughput:.1f}", f"{c.ratio:.3f}",
        f"{c.low:.3f}-{c.high:.3f}", f"{c.steady_ratio:.3f}", "-", "slower", "by",
        f"{100 * (1 - c.ratio):.1f}%",
    ]
    assert lines[start + 2].split()[2:] == [
        str(c.baseline_records), f"{c.baseline_throughput:.1f}", "1", "-", "1",
        "-", "baseline",
    ]
    twin = only(compared.comparisons, "twin")
    assert lines[start + 6].endswith("no difference this data can resolve")
    assert f"{twin.low:.3f}-{twin.high:.3f}" in lines[start + 6]


def test_comparison_in_json(logs, compared, capsys):
    code, out, err = run_cli(
        capsys, logs / "compare", "--baseline", "base", "--json"
    )
    assert (code, err) == (0, "")
    data = json.loads(out, parse_constant=reject_constant)
    comparison = data["comparison"]
    assert {k: v for k, v in comparison.items() if k != "runs"} == {
        "baseline": "base", "confidence": 0.95, "margin": 0.02,
        "min_effective": 10.0,
    }
    assert list(comparison["runs"]) == ["slower", "twin"]
    c = only(compared.comparisons, "slower")
    assert comparison["runs"]["slower"]["global_step/sec"] == {
        "records": c.records, "baseline_records": c.baseline_records,
        "left_out": 0, "baseline_left_out": 0, "throughput": c.throughput,
        "baseline_throughput": c.baseline_throughput, "ratio": c.ratio,
        "low": c.low, "high": c.high, "effective": c.effective,
        "steady_ratio": c.steady_ratio, "stall_secs": 0.0, "stall_share": 0.0,
        "baseline_stall_secs": 0.0, "baseline_stall_share": 0.0,
        "verdict": "slower",
    }
    assert data["from_step"] is None and data["slowdowns"] == {}


# The CI gate.

GATE_LINE = re.compile(
    r"slower: run slower \((global_step|examples)/sec\) against the baseline base "
    r"is slower by more than 10%: ratio (0\.\d{3}), 95% interval "
    r"(0\.\d{3})-(0\.\d{3})"
)


def test_the_gate_fails_naming_the_run_its_ratio_and_interval(logs, capsys):
    code, out, err = run_cli(
        capsys, logs / "compare", "--baseline", "base", "--fail-slower", "10"
    )
    assert code == 1
    assert out.splitlines()[0].startswith("run ")  # The report comes first.
    lines = [line for line in err.splitlines() if line.startswith("slower:")]
    assert len(lines) == 2, err
    for line, tag in zip(lines, ("global_step", "examples")):
        found = GATE_LINE.fullmatch(line)
        assert found and found.group(1) == tag, line
        low, high = float(found.group(3)), float(found.group(4))
        assert low < float(found.group(2)) < high < 0.9


def test_the_gate_passes_when_every_run_is_shown_not_that_much_slower(logs, capsys):
    code, out, err = run_cli(
        capsys, logs / "compare", "--baseline", "base", "--fail-slower", "30"
    )
    assert (code, err) == (0, "")
    assert "slower by" in out


def test_the_gate_is_undecided_when_an_interval_crosses_its_line(logs, capsys):
    c = only(report.load_report(str(logs / "compare"), baseline="base").comparisons,
             "slower")
    # A line inside the slower run's interval: neither shown nor ruled out.
    percent = 100 * (1 - (c.low + c.high) / 2)
    code, _, err = run_cli(
        capsys, logs / "compare", "--baseline", "base", "--fail-slower", percent
    )
    assert code == 3
    assert "undecided: run slower (global_step/sec) against the baseline base: " \
        "the interval crosses" in err
    assert "slower:" not in err


def test_identical_configurations_fail_only_the_slower_run(logs, capsys):
    code, _, err = run_cli(
        capsys, logs / "compare", "--baseline", "twin", "--fail-slower", "5",
        "--json",
    )
    assert (code, err.count("slower: run slower ")) == (1, 2)
    assert "slower: run base " not in err


@pytest.mark.parametrize("args, message", [
    (["--fail-slower", "10"],
     "error: --fail-slower needs --baseline RUN: the run to compare with"),
    (["--baseline", "base", "--fail-slower", "0"],
     "error: argument --fail-slower: expected a percentage above 0 and below "
     "100, got '0'"),
    (["--baseline", "base", "--fail-slower", "100"],
     "error: argument --fail-slower: expected a percentage above 0 and below "
     "100, got '100'"),
    (["--baseline", "base", "--fail-slower", "nan"],
     "error: argument --fail-slower: expected a percentage above 0 and below "
     "100, got 'nan'"),
    (["--baseline", "base", "--fail-slower", "ten"],
     "error: argument --fail-slower: expected a percentage above 0 and below "
     "100, got 'ten'"),
    (["--from-step", "-1"],
     "error: argument --from-step: expected a step (an integer >= 0), got '-1'"),
    (["--from-step", "1.5"],
     "error: argument --from-step: expected a step (an integer >= 0), got '1.5'"),
])
def test_bad_gate_options_are_one_line_usage_errors(logs, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(logs / "compare"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_baseline_that_is_no_run_is_a_usage_error(logs, capsys):
    code, out, err = run_cli(capsys, logs / "compare", "--baseline", "main")
    assert (code, out) == (2, "")
    assert err == (
        f"error: baseline 'main' is not a run under {str(logs / 'compare')!r} "
        "(its runs: base, slower, twin).\n"
    )


# Slowdowns within a run.

def test_a_halfway_slowdown_is_found_at_its_step(logs):
    found = report.load_report(str(logs / "slowdown")).slowdowns
    assert [(s.run, s.tag) for s in found] == [
        ("halved", "global_step/sec"), ("halved", "examples/sec")
    ]
    s = found[0]
    # Within two records of the step where the step time doubled.
    assert abs(s.from_step - HALVED_AT) <= 2 * EVERY_N_STEPS
    # A step change is a ramp one record long; a record slowed by a busy
    # machine (this run's timing is real) can make it two.
    assert s.from_step < s.step <= s.from_step + 2 * EVERY_N_STEPS
    assert 0.4 < s.ratio < 0.6
    assert s.ratio == pytest.approx(s.rate_after / s.rate_before)
    assert s.records_before + s.records_during + s.records_after == 78


def test_steady_runs_show_no_slowdown(compared):
    assert compared.slowdowns == []
    assert "Slowdowns" not in compared.table()


def test_slowdown_in_the_text_report_and_json(logs, capsys):
    code, out, err = run_cli(capsys, logs / "slowdown")
    assert (code, err) == (0, "")
    s = report.load_report(str(logs / "slowdown")).slowdowns[0]
    lines = out.splitlines()
    start = lines.index(
        "Slowdowns (the rate dropped and stayed down, at once or as a drift; "
        "ratio: the rate after / before):"
    )
    assert lines[start + 1] == (
        f"  halved  global_step/sec  after step {s.from_step} (slow from the "
        f"record at step {s.step}): {s.ratio:.3f}, "
        f"{s.rate_before:.1f} -> {s.rate_after:.1f}"
    )
    code, out, _ = run_cli(capsys, logs / "slowdown", "--json")
    data = json.loads(out, parse_constant=reject_constant)
    [first, second] = data["slowdowns"]["halved"]
    assert first == {
        "tag": "global_step/sec", "from_step": s.from_step, "step": s.step,
        "rate_before": s.rate_before, "rate_after": s.rate_after,
        "ratio": s.ratio, "score": s.score, "records_before": s.records_before,
        "records_during": 0, "records_after": s.records_after,
    }
    assert second["tag"] == "examples/sec"


def test_from_step_after_the_slowdown_leaves_none(logs):
    later = report.load_report(str(logs / "slowdown"), from_step=HALVED_AT + 10)
    assert later.slowdowns == []


# The plot.

def test_plot_marks_the_baseline_and_the_slowdown(logs, capsys, tmp_path):
    found = report.load_report(str(logs), baseline="compare/base")
    [axes, *_] = plot.rate_figure(found).axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    base = only(found.summaries, "compare/base")
    assert lines["compare/base (baseline)"].get_linewidth() == 2.5
    level = lines["baseline median (global_step/sec)"]
    assert list(level.get_ydata()) == [base.median, base.median]
    [s] = [s for s in found.slowdowns if s.tag == "global_step/sec"]
    mark = lines[f"slowdown/halved: slower after step {s.from_step} (x{s.ratio:.2f})"]
    assert list(mark.get_xdata()) == [s.from_step, s.from_step]
    assert mark.get_color() == lines["slowdown/halved"].get_color()
    path = tmp_path / "rates.png"
    code, _, err = run_cli(capsys, logs, "--baseline", "compare/base", "--plot", path)
    assert (code, err) == (0, f"Plot written to {path}\n")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
