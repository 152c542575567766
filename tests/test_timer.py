"""The pure-Python timer and rate logic, driven by a fake clock."""

import logging
import math

import pytest

from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.timer import SecondOrStepTimer



def observe(tracker, step, now=None):
    """The scalars a read of `step` records, or None (the trigger rules)."""
    interval = tracker.interval(step, now)
    return None if interval is None else tracker.scalars(*interval)

def test_timer_needs_exactly_one_of_secs_and_steps():
    with pytest.raises(ValueError, match="Either every_secs or every_steps"):
        SecondOrStepTimer()
    with pytest.raises(ValueError, match="Can not provide both"):
        SecondOrStepTimer(every_secs=1, every_steps=1)


def test_step_timer_v1_rules(fake_clock):
    timer = SecondOrStepTimer(every_steps=10, clock=fake_clock)
    assert timer.should_trigger_for_step(0)  # No baseline yet.
    assert timer.update_last_triggered_step(1) == (None, None)
    assert not timer.should_trigger_for_step(1)
    assert not timer.should_trigger_for_step(10)
    assert timer.should_trigger_for_step(11)
    fake_clock.advance(2.0)
    assert timer.update_last_triggered_step(11) == (2.0, 10)
    assert timer.last_triggered_step() == 11


def test_seconds_timer_never_triggers_twice_at_one_step(fake_clock):
    timer = SecondOrStepTimer(every_secs=1.0, clock=fake_clock)
    timer.update_last_triggered_step(5)
    fake_clock.advance(5.0)
    assert not timer.should_trigger_for_step(5)
    assert timer.should_trigger_for_step(6)


def test_hints_for_the_hot_path(fake_clock):
    steps = SecondOrStepTimer(every_steps=10, clock=fake_clock)
    assert steps.steps_until_trigger(0) == 0
    assert steps.trigger_deadline() == -math.inf
    steps.update_last_triggered_step(1)
    assert steps.steps_until_trigger(4) == 7
    assert steps.trigger_deadline() == math.inf
    secs = SecondOrStepTimer(every_secs=2.0, clock=fake_clock)
    secs.update_last_triggered_step(1)
    assert secs.steps_until_trigger(4) == math.inf
    assert secs.trigger_deadline() == fake_clock.now + 2.0


def test_restart_clock_and_a_given_now_move_the_baseline_time(fake_clock):
    timer = SecondOrStepTimer(every_steps=10, clock=fake_clock)
    timer.update_last_triggered_step(1)
    fake_clock.advance(101.0)
    # A caller's training time that leaves out 100 s of validation.
    assert timer.update_last_triggered_step(11, now=fake_clock() - 100.0) == (1.0, 10)
    timer.update_last_triggered_step(11)  # Back on the clock.
    fake_clock.advance(3.0)
    timer.restart_clock()
    fake_clock.advance(2.0)
    assert timer.update_last_triggered_step(21) == (2.0, 10)


def test_rate_tracker_records_rate_and_extras(fake_clock):
    timer = SecondOrStepTimer(every_steps=10, clock=fake_clock)
    tracker = RateTracker(
        timer, batch_size=32, flops_per_step=1e9, peak_flops_per_sec=1e11
    )
    assert observe(tracker, 1) is None  # Baseline only.
    fake_clock.advance(2.0)
    assert observe(tracker, 5) is None  # Not due.
    assert observe(tracker, 11) == {
        "global_step/sec": 5.0,
        "examples/sec": 160.0,
        "mfu": 0.05,
    }


def test_rate_tracker_counts_examples_when_no_batch_size(fake_clock):
    tracker = RateTracker(
        SecondOrStepTimer(every_steps=2, clock=fake_clock), count_examples=True
    )
    observe(tracker, 0)
    tracker.add_examples(30)
    tracker.add_examples(50)
    fake_clock.advance(4.0)
    assert observe(tracker, 2) == {"global_step/sec": 0.5, "examples/sec": 20.0}
    # The zero-count rule: with examples counted, examples/sec is written at
    # every record, 0 included.
    fake_clock.advance(1.0)
    assert observe(tracker, 4) == {"global_step/sec": 2.0, "examples/sec": 0.0}


def test_rate_tracker_counts_examples_from_the_first_add_by_default(fake_clock):
    tracker = RateTracker(SecondOrStepTimer(every_steps=2, clock=fake_clock))
    observe(tracker, 0)
    fake_clock.advance(1.0)
    assert observe(tracker, 2) == {"global_step/sec": 2.0}  # Nothing counted yet.
    tracker.add_examples(0)
    fake_clock.advance(1.0)
    assert observe(tracker, 4) == {"global_step/sec": 2.0, "examples/sec": 0.0}


def test_rate_tracker_told_not_to_count_writes_no_examples(fake_clock):
    tracker = RateTracker(SecondOrStepTimer(every_steps=2, clock=fake_clock),
                          count_examples=False)
    observe(tracker, 0)
    tracker.add_examples(30)
    fake_clock.advance(1.0)
    assert observe(tracker, 2) == {"global_step/sec": 2.0}


def test_zero_elapsed_time_records_nothing(fake_clock):
    tracker = RateTracker(SecondOrStepTimer(every_steps=1, clock=fake_clock))
    observe(tracker, 1)
    assert observe(tracker, 2) is None  # Same instant: no division by zero.
    fake_clock.advance(1.0)
    assert observe(tracker, 3) == {"global_step/sec": 1.0}


def test_stall_warning_at_most_five_times(tf_log):
    tracker = RateTracker(SecondOrStepTimer(every_steps=1))
    for _ in range(8):
        tracker.warn_if_stalled(7, 7)
    tracker.warn_if_stalled(8, 7)
    warnings = [m for _, m in tf_log.messages if "has not been increased" in m]
    assert len(warnings) == 5
    assert "Current value (could be stable): 7 vs previous value: 7" in warnings[0]


def test_a_restarted_clock_leaves_the_records_work_out(fake_clock):
    tracker = RateTracker(SecondOrStepTimer(every_steps=10, clock=fake_clock))
    observe(tracker, 1)
    fake_clock.advance(1.0)
    assert observe(tracker, 11) == {"global_step/sec": 10.0}
    fake_clock.advance(0.5)  # Writing and flushing the record.
    # Leaving the write out is the caller's (StepCounter's timeline books it
    # as its own work; the v1 hook restarts the clock, as here).
    tracker.timer.restart_clock()
    fake_clock.advance(1.0)
    # The 0.5 s of writing is not in the next interval: 10 steps in 1 s.
    assert observe(tracker, 21) == {"global_step/sec": 10.0}


def test_step_going_back_records_nothing_and_starts_a_new_baseline(fake_clock, tf_log):
    tracker = RateTracker(SecondOrStepTimer(every_steps=10, clock=fake_clock),
                          batch_size=2)
    observe(tracker, 1)
    fake_clock.advance(1.0)
    assert observe(tracker, 11) == {"global_step/sec": 10.0, "examples/sec": 20.0}
    fake_clock.advance(1.0)
    assert observe(tracker, 15) is None  # Not due.
    fake_clock.advance(1.0)
    assert observe(tracker, 3) is None  # A restore: below the last read (15).
    fake_clock.advance(1.0)
    assert observe(tracker, 9) is None  # Not due: the new baseline is 3.
    fake_clock.advance(1.0)
    # 10 steps in the 2 s since the step went back: not (13 - 11) / 4 s.
    assert observe(tracker, 13) == {"global_step/sec": 5.0, "examples/sec": 10.0}
    warnings = [m for level, m in tf_log.messages if level == logging.WARNING]
    assert warnings == [
        "keras_stepcounter: the global step went back from 15 to 3 (a checkpoint "
        "restore, or an assign to the step counter?); nothing is recorded for that "
        "interval, and a new one starts at step 3."
    ]


def test_each_going_back_event_warns_once(fake_clock, tf_log):
    tracker = RateTracker(SecondOrStepTimer(every_steps=None, every_secs=1.0,
                                            clock=fake_clock))
    for step in (5, 6, 2, 3, 4, 1, 1, 2):
        fake_clock.advance(0.25)
        observe(tracker, step)
    warnings = [m for level, m in tf_log.messages if "went back" in m]
    assert [w.split(" (")[0] for w in warnings] == [
        "keras_stepcounter: the global step went back from 6 to 2",
        "keras_stepcounter: the global step went back from 4 to 1",
    ]
