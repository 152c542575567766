"""What `report --baseline`, `--fail-slower` and the slowdown section promise,
measured in a fixed-seed simulation: interval coverage and declines, the
gate's false alarms and power, and the slowdown detector's false alarms and
power on drifts. The guide (docs/report-and-tensorboard.md) quotes these
figures; `python3 tests/test_report_coverage.py` prints them.

Rates are lognormal around a level with AR(1) noise in the log (a busy
machine's slow minutes span several records): `sigma` the standard
deviation of the log rate, `phi` the lag-one autocorrelation. Every record
covers 100 steps.
"""

import math
import sys
from typing import Dict, Tuple

import numpy as np
import pytest

from keras_stepcounter.tools import compare, confidence, gate
from keras_stepcounter.tools.events import ScalarRecord
from keras_stepcounter.tools.slowdown import find_slowdown

STEPS = 100.0
PHIS = (0.0, 0.3, 0.6, 0.8, 0.9)
LENGTHS = (30, 60, 100, 200, 400)
PAIRS = 200


def ar1_logs(rng, trials, n, phi, sigma):
    """`trials` rows of n AR(1) log-rate deviations (stationary from the start)."""
    logs = np.empty((trials, n))
    logs[:, 0] = rng.normal(0.0, sigma, trials)
    shocks = rng.normal(0.0, sigma * math.sqrt(1 - phi**2), (trials, n))
    for i in range(1, n):
        logs[:, i] = phi * logs[:, i - 1] + shocks[:, i]
    return logs


def interval_of(rates, base_rates):
    steps = np.full(len(rates), STEPS)
    base_steps = np.full(len(base_rates), STEPS)
    return confidence.throughput_ratio(
        steps, steps / rates, base_steps, base_steps / base_rates
    )


def coverage(phi, n, pairs=PAIRS, sigma=0.05, seed=0):
    """(covered, declined, called) shares over `pairs` same-configuration
    pairs: the interval holds 1 (a decline counts as covered), there is no
    interval, the verdict says "slower" or "faster"."""
    rng = np.random.default_rng([seed, int(100 * phi), n])
    runs = 100.0 * np.exp(ar1_logs(rng, 2 * pairs, n, phi, sigma))
    covered = declined = called = 0
    for run, base in zip(runs[:pairs], runs[pairs:]):
        estimate = interval_of(run, base)
        if estimate.low is None:
            declined += 1
            covered += 1
        else:
            covered += estimate.low <= 1 <= estimate.high
            called += compare.verdict(estimate, compare.MARGIN) != "no difference"
    return covered / pairs, declined / pairs, called / pairs


def coverage_table() -> Dict[Tuple[float, int], Tuple[float, float, float]]:
    return {(phi, n): coverage(phi, n) for phi in PHIS for n in LENGTHS}


def records(rates, first=1.0):
    """Rate records every 100 steps after a baseline at step 0, the first
    (warm-up, left out of comparisons) at `first`."""
    values = [first, *rates]
    return [ScalarRecord(100 * (i + 1), float(v), 0.0) for i, v in enumerate(values)]


def with_baseline(rates):
    return {"global_step/sec": records(rates),
            "baseline_step": [ScalarRecord(0, 0.0, 0.0)]}


def gate_codes(ratio, trials, n=60, sigma=0.05, phi=0.3, percent=10, seed=1):
    """The gate's exit codes over `trials` pairs: a run at `ratio` of the
    baseline's speed, n records after warm-up each."""
    rng = np.random.default_rng([seed, int(1000 * ratio)])
    runs = 100.0 * np.exp(ar1_logs(rng, 2 * trials, n, phi, sigma))
    codes = []
    for run, base in zip(runs[:trials] * ratio, runs[trials:]):
        scalars = {"run": with_baseline(run), "base": with_baseline(base)}
        comparisons = compare.compare_runs(scalars, "base")
        codes.append(gate.judge(comparisons, scalars, "base", percent).code)
    return codes


def share(codes, code):
    return sum(c == code for c in codes) / len(codes)


def drift_found(seed, before=30, ramp=40, after=30, sigma=0.05, phi=0.3):
    """A slowdown found in a run whose rate falls linearly to half over
    `ramp` records, or None."""
    rng = np.random.default_rng([seed, ramp])
    levels = np.concatenate([
        np.zeros(before), np.linspace(0.0, math.log(0.5), ramp),
        np.full(after, math.log(0.5)),
    ])
    rates = 200.0 * np.exp(levels + ar1_logs(rng, 1, len(levels), phi, sigma)[0])
    return find_slowdown("run", "global_step/sec", records(rates), baselines=[0])


def steady_alarms(trials=20, n=200, sigma=0.1, phi=0.8, seed=2):
    rng = np.random.default_rng([seed, n])
    runs = 200.0 * np.exp(ar1_logs(rng, trials, n, phi, sigma))
    return sum(
        find_slowdown("run", "global_step/sec", records(r), baselines=[0]) is not None
        for r in runs
    )


# The tests: each promise, on the fixed seeds.

@pytest.fixture(scope="module")
def table():
    return coverage_table()


def test_intervals_cover_at_least_93_percent_under_autocorrelation(table):
    low = {cell: found for cell, found in table.items() if found[0] < 0.93}
    assert low == {}


def test_same_configurations_get_a_verdict_at_most_5_percent_of_the_time(table):
    assert max(called for _, _, called in table.values()) <= 0.05


def test_short_strongly_autocorrelated_runs_decline_and_long_ones_do_not(table):
    # 30 records at phi 0.9: about two independent records' worth.
    assert table[(0.9, 30)][1] >= 0.9
    assert table[(0.9, 60)][1] >= 0.9
    for n in (100, 200, 400):
        assert table[(0.0, n)][1] == 0.0 and table[(0.3, n)][1] == 0.0
    assert table[(0.6, 400)][1] == 0.0


def test_the_gate_fails_a_15_percent_drop_at_least_9_times_in_10():
    codes = gate_codes(0.85, trials=100)
    assert share(codes, gate.FAILED) >= 0.9


def test_the_gate_never_fails_an_equal_run_and_passes_most():
    codes = gate_codes(1.0, trials=100)
    assert share(codes, gate.FAILED) == 0.0
    assert share(codes, gate.PASSED) >= 0.9


def test_the_gate_never_passes_a_run_slower_than_its_line():
    # 20% slower against a 10% gate: fail or undecided, never pass.
    codes = gate_codes(0.8, trials=50, n=30, phi=0.6)
    assert share(codes, gate.PASSED) == 0.0


def test_a_drift_to_half_over_40_records_is_named_with_its_ramp():
    found = [drift_found(seed) for seed in range(20)]
    assert all(s is not None for s in found)
    # The ramp: from the record at step 3100 (the 30th after warm-up) to
    # the one at 7000 (the 69th), within 5 records.
    assert all(abs(s.from_step - 3100) <= 500 and abs(s.step - 7000) <= 500
               for s in found)


def test_steady_autocorrelated_runs_name_a_slowdown_at_most_1_in_20():
    assert steady_alarms() <= 1


def main() -> None:
    """Prints the figures the guide quotes."""
    found = coverage_table()
    print("phi  records  covered  declined  verdict")
    for (phi, n), (covered, declined, called) in found.items():
        print(f"{phi:<4} {n:>7}  {covered:>6.1%}  {declined:>8.1%}  {called:>6.1%}")
    for ratio in (1.0, 0.9, 0.88, 0.85, 0.8):
        codes = gate_codes(ratio, trials=200)
        print(f"gate 10% at ratio {ratio}: fail {share(codes, 1):.1%}, undecided "
              f"{share(codes, 3):.1%}, pass {share(codes, 0):.1%}")
    drifts = [drift_found(seed) for seed in range(100)]
    print(f"drift 2x over 40 records found: {sum(d is not None for d in drifts)}/100")
    print(f"steady phi 0.8 sigma 0.1 200 records: {steady_alarms(trials=100)}/100")


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
