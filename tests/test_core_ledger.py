"""GoodputLedger: each bucket exactly, the sum property, rerun_steps."""

import random

import pytest

from keras_stepcounter.core.ledger import GoodputLedger, rerun_steps, summary_line
from keras_stepcounter.core.tags import (
    BUCKET_TAGS,
    EPOCH_BOUNDARY_TAG,
    FRACTION_TAG,
    OTHER_TAG,
    RECORDER_TAG,
    STALL_TAG,
    STARTUP_TAG,
    STEP_TAG,
    TOTAL_TAG,
)


def _buckets(scalars):
    return {tag: scalars[tag] for tag in BUCKET_TAGS}


def _three_epochs(ledger, work=None):
    """begin 100; first step ends 104; epochs end 110, 120, 130; resume
    112, 123; end 131. `work` maps an event name to recorder seconds
    reported right after it."""
    work = work or {}

    def event(name, method, *args):
        method(*args)
        if name in work:
            ledger.recorder_work(work[name])

    event("begin", ledger.train_begin, 100.0)
    event("resumed0", ledger.steps_resumed, 101.0)  # Before the first step.
    event("first", ledger.first_step_end, 104.0)
    event("paused0", ledger.steps_paused, 110.0)
    event("resumed1", ledger.steps_resumed, 112.0)
    event("paused1", ledger.steps_paused, 120.0)
    event("resumed2", ledger.steps_resumed, 123.0)
    event("paused2", ledger.steps_paused, 130.0)
    return ledger.train_end(131.0)


def test_each_bucket_of_three_epochs():
    scalars = _three_epochs(GoodputLedger())
    assert scalars == {
        TOTAL_TAG: 31.0,
        STARTUP_TAG: 4.0,
        STEP_TAG: 6.0 + 8.0 + 7.0,
        EPOCH_BOUNDARY_TAG: 2.0 + 3.0 + 1.0,
        RECORDER_TAG: 0.0,
        STALL_TAG: 0.0,
        OTHER_TAG: 0.0,
        FRACTION_TAG: 21.0 / 31.0,
    }


@pytest.mark.parametrize(
    "after, bucket",
    [("begin", STARTUP_TAG), ("resumed0", STARTUP_TAG), ("first", STEP_TAG),
     ("resumed1", STEP_TAG), ("paused0", EPOCH_BOUNDARY_TAG),
     ("paused2", EPOCH_BOUNDARY_TAG)],
)
def test_recorder_work_leaves_the_bucket_it_fell_in(after, bucket):
    plain = _three_epochs(GoodputLedger())
    scalars = _three_epochs(GoodputLedger(), work={after: 0.5})
    assert scalars[RECORDER_TAG] == 0.5
    assert scalars[bucket] == plain[bucket] - 0.5
    for other in set(BUCKET_TAGS) - {bucket, RECORDER_TAG}:
        assert scalars[other] == plain[other]
    assert scalars[TOTAL_TAG] == plain[TOTAL_TAG]


def test_buckets_add_up_to_the_total():
    scalars = _three_epochs(GoodputLedger(), work={"first": 0.25, "paused1": 0.5})
    assert sum(_buckets(scalars).values()) == scalars[TOTAL_TAG]


def test_a_fit_without_steps_is_other():
    ledger = GoodputLedger()
    ledger.train_begin(10.0)
    ledger.recorder_work(0.5)
    scalars = ledger.train_end(13.0)
    assert _buckets(scalars) == {
        STARTUP_TAG: 0.0, STEP_TAG: 0.0, EPOCH_BOUNDARY_TAG: 0.0,
        RECORDER_TAG: 0.5, OTHER_TAG: 2.5, STALL_TAG: 0.0,
    }
    assert scalars[TOTAL_TAG] == 3.0 and scalars[FRACTION_TAG] == 0.0


def test_ending_in_steps_with_last_batch_end_is_a_boundary():
    ledger = GoodputLedger()
    ledger.train_begin(0.0)
    ledger.first_step_end(2.0)
    scalars = ledger.train_end(10.0, last_batch_end=9.0)
    assert scalars[STEP_TAG] == 7.0
    assert scalars[EPOCH_BOUNDARY_TAG] == 1.0


def test_ending_in_steps_without_last_batch_end_is_steps():
    ledger = GoodputLedger()
    ledger.train_begin(0.0)
    ledger.first_step_end(2.0)
    scalars = ledger.train_end(10.0)
    assert scalars[STEP_TAG] == 8.0
    assert scalars[EPOCH_BOUNDARY_TAG] == 0.0


def test_last_batch_end_is_ignored_after_a_pause():
    ledger = GoodputLedger()
    ledger.train_begin(0.0)
    ledger.first_step_end(2.0)
    ledger.steps_paused(5.0)
    scalars = ledger.train_end(10.0, last_batch_end=9.0)
    assert scalars[STEP_TAG] == 3.0
    assert scalars[EPOCH_BOUNDARY_TAG] == 5.0


def test_last_batch_end_is_kept_inside_the_steps_span():
    ledger = GoodputLedger()
    ledger.train_begin(0.0)
    ledger.first_step_end(2.0)
    scalars = ledger.train_end(10.0, last_batch_end=1.0)  # Before steps began.
    assert scalars[STEP_TAG] == 0.0
    assert scalars[EPOCH_BOUNDARY_TAG] == 8.0


def test_events_that_do_not_apply_are_ignored():
    ledger = GoodputLedger()
    ledger.steps_paused(1.0)  # Before any fit.
    ledger.recorder_work(1.0)
    assert ledger.train_end(2.0) == {}
    ledger.train_begin(10.0)
    ledger.steps_paused(11.0)  # Still in startup.
    ledger.first_step_end(12.0)
    ledger.first_step_end(13.0)  # Again.
    ledger.steps_resumed(14.0)  # Already in steps.
    ledger.steps_paused(15.0)
    ledger.steps_paused(16.0)  # Already paused.
    scalars = ledger.train_end(17.0)
    assert scalars[STARTUP_TAG] == 2.0
    assert scalars[STEP_TAG] == 3.0
    assert scalars[EPOCH_BOUNDARY_TAG] == 2.0


def test_train_end_closes_the_fit():
    ledger = GoodputLedger()
    ledger.train_begin(0.0)
    assert ledger.in_fit
    ledger.train_end(1.0)
    assert not ledger.in_fit
    assert ledger.train_end(2.0) == {}


def test_a_new_fit_forgets_the_last():
    ledger = GoodputLedger()
    _three_epochs(ledger, work={"first": 1.0})
    ledger.train_begin(500.0)
    ledger.first_step_end(501.0)
    scalars = ledger.train_end(503.0, last_batch_end=503.0)
    assert _buckets(scalars) == {
        STARTUP_TAG: 1.0, STEP_TAG: 2.0, EPOCH_BOUNDARY_TAG: 0.0,
        RECORDER_TAG: 0.0, OTHER_TAG: 0.0, STALL_TAG: 0.0,
    }


def test_zero_total_has_fraction_zero():
    ledger = GoodputLedger()
    ledger.train_begin(5.0)
    scalars = ledger.train_end(5.0)
    assert scalars[TOTAL_TAG] == 0.0 and scalars[FRACTION_TAG] == 0.0


_TRANSITIONS = {
    ("first", STARTUP_TAG): STEP_TAG,
    ("paused", STEP_TAG): EPOCH_BOUNDARY_TAG,
    ("resumed", EPOCH_BOUNDARY_TAG): STEP_TAG,
}


def _random_fit(rng, ledger):
    """A random event sequence on 1/8 s ticks (exact in floats), fed to
    the ledger and to a plain timeline model; recorder work always fits in
    the span it is reported in. Returns (ledger's scalars, model's)."""
    t = rng.randrange(0, 10_000) / 8
    ledger.train_begin(t)
    begin, state, span_start, span_work = t, STARTUP_TAG, t, 0.0
    expected = dict.fromkeys(BUCKET_TAGS, 0.0)
    for _ in range(rng.randrange(0, 40)):
        t += rng.randrange(0, 80) / 8
        kind = rng.choice(["first", "paused", "resumed", "work", "work"])
        if kind == "work":
            seconds = rng.randrange(0, int((t - span_start - span_work) * 8) + 1) / 8
            ledger.recorder_work(seconds)
            span_work += seconds
            expected[RECORDER_TAG] += seconds
            expected[state] -= seconds
            continue
        {"first": ledger.first_step_end, "paused": ledger.steps_paused,
         "resumed": ledger.steps_resumed}[kind](t)
        if (kind, state) in _TRANSITIONS:
            expected[state] += t - span_start
            state, span_start, span_work = _TRANSITIONS[kind, state], t, 0.0
    end = t + rng.randrange(0, 80) / 8
    last_batch_end = rng.choice([None, (t + end) / 2])
    scalars = ledger.train_end(end, last_batch_end=last_batch_end)
    if state == STEP_TAG and last_batch_end is not None:
        expected[state] += last_batch_end - span_start
        state, span_start = EPOCH_BOUNDARY_TAG, last_batch_end
    expected[state] += end - span_start
    if state == STARTUP_TAG:  # No first step: all of it is "other".
        expected[OTHER_TAG], expected[STARTUP_TAG] = expected[STARTUP_TAG], 0.0
    expected[TOTAL_TAG] = end - begin
    return scalars, expected


def test_random_fits_match_a_timeline_and_add_up_exactly():
    rng = random.Random(1)
    for _ in range(2000):
        scalars, expected = _random_fit(rng, GoodputLedger())
        buckets = _buckets(scalars)
        assert {**buckets, TOTAL_TAG: scalars[TOTAL_TAG]} == expected
        assert sum(buckets.values()) == scalars[TOTAL_TAG]
        assert min(buckets.values()) >= 0.0
        assert 0.0 <= scalars[FRACTION_TAG] <= 1.0


def test_float_times_add_up_to_rounding():
    rng = random.Random(2)
    ledger = GoodputLedger()
    t = 12345.678
    ledger.train_begin(t)
    ledger.first_step_end(t := t + rng.random())
    for _ in range(200):
        ledger.recorder_work(0.001)
        ledger.steps_paused(t := t + rng.random())
        ledger.steps_resumed(t := t + rng.random())
    scalars = ledger.train_end(t + 0.5, last_batch_end=t + 0.25)
    total = sum(_buckets(scalars).values())
    assert total == pytest.approx(scalars[TOTAL_TAG], rel=1e-12)


@pytest.mark.parametrize(
    "start, highest, expected",
    [(100, 250, 150), (250, 250, None), (300, 250, None), (0, None, None),
     (0, 1, 1)],
)
def test_rerun_steps(start, highest, expected):
    assert rerun_steps(start, highest) == expected


def test_summary_line():
    line = summary_line(_three_epochs(GoodputLedger(), work={"first": 0.25}))
    assert line == (
        "goodput: 66.9% of 31.0 s in steps (20.8 s); startup 4.0 s, "
        "epoch boundaries 6.0 s, recorder 0.25 s, other 0.0 s"
    )
