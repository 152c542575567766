"""Timeline: the one record every instrument reads, and the ledger it gives
(pure Python, exact times on a fake clock: 1/8 s ticks are exact floats)."""

import random

from keras_stepcounter.core.ledger_table import summary_line
from keras_stepcounter.core.tags import (
    BUCKET_TAGS,
    EPOCH_BOUNDARY_TAG,
    FRACTION_TAG,
    INPUT_TAG,
    OTHER_TAG,
    RECORDER_TAG,
    STALL_TAG,
    STARTUP_TAG,
    STEP_TAG,
    TOTAL_TAG,
)
from keras_stepcounter.core.timeline import Timeline

LEDGER_BUCKETS = tuple(tag for tag in BUCKET_TAGS if tag != INPUT_TAG)


def _buckets(scalars):
    return {tag: scalars[tag] for tag in LEDGER_BUCKETS}


def _epoch(timeline, start, batches, seconds=0.25, first_step=None):
    """`batches` batch calls of `seconds` from `start`; returns the end."""
    timeline.begin_steps(start)
    t = start + seconds * batches
    if first_step is not None:
        timeline.first_step_end(start + seconds, first_step)
    return t


def test_docstring_example():
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.begin_steps(0.0)
    timeline.first_step_end(4.0, step=1)
    timeline.work(5.0, 5.5)
    timeline.pause(at=6.5)
    assert timeline.epoch_rate(step=3) == 1.0
    timeline.begin_steps(9.5)
    assert timeline.end_run(12.0, last_end=11.5) == {
        TOTAL_TAG: 12.0, STARTUP_TAG: 4.0, STEP_TAG: 4.0, EPOCH_BOUNDARY_TAG: 3.5,
        STALL_TAG: 0.0, RECORDER_TAG: 0.5, OTHER_TAG: 0.0, FRACTION_TAG: 4.0 / 12.0,
    }


def test_pause_starts_at_the_last_batch_end_not_at_the_hook():
    timeline = Timeline()
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 10, first_step=1)  # Ends at 2.5.
    # Keras works 0.5 s after the last batch; the counter hears of the
    # epoch's end only then. The pause still starts at 2.5.
    timeline.pause(end)
    assert timeline.epoch_rate(step=10) == 9 / (end - 0.25)
    assert timeline.training_time(3.5) == 2.5  # Frozen while paused.
    timeline.begin_steps(4.0)
    assert timeline.training_time(4.0) == 2.5  # 1.5 s of pause left out.
    ledger = timeline.end_run(4.0, 4.0)
    assert ledger[EPOCH_BOUNDARY_TAG] == 1.5
    assert ledger[STEP_TAG] == 2.25 and ledger[STARTUP_TAG] == 0.25


def test_the_next_epoch_rate_starts_where_the_last_paused():
    timeline = Timeline()
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 4, first_step=1)
    timeline.pause(end)
    timeline.epoch_rate(step=4)
    end = _epoch(timeline, end + 10.0, 4)  # 10 s of validation between.
    timeline.pause(end)
    assert timeline.epoch_rate(step=8) == 4 / 1.0


def test_without_epoch_pauses_every_instrument_counts_the_boundary():
    timeline = Timeline(pause_between_epochs=False)
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 4, first_step=1)  # 1.0
    assert timeline.pause(end) is False and timeline.in_steps
    timeline.epoch_rate(step=4)
    timeline.begin_steps(3.0)  # 2 s of boundary: steps.
    assert timeline.training_time(3.25) == 3.25
    timeline.pause(3.25)
    assert timeline.epoch_rate(step=5) == 1 / 2.25  # The boundary is in it.
    ledger = timeline.end_run(4.0, 3.25)  # The tail too.
    assert ledger[EPOCH_BOUNDARY_TAG] == 0.0
    assert ledger[STEP_TAG] == 4.0 - 0.25


def test_a_paused_block_is_a_pause_even_without_epoch_pauses():
    timeline = Timeline(pause_between_epochs=False)
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 4, first_step=1)
    assert timeline.pause(end, epoch_end=False) is True
    timeline.begin_steps(5.0)
    assert timeline.training_time(5.0) == 1.0
    assert timeline.end_run(5.0, 5.0)[EPOCH_BOUNDARY_TAG] == 4.0


def test_a_paused_block_does_not_end_the_epochs_stretch():
    timeline = Timeline()
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 4, first_step=1)
    timeline.pause(end, epoch_end=False)
    end = _epoch(timeline, end + 100.0, 4)
    timeline.pause(end)
    assert timeline.epoch_rate(step=8) == 7 / 1.75


def test_work_is_recorder_time_unless_steps_are_paused():
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.work(0.0, 0.5)  # Before the first step (the re-run index).
    end = _epoch(timeline, 0.5, 4, first_step=1)  # 1.5
    timeline.work(end, end + 0.25)
    assert timeline.excluded == 0.75
    timeline.stall(1.75, 5.25)
    timeline.pause(5.25)
    timeline.work(5.5, 6.0)  # An epoch-end write: pause time already.
    ledger = timeline.end_run(6.0, 5.25)
    assert _buckets(ledger) == {
        STARTUP_TAG: 0.25, STEP_TAG: 0.75, EPOCH_BOUNDARY_TAG: 0.75,
        STALL_TAG: 3.5, RECORDER_TAG: 0.75, OTHER_TAG: 0.0,
    }
    assert ledger[FRACTION_TAG] == 0.75 / 6.0


def test_input_is_its_measured_share_of_the_step_time():
    timeline = Timeline()
    timeline.begin_run(0.0)
    end = _epoch(timeline, 0.0, 9, first_step=1)  # 2.25: startup 0.25, steps 2.0.
    timeline.stall(1.0, 1.5)
    timeline.input_share = 0.25
    ledger = timeline.end_run(end, end)
    assert ledger[INPUT_TAG] == 0.25 * 1.5 and ledger[STEP_TAG] == 0.75 * 1.5
    assert ledger[STALL_TAG] == 0.5
    assert INPUT_TAG not in Timeline().end_run(1.0, 1.0)  # Never a made-up zero.


def test_a_run_without_a_first_step_is_other():
    timeline = Timeline()
    timeline.begin_run(10.0)
    timeline.begin_steps(11.0)
    ledger = timeline.end_run(14.0, 11.0)
    assert _buckets(ledger) == {
        STARTUP_TAG: 0.0, STEP_TAG: 0.0, EPOCH_BOUNDARY_TAG: 0.0,
        STALL_TAG: 0.0, RECORDER_TAG: 0.0, OTHER_TAG: 4.0,
    }


def test_end_run_gives_the_ledger_once_and_begin_run_forgets():
    timeline = Timeline()
    timeline.begin_run(0.0)
    _epoch(timeline, 0.0, 2, first_step=1)
    assert timeline.end_run(1.0, 0.5)[TOTAL_TAG] == 1.0
    assert timeline.end_run(2.0, 0.5) == {}
    timeline.begin_run(5.0)
    assert timeline.excluded == 0.0 and timeline.first_end is None
    assert timeline.end_run(5.0, 5.0)[FRACTION_TAG] == 0.0


def test_summary_line():
    timeline = Timeline()
    timeline.begin_run(0.0)
    timeline.begin_steps(0.0)
    timeline.first_step_end(4.0, 1)
    timeline.stall(4.0, 6.0)
    timeline.work(10.0, 10.25)
    assert summary_line(timeline.end_run(12.0, 10.25)) == (
        "goodput: 33.3% of 12.0 s in steps (4.0 s); startup 4.0 s, epoch "
        "boundaries 1.8 s, stalls 2.0 s, recorder 0.25 s, other 0.0 s"
    )
