"""Throughput, `baseline_step`, the gate's three outcomes and what the
report prints about slow records, on event files written here with
`tf.summary` under the counter's tags, at known rates (exact answers).
"""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_stepcounter.tools import cli, report
from keras_stepcounter.tools.throughput import fallback_notice, measured_intervals
from keras_stepcounter.tools.events import ScalarRecord


def write(run_dir, records):
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        for tag, step, value in records:
            tf.summary.scalar(tag, value, step=step)
    writer.close()


def rate_records(rates, every=10, start=1):
    """`baseline_step` at `start`, then a rate record every `every` steps."""
    return [("baseline_step", start, float(start))] + [
        ("global_step/sec", start + every * (i + 1), float(r))
        for i, r in enumerate(rates)
    ]


def run_cli(capsys, *args):
    code = cli.main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def noisy(seed, n, sigma=0.03, level=10.0):
    return level * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))


# Which steps a record covers.

def records_at(pairs):
    return [ScalarRecord(step, value, 0.0) for step, value in pairs]


def test_a_records_steps_start_at_the_later_of_its_baseline_and_the_record_before():
    found = measured_intervals(
        records_at([(11, 5.0), (21, 5.0), (45, 4.0), (55, 2.0)]), baselines=[1, 41]
    )
    # A second fit took its baseline at 41: the record at 45 covers 4 steps.
    assert [i.steps for i in found] == [10, 10, 4, 10]
    assert [i.secs for i in found] == [2.0, 2.0, 1.0, 5.0]


def test_without_baseline_step_the_first_record_has_no_known_steps():
    found = list(measured_intervals(records_at([(11, 5.0), (21, 5.0), (45, 4.0)]), None))
    assert [i.steps for i in found] == [None, 10, 24]
    assert found[0].secs is None


def test_non_finite_and_zero_rates_hold_no_seconds():
    found = measured_intervals(
        records_at([(11, math.nan), (21, 0.0), (31, math.inf), (41, 2.0)]), [1]
    )
    assert [i.secs for i in found] == [None, None, None, 5.0]


def test_throughput_over_two_fits_and_the_fallback_notice_once_per_run(
    tmp_path, capsys
):
    two_fits = rate_records([5.0, 5.0]) + [
        ("baseline_step", 41, 41.0), ("global_step/sec", 45, 4.0),
        ("global_step/sec", 55, 2.0),
    ]
    write(tmp_path / "new", two_fits)
    old = [r for r in two_fits if r[0] != "baseline_step"]
    write(tmp_path / "old", [
        record for tag, step, value in old
        for record in ((tag, step, value), ("examples/sec", step, 32 * value))
    ])
    code, out, err = run_cli(capsys, tmp_path, "--json")
    assert code == 0
    data = json.loads(out)
    # 10 + 10 + 4 + 10 steps in 2 + 2 + 1 + 5 seconds.
    assert data["runs"]["new"]["global_step/sec"]["throughput"] == pytest.approx(3.4)
    # The old file: the first record left out, the third covers 24 steps.
    assert data["runs"]["old"]["global_step/sec"]["throughput"] == pytest.approx(
        44 / (2 + 6 + 5)
    )
    assert err == f"notice: {fallback_notice('old')}\n"


# The gate: pass, fail, undecided.

def test_a_run_whose_last_40_percent_ran_at_45_percent_fails_the_gate(
    tmp_path, capsys
):
    base = noisy(0, 60)
    slow = noisy(1, 60)
    slow[36:] *= 0.45
    write(tmp_path / "base", rate_records(base))
    write(tmp_path / "leak", rate_records(slow))
    code, out, err = run_cli(
        capsys, tmp_path, "--baseline", "base", "--fail-slower", "10"
    )
    assert code == 1
    c = report.load_report(str(tmp_path), baseline="base").comparisons[0]
    # Equal steps a record: throughput is the harmonic mean of the rates.
    truth = (1 / (1 / slow[1:]).mean()) / (1 / (1 / base[1:]).mean())
    assert c.ratio == pytest.approx(truth)
    assert 0.6 < c.ratio < 0.7 and c.high < 0.9
    assert c.steady_ratio > 0.9  # The median rate hides what the user lost.
    assert err.startswith("slower: run leak (global_step/sec) against the baseline")
    # The slow records are low records, not stalls; the drop is a slowdown.
    assert "Stalls" not in out
    assert "  leak  global_step/sec  24 of 60 records (median " in out
    assert "Slowdowns (" in out


def test_three_records_at_half_speed_are_undecided(tmp_path, capsys):
    write(tmp_path / "base", rate_records(noisy(0, 60)))
    write(tmp_path / "short", rate_records([5.0, 5.0, 5.0, 5.0]))
    code, out, err = run_cli(
        capsys, tmp_path, "--baseline", "base", "--fail-slower", "10"
    )
    assert code == 3
    assert err.startswith(
        "undecided: run short (global_step/sec) against the baseline base: too "
        "few effective records to tell ("
    )
    assert err.count("\n") == 1


def test_no_shared_tag_is_undecided(tmp_path, capsys):
    write(tmp_path / "base", rate_records(noisy(0, 60)))
    write(tmp_path / "other", [("baseline_step", 1, 1.0)] + [
        ("items/sec", 10 * i + 11, 5.0) for i in range(40)
    ])
    code, _, err = run_cli(capsys, tmp_path, "--baseline", "base", "--fail-slower", "5")
    assert (code, err) == (
        3, "undecided: run other shares no rate tag with the baseline base\n"
    )


def test_a_run_shown_not_slower_passes(tmp_path, capsys):
    write(tmp_path / "base", rate_records(noisy(0, 100)))
    write(tmp_path / "same", rate_records(noisy(1, 100)))
    code, out, err = run_cli(
        capsys, tmp_path, "--baseline", "base", "--fail-slower", "5"
    )
    assert (code, err) == (0, "")
    assert "no difference this data can resolve" in out


# Long lists and what is reported beside the throughput.

def test_many_low_records_are_summarised_and_json_holds_all(tmp_path, capsys):
    rates = noisy(2, 2000)
    low = np.random.default_rng(3).choice(np.arange(1, 2000), 172, replace=False)
    rates[low] = np.linspace(1.0, 4.0, 172)
    write(tmp_path / "long", rate_records(rates))
    code, out, _ = run_cli(capsys, tmp_path)
    assert code == 0
    [line] = [line for line in out.splitlines() if line.startswith("  long ")]
    lowest = np.sort(rates[low])[:5]
    assert line.startswith(
        "  long  global_step/sec  172 of 2000 records (median "
    )
    assert line.count(" at steps ") == 5
    assert f"lowest: {lowest[0]:.3g} at steps " in line
    assert line.endswith("(--json lists all)")
    code, out, _ = run_cli(capsys, tmp_path, "--json")
    assert len(json.loads(out)["runs"]["long"]["global_step/sec"]["low_records"]) == 172


def test_watchdog_stalls_are_given_with_the_share_they_cost(tmp_path, capsys):
    # 40 records of 10 steps at 10 steps/s: 1 s each; a 4 s stall at 101.
    write(tmp_path / "base", rate_records([10.0] * 41))
    write(tmp_path / "stalled", rate_records([10.0] * 41) + [("stall_secs", 101, 4.0)])
    result = report.load_report(str(tmp_path), baseline="base")
    [c] = result.comparisons
    assert (c.stall_secs, c.stall_share) == (4.0, pytest.approx(4 / 40))
    rows = [line for line in result.table().splitlines()
            if line.startswith("stalled ")]
    assert "4 s (10.0%)" in rows[-1]  # The comparison's row.


def test_an_input_bound_run_is_named(tmp_path, capsys):
    records = [
        record for record in rate_records([10.0] * 10)
        for record in [record] + (
            [("time_frac/input", record[1], 0.8)] if record[0] != "baseline_step"
            else []
        )
    ]
    write(tmp_path / "fed", records)
    text = report.load_report(str(tmp_path)).table()
    assert (
        "  fed  80% of training time waiting for input: fed waits on its input "
        "80% of training time; a faster input pipeline (prefetch, more "
        "workers) speeds it up"
    ) in text.splitlines()


def test_the_ledger_shows_input_wait_right_after_step_time(tmp_path):
    ledger = {"total_secs": 10.0, "startup_secs": 1.0, "step_secs": 4.0,
              "other_secs": 1.0, "input_secs": 4.0, "fraction": 0.4}
    write(tmp_path / "fed", [(f"goodput/{k}", 50, v) for k, v in ledger.items()])
    text = report.load_report(str(tmp_path)).table().splitlines()
    at = text.index("    bucket   seconds   share")
    assert [line.split()[0] for line in text[at + 1:at + 6]] == [
        "startup", "step", "input", "other", "total"
    ]
    assert text[at + 3].split() == ["input", "4.00", "40.0%"]
