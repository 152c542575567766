"""The statistics behind `report --baseline` and the slowdown section, on
synthetic records with fixed seeds: exact answers, no timing.

Noisy rates are lognormal around a level, independent or autocorrelated
(AR(1) in the log: a busy machine's slow minutes span several records).
"""

import math

import numpy as np
import pytest

from keras_stepcounter.tools import compare, slowdown, stats
from keras_stepcounter.tools.events import ScalarRecord
from keras_stepcounter.tools.report import ReportError, load_report
from keras_stepcounter.tools.results import Comparison, TagSummary
from keras_stepcounter.tools.slowdown import find_slowdown, rank_rows
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
    assert s.step == s.from_step + EVERY
    assert (s.records_before, s.records_after) == (
        (s.step - step_of(0)) // EVERY, n - (s.step - step_of(0)) // EVERY
    )
    assert s.ratio == pytest.approx(s.median_after / s.median_before)
    assert s.high < 0.95


def test_the_interval_of_a_halving_mostly_holds_one_half():
    # 95% intervals, on autocorrelated records (which a bootstrap of few
    # records widens too little): at least 34 of the 40 hold the truth.
    held = [s.low < 0.5 < s.high for s in (halved(*h) for h in HALVINGS)]
    assert sum(held) >= 34, held


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


def test_a_drop_of_a_fifth_is_found_and_one_of_two_percent_is_not():
    values = noisy(0, 100, 0.05, phi=0.3)
    values[60:] *= 0.8
    s = find_slowdown("run", "global_step/sec", records(values))
    assert (s.from_step, s.step) == (step_of(59), step_of(60))
    assert s.low < 0.8 < s.high
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


def test_stalls_alone_are_not_a_slowdown():
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
    assert s.from_step == step_of(9)
    # --from-step past it: records measuring steps from there on only.
    later = records(values)
    assert find_slowdown("run", "global_step/sec", later, from_step=step_of(9)) is None
    # Five fast records left (the least a segment holds): still enough.
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
    assert (s.records_before, s.records_after) == (29, 27)


def test_ranks_share_ties():
    ranks = rank_rows(np.array([[3.0, 1.0, 3.0, 2.0, 1.0, 5.0], [7.0] * 6]))
    assert ranks.tolist() == [[3.5, 0.5, 3.5, 2.0, 0.5, 5.0], [2.5] * 6]


def test_drop_scores_are_standardized_rank_sums():
    # Ranks 9..0 (a steady fall): the first five sum to 35, 12.5 above the
    # mean of a random order, 5 * 4.5 = 22.5, with variance 5*5*11/12.
    [scores] = slowdown.drop_scores(np.arange(9.0, -1.0, -1.0)[None, :])
    assert scores.tolist() == [pytest.approx(12.5 / math.sqrt(25 * 11 / 12))]
    # All equal: no order, score 0.
    assert slowdown.drop_scores(np.full((1, 12), 5.5)).tolist() == [[0.0, 0.0, 0.0]]


def test_the_steady_score_is_seeded_and_grows_with_the_records():
    assert slowdown.steady_score(40) == slowdown.steady_score.__wrapped__(40)
    assert 2.5 < slowdown.steady_score(20) < slowdown.steady_score(200) < 4.0


# The shared statistics.

@pytest.mark.parametrize("n, length", [
    (1, 1), (5, 1), (11, 1), (12, 2), (24, 4), (36, 6), (49, 7), (50, 8),
    (10_000, 100),
])
def test_block_length(n, length):
    assert stats.block_length(n) == length


def test_measured_from_leaves_out_the_first_record_and_earlier_steps():
    rs = [ScalarRecord(s, v, 0.0) for s, v in
          [(11, 9.0), (21, 5.0), (31, math.nan), (41, 4.0), (51, 0.0), (61, 3.0)]]
    assert [r.step for r in stats.measured_from(rs)] == [21, 41, 61]
    # Each record measures the steps since the one before it.
    assert [r.step for r in stats.measured_from(rs, from_step=21)] == [41, 61]
    assert [r.step for r in stats.measured_from(rs, from_step=22)] == [41, 61]
    assert [r.step for r in stats.measured_from(rs, from_step=42)] == [61]


def test_median_ratio_is_seeded_and_needs_five_records():
    base = noisy(6, 40, 0.05)
    other = 0.9 * noisy(6, 40, 0.05)[::-1]  # The same noise, in another order.
    first = stats.median_ratio(other, base)
    assert stats.median_ratio(other, base) == first
    assert first.ratio == pytest.approx(np.median(other) / np.median(base))
    assert first.low < 0.9 < first.high and first.high - first.low < 0.1
    few = stats.median_ratio(other[:4], base)
    assert (few.low, few.high) == (None, None)
    assert few.ratio == pytest.approx(np.median(other[:4]) / np.median(base))


@pytest.mark.parametrize("low, high, margin, expected", [
    (0.70, 0.97, 0.02, "slower"),
    (0.70, 0.98, 0.02, "no difference"),  # The interval must lie beyond it.
    (0.99, 1.01, 0.0, "no difference"),
    (1.021, 1.2, 0.02, "faster"),
    (1.02, 1.2, 0.02, "no difference"),
    (None, None, 0.02, "no difference"),
])
def test_verdict(low, high, margin, expected):
    estimate = stats.RatioEstimate(0.9, low, high)
    assert stats.verdict(estimate, margin) == expected


def _summary(run, threshold):
    return TagSummary(run, "global_step/sec", 0, 0, 0, None, None, None, None,
                      threshold, [])


def test_compare_runs_leaves_out_stalls_and_tags_the_baseline_lacks():
    base = records(noisy(8, 30, 0.03))
    slow = records(0.5 * noisy(9, 30, 0.03))
    slow[10] = ScalarRecord(slow[10].step, 1.0, 0.0)  # A stall.
    runs = {"base": {"global_step/sec": base},
            "new": {"global_step/sec": slow, "items/sec": slow}}
    [c] = compare.compare_runs(
        runs, [_summary("base", 40.0), _summary("new", 20.0)], "base"
    )
    assert (c.run, c.tag, c.baseline, c.records, c.baseline_records) == (
        "new", "global_step/sec", "base", 29, 30
    )
    assert c.verdict == "slower" and c.low < 0.5 < c.high
    # Without the summaries' thresholds, the stall counts.
    [c] = compare.compare_runs(runs, [], "base")
    assert c.records == 30


def test_compare_with_no_record_left():
    c = compare.compare("new", "global_step/sec", [], "base", [1.0, 2.0])
    assert c == Comparison("new", "global_step/sec", "base", 0, 2, None, 1.5,
                           None, None, None, "no difference")


def test_slower_than_is_the_gate():
    def made(high):
        return Comparison("r", "t", "b", 9, 9, 1.0, 1.0, 0.8, 0.7, high, "slower")

    found = [made(0.89), made(0.9), made(None)]
    assert compare.slower_than(found, 10) == [found[0]]


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
    assert c.verdict == "no difference"
    table = load_report(str(tmp_path), baseline="long").table()
    assert "  -  no difference this data can resolve (under 5 records)" in table
    alone = load_report(str(tmp_path / "long"), baseline=".").table().splitlines()
    assert alone[-1] == "  no other run shares a rate tag with the baseline"
