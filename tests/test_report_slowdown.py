"""The statistics behind `report --baseline`, the gate and the slowdown
section, on synthetic records with fixed seeds: exact answers, no timing.
(Coverage, false alarms and power over many seeds: test_report_coverage.py.)

Noisy rates are lognormal around a level, independent or autocorrelated
(AR(1) in the log: a busy machine's slow minutes span several records).
"""

import math

import numpy as np
import pytest

from keras_stepcounter.tools import compare, confidence, gate, slowdown
from keras_stepcounter.tools.events import ScalarRecord
from keras_stepcounter.tools.report import ReportError, load_report
from keras_stepcounter.tools.results import Comparison
from keras_stepcounter.tools.slowdown import find_slowdown
from conftest import FakeClock
from report_runs import run_steps

EVERY = 10


def noisy(seed, n, sigma, phi=0.0, level=100.0):
    """n rates around `level`: log noise of deviation `sigma`, AR(1) `phi`."""
    shocks = np.random.default_rng(seed).normal(0.0, sigma, n)
    logs = np.zeros(n)
    for i in range(n):
        logs[i] = (phi * logs[i - 1] if i else 0.0) + shocks[i] * math.sqrt(1 - phi**2)
    return level * np.exp(logs)


def records(values):
    """A first record (left out: it holds the start-up), then `values`, every
    10 steps: the value at index i is recorded at step 10 * i + 21."""
    values = [1.0, *values]
    return [
        ScalarRecord(EVERY * i + 11, float(v), float(i)) for i, v in enumerate(values)
    ]


def step_of(index):
    return EVERY * index + 21


# The slowdown detector.

HALVINGS = [(seed, n, sigma) for seed in range(10) for n, sigma in
            [(40, 0.05), (60, 0.1), (200, 0.1), (200, 0.2)]]


def halved(seed, n, sigma):
    values = noisy(seed, n, sigma, phi=0.3)
    values[n // 2:] /= 2  # The step time doubles from record n // 2 on.
    return find_slowdown("run", "global_step/sec", records(values))


@pytest.mark.parametrize("seed, n, sigma", HALVINGS)
def test_a_halving_is_found_at_its_record(seed, n, sigma):
    s = halved(seed, n, sigma)
    if sigma < 0.2:
        assert (s.from_step, s.step) == (step_of(n // 2 - 1), step_of(n // 2))
    else:  # Records 20% apart: within two records.
        assert abs(s.step - step_of(n // 2)) <= 2 * EVERY
        assert abs(s.from_step - step_of(n // 2 - 1)) <= 2 * EVERY
    assert (s.records_before, s.records_during, s.records_after) == (
        (s.from_step - step_of(0)) // EVERY + 1,
        (s.step - s.from_step) // EVERY - 1,
        n - (s.step - step_of(0)) // EVERY,
    )
    assert s.ratio == pytest.approx(s.rate_after / s.rate_before)
    assert 0.4 < s.ratio < 0.6
    assert s.score > slowdown.THRESHOLD


@pytest.mark.parametrize("n, sigma, phi", [
    (20, 0.05, 0.0), (60, 0.05, 0.0), (60, 0.1, 0.0), (60, 0.05, 0.5),
    (200, 0.1, 0.0), (200, 0.1, 0.5),
])
def test_steady_noisy_runs_show_none(n, sigma, phi):
    found = [
        seed for seed in range(25)
        if find_slowdown("run", "global_step/sec", records(noisy(seed, n, sigma, phi)))
    ]
    assert found == []


def drifted(seed, before, ramp, after, sigma=0.05, phi=0.3):
    """A level, a linear fall of the log rate to half over `ramp` records
    (from record `before` to `before + ramp - 1`), a level."""
    levels = np.concatenate([
        np.zeros(before), np.linspace(0.0, math.log(0.5), ramp), np.full(
            after, math.log(0.5))
    ])
    return noisy(seed, len(levels), sigma, phi) * np.exp(levels)


@pytest.mark.parametrize("seed", range(5))
def test_a_drift_to_half_over_40_records_is_named_with_its_ramp(seed):
    values = drifted(seed, 30, 40, 30)
    s = find_slowdown("run", "global_step/sec", records(values))
    # The ramp runs from record 29 (the last at the old rate) to 69.
    assert abs(s.from_step - step_of(29)) <= 4 * EVERY
    assert abs(s.step - step_of(69)) <= 4 * EVERY
    assert s.records_during > 30
    assert 0.4 < s.ratio < 0.6


def test_a_leak_from_the_first_record_to_the_last_is_named():
    values = drifted(0, 0, 40, 0)
    s = find_slowdown("run", "global_step/sec", records(values))
    assert s.from_step <= step_of(4) and s.step >= step_of(35)
    assert 0.4 < s.ratio < 0.65


def test_a_drop_of_a_fifth_is_found_and_one_of_two_percent_is_not():
    values = noisy(0, 100, 0.05, phi=0.3)
    values[60:] *= 0.8
    s = find_slowdown("run", "global_step/sec", records(values))
    assert (s.from_step, s.step) == (step_of(59), step_of(60))
    assert 0.75 < s.ratio < 0.85
    values = noisy(0, 100, 0.01)
    values[60:] *= 0.98  # Clear, but within the margin: not a slowdown.
    assert find_slowdown("run", "global_step/sec", records(values)) is None


def test_a_dip_that_recovers_is_not_a_slowdown():
    values = noisy(1, 80, 0.05, phi=0.3)
    values[30:55] /= 2
    assert find_slowdown("run", "global_step/sec", records(values)) is None


def test_a_drop_that_recovers_in_part_is_still_one():
    values = noisy(2, 90, 0.05)
    values[30:60] *= 0.5
    values[60:] *= 0.7
    s = find_slowdown("run", "global_step/sec", records(values))
    assert s.from_step == step_of(29)


def test_single_low_records_are_not_a_slowdown():
    values = noisy(3, 60, 0.05)
    values[[10, 30, 50, 55, 58]] = 5.0  # Hangs: single records at a twentieth.
    assert find_slowdown("run", "global_step/sec", records(values)) is None


def test_a_slow_start_is_no_slowdown_and_a_fast_one_can_be_left_out():
    values = noisy(4, 60, 0.05)
    values[:10] /= 3  # Warm-up: slower first, then steady.
    assert find_slowdown("run", "global_step/sec", records(values)) is None
    values = noisy(4, 60, 0.05)
    values[:10] *= 2  # A cache, say: fast first.
    s = find_slowdown("run", "global_step/sec", records(values))
    assert (s.from_step, s.step) == (step_of(9), step_of(10))
    # --from-step past it: records measuring steps from there on only.
    later = records(values)
    assert find_slowdown("run", "global_step/sec", later, from_step=step_of(9)) is None
    s = find_slowdown("run", "global_step/sec", later, from_step=step_of(4))
    assert (s.from_step, s.records_before) == (step_of(9), 5)


def test_too_few_records_show_none():
    values = np.array([100.0] * 5 + [50.0] * 4)
    assert find_slowdown("run", "global_step/sec", records(values)) is None


def test_non_finite_and_zero_records_are_left_out():
    values = noisy(5, 60, 0.05)
    values[30:] /= 2
    values[[5, 40]] = math.nan
    values[45] = math.inf
    values[50] = 0.0
    s = find_slowdown("run", "global_step/sec", records(values))
    assert (s.from_step, s.step) == (step_of(29), step_of(30))
    assert (s.records_before, s.records_during, s.records_after) == (29, 0, 27)


def test_the_ramp_fit_is_least_squares():
    # An exact ramp from index 3 to 7, levels 2 and -2: found exactly.
    logs = 2.0 - np.clip(np.arange(12), 3, 7) + 3.0
    a, b, fitted = slowdown.best_ramp(logs)
    assert (a, b) == (3, 7)
    assert fitted.tolist() == pytest.approx(logs.tolist())
    # Rising only: no falling ramp.
    assert slowdown.best_ramp(np.arange(10.0)) is None


def test_a_long_run_is_searched_coarse_then_fine():
    values = noisy(6, 20_000, 0.05, phi=0.3)
    values[12_345:] /= 2
    s = find_slowdown("run", "global_step/sec", records(values))
    assert (s.from_step, s.step) == (step_of(12_344), step_of(12_345))


# The throughput ratio's interval.

def test_effective_records_and_the_conservative_autocorrelation():
    assert confidence.effective_records(100, 0.0) == 100
    assert confidence.effective_records(30, 0.9) == pytest.approx(30 * 0.1 / 1.9)
    white = np.random.default_rng(0).normal(size=400)
    phi = confidence.conservative_phi(white - white.mean())
    # About 1 / 400 of bias back, plus one standard error, 0.05.
    assert 0.0 < phi < 0.12
    assert confidence.conservative_phi(np.zeros(10)) == 0.0


def test_t_quantile_matches_students():
    # Student's t 97.5% quantiles: 2.2622 (9), 2.0423 (30), 1.96 (inf).
    assert confidence.t_quantile(9) == pytest.approx(2.2622, abs=1e-3)
    assert confidence.t_quantile(30) == pytest.approx(2.0423, abs=1e-4)
    assert confidence.t_quantile(math.inf) == pytest.approx(1.95996, abs=1e-5)


def test_the_ratio_is_of_throughput_and_slow_records_count():
    steps = np.full(40, 10.0)
    rates = noisy(7, 40, 0.02)
    base = confidence.throughput_ratio(steps, steps / rates, steps, steps / rates)
    assert base.ratio == pytest.approx(1.0) and base.low < 1 < base.high
    slow = rates.copy()
    slow[-16:] *= 0.45  # The last 40% at 45% speed.
    found = confidence.throughput_ratio(steps, steps / slow, steps, steps / rates)
    expected = (steps.sum() / (steps / slow).sum()) / (
        steps.sum() / (steps / rates).sum())
    assert found.ratio == pytest.approx(expected)
    assert 0.6 < found.ratio < 0.7


def test_too_few_effective_records_decline():
    steps = np.full(30, 10.0)
    rates = noisy(8, 30, 0.05, phi=0.9)
    other = noisy(9, 30, 0.05, phi=0.9)
    found = confidence.throughput_ratio(steps, steps / rates, steps, steps / other)
    assert (found.low, found.high) == (None, None)
    assert found.effective < confidence.MIN_EFFECTIVE
    assert confidence.throughput_ratio(steps[:0], steps[:0], steps, steps) is None


# Comparisons and the gate.

def test_compare_runs_counts_every_record_and_skips_tags_the_baseline_lacks():
    base = records(noisy(8, 30, 0.03))
    slow = records(0.5 * noisy(9, 30, 0.03))
    slow[10] = ScalarRecord(slow[10].step, 1.0, 0.0)  # A very slow record.
    runs = {"base": {"global_step/sec": base},
            "new": {"global_step/sec": slow, "items/sec": slow}}
    [c] = compare.compare_runs(runs, "base")
    assert (c.run, c.tag, c.baseline, c.records, c.baseline_records) == (
        "new", "global_step/sec", "base", 30, 30
    )
    # 10 steps at 1 step/s cost 10 s: the throughput shows it.
    seconds = sum(EVERY / r.value for r in slow[1:])
    assert c.throughput == pytest.approx(300 / seconds)
    assert c.ratio == pytest.approx(c.throughput / c.baseline_throughput)
    assert c.ratio < 0.4 < c.steady_ratio
    assert c.verdict == "slower" and c.low < c.ratio < c.high


def test_compare_with_no_record_left():
    empty = compare.compared_window({}, "global_step/sec", None)
    base = compare.compared_window(
        {"global_step/sec": records([1.0, 2.0])}, "global_step/sec", None
    )
    c = compare.compare("new", "global_step/sec", empty, "base", base)
    assert (c.records, c.baseline_records, c.ratio, c.low, c.verdict) == (
        0, 2, None, None, "cannot tell"
    )
    assert c.baseline_throughput == pytest.approx(20 / (10 / 1 + 10 / 2))


def test_stalls_in_the_window_with_the_share_they_cost():
    base = records([10.0] * 20)  # 10 records of 10 steps at 10/s: 1 s each.
    scalars = {"global_step/sec": base,
               "stall_secs": [ScalarRecord(step_of(5), 2.0, 0.0),
                              ScalarRecord(1, 9.0, 0.0)]}  # Before the window.
    window = compare.compared_window(scalars, "global_step/sec", None)
    assert window.stall_secs == 2.0
    c = compare.compare("r", "global_step/sec", window, "b", window)
    assert c.stall_share == pytest.approx(2.0 / 20)


def made(low, high, ratio=0.9, records=40, effective=20.0):
    return Comparison(
        run="r", tag="global_step/sec", baseline="b", records=records,
        baseline_records=40, left_out=0, baseline_left_out=0, throughput=9.0,
        baseline_throughput=10.0, ratio=ratio, low=low, high=high,
        effective=effective, steady_ratio=ratio, stall_secs=0.0,
        stall_share=0.0, baseline_stall_secs=0.0, baseline_stall_share=0.0,
        verdict="",
    )


RUNS = {"b": {}, "r": {}}


@pytest.mark.parametrize("low, high, code", [
    (0.80, 0.89, gate.FAILED),      # Wholly below 0.9: slower by more than 10%.
    (0.80, 0.90, gate.UNDECIDED),   # Touching the line: not shown either way.
    (0.85, 0.95, gate.UNDECIDED),   # Across it.
    (0.90, 0.99, gate.PASSED),      # At or above it: not slower than that.
    (None, None, gate.UNDECIDED),   # Declined: too few effective records.
])
def test_the_gate_has_three_outcomes(low, high, code):
    assert gate.judge([made(low, high)], RUNS, "b", 10).code == code


def test_the_gate_fails_before_it_is_undecided_before_it_passes():
    found = [made(0.95, 1.05), made(None, None, effective=3.0), made(0.7, 0.8)]
    outcome = gate.judge(found, RUNS, "b", 10)
    assert outcome.code == gate.FAILED
    assert outcome.lines == [
        "slower: run r (global_step/sec) against the baseline b is slower by more "
        "than 10%: ratio 0.900, 95% interval 0.700-0.800",
        "undecided: run r (global_step/sec) against the baseline b: too few "
        "effective records to tell (3.0, at least 10 needed on each side: 40 and "
        "40 records, autocorrelated)",
    ]
    assert gate.judge(found[:2], RUNS, "b", 10).code == gate.UNDECIDED
    assert gate.judge(found[:1], RUNS, "b", 10).code == gate.PASSED


def test_the_gate_is_undecided_without_a_shared_tag_or_another_run():
    outcome = gate.judge([], {"b": {}, "r": {}}, "b", 10)
    assert (outcome.code, outcome.lines) == (gate.UNDECIDED, [
        "undecided: run r shares no rate tag with the baseline b"
    ])
    outcome = gate.judge([], {"b": {}}, "b", 10)
    assert (outcome.code, outcome.lines) == (gate.UNDECIDED, [
        "undecided: no run beside the baseline b to compare"
    ])


# Bad input to the Python API.

def test_from_step_must_be_a_step(tmp_path):
    with pytest.raises(TypeError, match=r"^from_step must be an int, got '5'\.$"):
        load_report(str(tmp_path), from_step="5")
    with pytest.raises(TypeError, match=r"^from_step must be an int, got True\.$"):
        load_report(str(tmp_path), from_step=True)
    with pytest.raises(ValueError, match=r"^from_step must be at least 0, got -1\.$"):
        load_report(str(tmp_path), from_step=-1)


def test_an_unknown_baseline_names_the_runs(tmp_path):
    run_steps(str(tmp_path / "a"), [0.01] * 20, seed=0, fake_clock=FakeClock())
    with pytest.raises(ReportError) as error:
        load_report(str(tmp_path), baseline="b")
    assert str(error.value) == (
        f"baseline 'b' is not a run under {str(tmp_path)!r} (its runs: a)."
    )


def test_too_few_records_to_compare_and_no_tag_to_compare(tmp_path):
    run_steps(str(tmp_path / "long"), [0.01] * 50, seed=0, fake_clock=FakeClock())
    # 4 records: 3 after the first.
    run_steps(str(tmp_path / "short"), [0.01] * 25, seed=1, fake_clock=FakeClock())
    [c] = [c for c in load_report(str(tmp_path), baseline="long").comparisons
           if c.tag == "global_step/sec"]
    assert (c.records, c.baseline_records, c.low, c.high) == (3, 8, None, None)
    assert c.verdict == "cannot tell"
    table = load_report(str(tmp_path), baseline="long").table()
    assert f"cannot tell ({c.effective:.1f} effective records, 10 needed)" in table
    alone = load_report(str(tmp_path / "long"), baseline=".").table().splitlines()
    assert alone[-1] == "  no other run shares a rate tag with the baseline"
