"""StepTimes: weighted nearest-rank percentiles, clearing, and the fold."""

import math
import os
import subprocess
import sys

import pytest

from keras_stepcounter.core.step_times import STEP_TIME_TAGS, StepTimes


def _summary_of(values, capacity=2048):
    times = StepTimes(capacity)
    for value in values:
        times.add(value)
    return times.summary()


def test_nearest_rank_on_one_to_hundred():
    summary = _summary_of(float(v) for v in range(100, 0, -1))
    assert summary == {
        "step_time/p10": 10.0,
        "step_time/p50": 50.0,
        "step_time/p90": 90.0,
        "step_time/p99": 99.0,
        "step_time/max": 100.0,
    }


def test_tags_are_the_five_documented():
    assert set(_summary_of([1.0])) == set(STEP_TIME_TAGS)


def test_single_step_is_every_percentile():
    assert set(_summary_of([0.5]).values()) == {0.5}


def test_ranks_round_up_on_a_small_interval():
    # Ten steps: p10 is the 1st, p50 the 5th, p90 the 9th, p99 the
    # ceil(9.9) = 10th.
    summary = _summary_of([float(v) for v in range(1, 11)])
    assert summary["step_time/p10"] == 1.0
    assert summary["step_time/p50"] == 5.0
    assert summary["step_time/p90"] == 9.0
    assert summary["step_time/p99"] == 10.0


def test_a_call_of_k_steps_counts_as_k_steps_of_a_kth():
    times = StepTimes()
    for _ in range(6):
        times.add(1.0)
    times.add(16.0, steps=4)  # Four steps of 4 s.
    # Ten steps: six of 1 s, four of 4 s.
    assert times.summary() == {
        "step_time/p10": 1.0,
        "step_time/p50": 1.0,
        "step_time/p90": 4.0,
        "step_time/p99": 4.0,
        "step_time/max": 4.0,
    }


def test_weight_decides_the_median():
    times = StepTimes()
    times.add(1.0)
    times.add(6.0, steps=3)  # Three steps of 2 s outweigh one of 1 s.
    assert times.summary()["step_time/p50"] == 2.0


def test_no_steps_is_none():
    assert StepTimes().summary() is None


def test_calls_of_zero_steps_are_ignored():
    times = StepTimes()
    times.add(5.0, steps=0)
    assert times.summary() is None
    times.add(1.0)
    assert times.summary()["step_time/max"] == 1.0


def test_clear_starts_a_new_interval():
    times = StepTimes()
    times.add(9.0)
    times.clear()
    assert times.summary() is None
    times.add(2.0)
    assert times.summary()["step_time/max"] == 2.0


def test_summary_does_not_clear():
    times = StepTimes()
    times.add(3.0)
    assert times.summary() == times.summary()


def test_fold_blocks_and_weights():
    # Capacity 4: the 5th call folds 1,1,1,1 into two blocks of two calls;
    # the 9th folds 5,5,5,5 likewise, then the four blocks pair up into
    # (1 s x4 steps), (5 s x4 steps). Runs of equal values make the result
    # independent of which call a block keeps. Left: those two, 9 and 10.
    values = [1.0] * 4 + [5.0] * 4 + [9.0, 10.0]
    summary = _summary_of(values, capacity=4)
    assert summary == {
        "step_time/p10": 1.0,
        "step_time/p50": 5.0,
        "step_time/p90": 9.0,
        "step_time/p99": 10.0,
        "step_time/max": 10.0,
    }


def test_fold_is_deterministic():
    values = [float((i * 37) % 101) for i in range(5000)]
    assert _summary_of(values, capacity=16) == _summary_of(values, capacity=16)
    times = StepTimes(capacity=16)
    for _ in range(2):  # The same interval again, after a clear.
        times.clear()
        for value in values:
            times.add(value)
        assert times.summary() == _summary_of(values, capacity=16)


def test_fold_does_not_alias_a_periodic_slow_step():
    # One slow step in every 64 (1.6%): it must not become the median once
    # blocks reach 64 calls, as keeping each block's first call would do.
    values = [10.0 if i % 64 == 0 else 1.0 for i in range(200_000)]
    summary = _summary_of(values, capacity=256)
    assert summary["step_time/p50"] == 1.0
    assert summary["step_time/p90"] == 1.0
    assert summary["step_time/max"] == 10.0


def test_fold_keeps_the_max_exact_when_its_call_is_dropped():
    values = [1.0, 7.0, 1.0, 1.0] + [1.0] * 100
    summary = _summary_of(values, capacity=4)
    assert summary["step_time/max"] == 7.0
    assert summary["step_time/p99"] == 1.0  # The 7 s call was sampled out.


@pytest.mark.parametrize("steps_of", [lambda i: 2, lambda i: 1 + i % 3])
def test_fold_keeps_total_weight(steps_of):
    times = StepTimes(capacity=8)
    for i in range(1000):
        times.add(float(i % 10), steps=steps_of(i))
    total = sum(times._fold_weights) + sum(times._valid_calls()[1])
    assert total == sum(steps_of(i) for i in range(1000))


def test_fold_keeps_the_max_per_step_with_mixed_steps():
    times = StepTimes(capacity=4)
    times.add(14.0, steps=2)  # 7 s a step: the slowest.
    for i in range(200):
        times.add(3.0 * (1 + i % 3), steps=1 + i % 3)  # 3 s a step.
    summary = times.summary()
    assert summary["step_time/max"] == 7.0
    assert summary["step_time/p50"] == 3.0


def test_fold_estimates_percentiles_of_a_long_interval():
    # 100 000 calls cycling through 1..100 s: the sample keeps about every
    # value's share, so the percentiles stay within a few steps of exact.
    summary = _summary_of((float(i % 100 + 1) for i in range(100_000)), capacity=2048)
    assert abs(summary["step_time/p50"] - 50.0) <= 3.0
    assert abs(summary["step_time/p90"] - 90.0) <= 3.0
    assert summary["step_time/max"] == 100.0


def test_clear_after_a_fold_restores_exact_mode():
    times = StepTimes(capacity=2)
    for value in (5.0, 6.0, 7.0, 8.0):
        times.add(value)
    times.clear()
    times.add(1.0)
    times.add(2.0)
    assert times.summary() == {
        "step_time/p10": 1.0,
        "step_time/p50": 1.0,
        "step_time/p90": 2.0,
        "step_time/p99": 2.0,
        "step_time/max": 2.0,
    }


@pytest.mark.parametrize(
    "capacity, error",
    [(1, ValueError), (0, ValueError), (True, ValueError), (2.5, TypeError),
     (math.nan, ValueError), ("8", TypeError)],
)
def test_bad_capacity_names_the_argument(capacity, error):
    with pytest.raises(error, match="capacity"):
        StepTimes(capacity)


@pytest.mark.parametrize("module", ["step_times", "watchdog", "ledger_table", "sections", "recorder", "timeline", "notebook"])
def test_core_modules_import_no_framework(module):
    # The recorders' pure-Python parts: importable without TensorFlow,
    # Keras or NumPy (tools and tests use them without a framework).
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        f"import sys, keras_stepcounter.core.{module}; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
        text=True, check=True,
    )
    assert out.stdout.strip() == "[]"
