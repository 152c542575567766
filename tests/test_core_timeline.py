"""Timeline: the one record every instrument reads, and the ledger it gives
(pure Python, exact times on a fake clock: 1/8 s ticks are exact floats)."""

import random

import pytest

from keras_stepcounter.core.ledger import RecordedSteps, summary_line
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
from keras_stepcounter.core.timeline import Timeline


def _buckets(scalars):
    return {tag: scalars[tag] for tag in BUCKET_TAGS}


def _epoch(timeline, start, batches, seconds=0.25, first_step=None):
    """`batches` batch calls of `seconds` from `start`; returns the end."""
    timeline.begin_steps(start)
    t = start
    for i in range(batches):
        t += seconds
        timeline.last_end = t
        if first_step is not None and i == 0:
            timeline.first_step_end(t, first_step)
    return t


def test_docstring_example():
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.begin_steps(0.0)
    timeline.last_end = 4.0
    timeline.first_step_end(4.0, step=1)
    timeline.last_end = 5.0
    timeline.work(5.0, 5.5)
    timeline.last_end = 6.5
    timeline.pause()
    assert timeline.epoch_rate(step=3) == 1.0
    timeline.begin_steps(9.5)
    timeline.last_end = 11.5
    assert timeline.end_run(12.0) == {
        TOTAL_TAG: 12.0, STARTUP_TAG: 4.0, STEP_TAG: 4.0, EPOCH_BOUNDARY_TAG: 3.5,
        STALL_TAG: 0.0, RECORDER_TAG: 0.5, OTHER_TAG: 0.0, FRACTION_TAG: 4.0 / 12.0,
    }


def test_pause_starts_at_the_last_batch_end_not_at_the_hook():
    timeline = Timeline()
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 10, first_step=1)  # Ends at 2.5.
    # Keras works 0.5 s after the last batch; the counter hears of the
    # epoch's end only then. The pause still starts at 2.5.
    timeline.pause()
    assert timeline.epoch_rate(step=10) == 9 / (end - 0.25)
    timeline.begin_steps(4.0)
    assert timeline.training_time(4.0) == 2.5  # 1.5 s of pause left out.
    ledger = timeline.end_run(4.0)
    assert ledger[EPOCH_BOUNDARY_TAG] == 1.5
    assert ledger[STEP_TAG] == 2.25 and ledger[STARTUP_TAG] == 0.25


def test_the_next_epoch_rate_starts_where_the_last_paused():
    timeline = Timeline()
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 4, first_step=1)
    timeline.pause()
    timeline.epoch_rate(step=4)
    end = _epoch(timeline, end + 10.0, 4)  # 10 s of validation between.
    timeline.pause()
    assert timeline.epoch_rate(step=8) == 4 / 1.0


def test_without_epoch_pauses_every_instrument_counts_the_boundary():
    timeline = Timeline(pause_between_epochs=False)
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 4, first_step=1)  # 1.0
    assert timeline.pause() is False and timeline.in_steps
    timeline.epoch_rate(step=4)
    timeline.begin_steps(3.0)  # 2 s of boundary: steps.
    timeline.last_end = 3.25
    assert timeline.training_time(3.25) == 3.25
    timeline.pause()
    assert timeline.epoch_rate(step=5) == 1 / 2.25  # The boundary is in it.
    ledger = timeline.end_run(4.0)  # The tail too.
    assert ledger[EPOCH_BOUNDARY_TAG] == 0.0
    assert ledger[STEP_TAG] == 4.0 - 0.25


def test_a_paused_block_is_a_pause_even_without_epoch_pauses():
    timeline = Timeline(pause_between_epochs=False)
    timeline.begin_run(0.0)
    _epoch(timeline, 0.0, 4, first_step=1)
    assert timeline.pause(epoch_end=False) is True
    timeline.begin_steps(5.0)
    assert timeline.training_time(5.0) == 1.0
    assert timeline.end_run(5.0)[EPOCH_BOUNDARY_TAG] == 4.0


def test_a_paused_block_does_not_end_the_epochs_stretch():
    timeline = Timeline()
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 4, first_step=1)
    timeline.pause(epoch_end=False)
    end = _epoch(timeline, end + 100.0, 4)
    timeline.pause()
    assert timeline.epoch_rate(step=8) == 7 / 1.75


def test_work_is_recorder_time_unless_a_stall_spans_it_or_steps_are_paused():
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.work(0.0, 0.5)  # Before the first step (reading old records).
    end = _epoch(timeline, 0.5, 4, first_step=1)  # 1.5
    timeline.work(end, end + 0.25)
    assert timeline.last_end == 1.75 and timeline.excluded == 0.75
    timeline.work(1.75, 5.0, stalled=True)  # Hung: not the counter's time.
    assert timeline.last_end == 1.75 and timeline.excluded == 0.75
    timeline.stall(1.75, 5.25)
    timeline.last_end = 5.25
    timeline.pause()
    timeline.work(5.5, 6.0)  # An epoch-end read: pause time already.
    ledger = timeline.end_run(6.0)
    assert _buckets(ledger) == {
        STARTUP_TAG: 0.25, STEP_TAG: 0.75, EPOCH_BOUNDARY_TAG: 0.75,
        STALL_TAG: 3.5, RECORDER_TAG: 0.75, OTHER_TAG: 0.0,
    }
    assert ledger[FRACTION_TAG] == 0.75 / 6.0


def test_a_run_without_a_first_step_is_other():
    timeline = Timeline()
    timeline.begin_run(10.0)
    timeline.begin_steps(11.0)
    ledger = timeline.end_run(14.0)
    assert _buckets(ledger) == {
        STARTUP_TAG: 0.0, STEP_TAG: 0.0, EPOCH_BOUNDARY_TAG: 0.0,
        STALL_TAG: 0.0, RECORDER_TAG: 0.0, OTHER_TAG: 4.0,
    }


def test_end_run_gives_the_ledger_once_and_begin_run_forgets():
    timeline = Timeline()
    timeline.begin_run(0.0)
    _epoch(timeline, 0.0, 2, first_step=1)
    assert timeline.end_run(1.0)[TOTAL_TAG] == 1.0
    assert timeline.end_run(2.0) == {}
    timeline.begin_run(5.0)
    assert timeline.excluded == 0.0 and timeline.first_end is None
    assert timeline.end_run(5.0)[FRACTION_TAG] == 0.0


def test_random_runs_add_up_and_match_a_plain_model():
    """Random event sequences against a second-by-second model of the rule."""
    rng = random.Random(1)
    for _ in range(500):
        timeline, model = Timeline(), {tag: 0.0 for tag in BUCKET_TAGS}
        t = rng.randrange(0, 1000) / 8
        begin = t
        timeline.begin_run(t)
        timeline.begin_steps(t)
        state = STARTUP_TAG
        for _ in range(rng.randrange(1, 30)):
            kind = rng.choice(["batch", "batch", "work", "stall", "pause"])
            if kind == "stall" and state == STARTUP_TAG:
                kind = "batch"  # The watchdog starts after the first step.
            if kind == "pause":
                timeline.pause()
                gap = rng.randrange(0, 40) / 8
                model[EPOCH_BOUNDARY_TAG] += gap
                t += gap
                timeline.begin_steps(t)
                continue
            seconds = rng.randrange(1, 40) / 8
            if kind == "work":
                timeline.work(t, t + seconds)
                model[RECORDER_TAG] += seconds
            elif kind == "stall":
                timeline.stall(t, t + seconds)
                timeline.last_end = t + seconds
                model[STALL_TAG] += seconds
            else:
                timeline.last_end = t + seconds
                model[state] += seconds
                if state == STARTUP_TAG:
                    timeline.first_step_end(t + seconds, 1)
                    state = STEP_TAG
            t += seconds
        if state == STARTUP_TAG:  # No first step: all but the counter's work.
            model[OTHER_TAG] = model[STARTUP_TAG] + model[EPOCH_BOUNDARY_TAG]
            model[STARTUP_TAG] = model[EPOCH_BOUNDARY_TAG] = 0.0
        ledger = timeline.end_run(t)
        assert _buckets(ledger) == model
        assert ledger[TOTAL_TAG] == t - begin == sum(_buckets(ledger).values())


@pytest.mark.parametrize(
    "start, on_disk, wrote, expected",
    [
        (800, 1000, None, 200),     # Restored from an older checkpoint.
        (1000, 1000, None, None),   # Resumed where the records end.
        (1200, 1000, None, None),   # Ahead of them.
        (0, 1000, None, None),      # A new run in a reused directory.
        (30, None, 60, 30),         # This counter's own earlier fit.
        (30, None, None, None),     # Nothing recorded anywhere.
    ],
)
def test_recorded_steps_rerun_rule(start, on_disk, wrote, expected):
    recorded = RecordedSteps(lambda: on_disk)
    if wrote is not None:
        recorded.wrote(wrote)
    assert recorded.rerun_steps(start) == expected


def test_recorded_steps_read_the_disk_once():
    reads = []
    recorded = RecordedSteps(lambda: reads.append(1) or 100)
    assert recorded.rerun_steps(50) == 50
    recorded.wrote(150)
    assert recorded.rerun_steps(50) == 100
    assert reads == [1]


def test_a_new_run_from_step_0_forgets_older_records():
    reads = []
    recorded = RecordedSteps(lambda: reads.append(1) or 1000)
    assert recorded.rerun_steps(0) is None and reads == []  # Nothing read.
    assert recorded.rerun_steps(50) is None  # The old run's 1000 is not this run's.
    recorded.wrote(80)
    assert recorded.rerun_steps(50) == 30 and reads == []


def test_summary_line():
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.begin_steps(0.0)
    timeline.last_end = 4.0
    timeline.first_step_end(4.0, 1)
    timeline.stall(4.0, 6.0)
    timeline.last_end = 10.0
    timeline.work(10.0, 10.25)
    assert summary_line(timeline.end_run(12.0)) == (
        "goodput: 33.3% of 12.0 s in steps (4.0 s); startup 4.0 s, epoch "
        "boundaries 1.8 s, stalls 2.0 s, recorder 0.25 s, other 0.0 s"
    )
