"""The framework-free recorder and its parts, on a fake clock and fake steps:
`ReadSchedule`, `StepStretches`, `StepReads`, `Recorder` (no TensorFlow)."""

import logging
import math
import threading

import pytest
from conftest import FakeClock

from keras_stepcounter.core.ledger_table import ledger_table
from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.recorder import Recorder
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.run_warnings import RunWarnings
from keras_stepcounter.core.schedule import ReadSchedule
from keras_stepcounter.core.step_reads import StepReads
from keras_stepcounter.core.stretches import StepStretches
from keras_stepcounter.core.timer import SecondOrStepTimer


class ListSink:
    def __init__(self):
        self.records, self.texts, self.flushes = [], [], 0

    def write(self, step, scalars):
        self.records.append((step, dict(scalars)))
        return True

    def write_text(self, step, tag, markdown):
        self.texts.append((step, tag, markdown))
        return True

    def flush(self):
        self.flushes += 1


class Steps:
    """A step source that counts its reads."""

    def __init__(self):
        self.step, self.reads = 0, []

    def __call__(self):
        self.reads.append(self.step)
        return self.step


# ReadSchedule. ----------------------------------------------------------------


def test_schedule_reads_when_the_step_threshold_can_be_reached():
    clock = FakeClock()
    timer = SecondOrStepTimer(every_steps=10, clock=clock)
    timer.update_last_triggered_step(5)  # Baseline at 5: due at 15.
    schedule = ReadSchedule(timer, steps_per_call=1)
    assert schedule.next_read(5, 0, None) == (10, math.inf)
    schedule.steps_per_call = 4
    assert schedule.next_read(7, 2, 5) == (2, math.inf)  # 8 steps left / 4.


def test_schedule_widens_its_bound_when_the_counter_outruns_it():
    timer = SecondOrStepTimer(every_steps=10, clock=FakeClock())
    timer.update_last_triggered_step(0)
    schedule = ReadSchedule(timer, steps_per_call=1)
    schedule.next_read(6, 3, 0)  # 6 steps in 3 calls: 2 a call.
    assert schedule.steps_per_call == 2
    schedule.next_read(8, 4, 6)  # Slower again: the bound stays.
    assert schedule.steps_per_call == 2


def test_schedule_by_time_reads_from_the_deadline():
    clock = FakeClock(100.0)
    timer = SecondOrStepTimer(every_secs=2.0, clock=clock)
    timer.update_last_triggered_step(1)
    assert ReadSchedule(timer).next_read(1, 0, None) == (math.inf, 102.0)


# StepStretches. ---------------------------------------------------------------


def test_stretches_return_the_pause_to_leave_out_and_their_rate():
    stretches = StepStretches(pause_between_epochs=True)
    assert stretches.begin(0.0, 0) == 0.0
    stretches.pause(10.0)
    assert stretches.rate(100, 10.0) == 10.0
    assert stretches.begin(12.5, 100) == 2.5
    assert stretches.rate(100, 13.0) is None  # No step taken.


def test_stretches_without_pausing_leave_nothing_out():
    stretches = StepStretches(pause_between_epochs=False)
    stretches.begin(0.0, 0)
    stretches.pause(10.0)
    assert stretches.begin(12.5, 100) == 0.0


# StepReads. -------------------------------------------------------------------


def test_reads_outside_a_run_say_to_use_track():
    reads = StepReads(RunWarnings(RateTracker(SecondOrStepTimer(every_steps=1))))
    with pytest.raises(RuntimeError, match=r"with counter.track\(\):"):
        reads.read()


def test_reads_from_another_thread_are_refused_with_one_warning(caplog):
    reads = StepReads(RunWarnings(RateTracker(SecondOrStepTimer(every_steps=1))))
    reads.start(lambda: 7)
    results = []
    with caplog.at_level(logging.WARNING, "tensorflow"):
        for _ in range(2):
            worker = threading.Thread(target=lambda: results.append(reads.read()))
            worker.start()
            worker.join()
    assert results == [None, None] and reads.read() == 7
    assert len([r for r in caplog.records if "another thread" in r.getMessage()]) == 1


def test_a_failed_read_is_none_but_a_bad_first_read_raises(caplog):
    reads = StepReads(RunWarnings(RateTracker(SecondOrStepTimer(every_steps=1))))

    def broken():
        raise TypeError("step_source must return an integer")

    reads.start(broken)
    with pytest.raises(TypeError):
        reads.read(first=True)
    with caplog.at_level(logging.WARNING, "tensorflow"):
        assert reads.read() is None
    assert "reading the global step failed (TypeError" in caplog.text


# Recorder. --------------------------------------------------------------------


def make_recorder(clock, every_steps=10, **kwargs):
    sink = ListSink()
    rates = RateTracker(SecondOrStepTimer(every_steps=every_steps, clock=clock))
    return Recorder(rates, sink, clock, **kwargs), sink


def run_batches(recorder, steps, clock, count, seconds=0.25, per_call=1):
    for _ in range(count):
        clock.advance(seconds)
        steps.step += per_call
        recorder.batch_end()


def test_recorder_reads_only_when_a_record_can_be_due(fake_clock):
    recorder, sink = make_recorder(fake_clock)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 30)
    recorder.end_run()
    # Start, baseline (1), records at 11 and 21, and the end of the run.
    assert steps.reads == [0, 1, 11, 21, 30]
    assert sink.records == [(11, {"global_step/sec": 4.0}), (21, {"global_step/sec": 4.0})]
    assert sink.flushes == 1


def test_recorder_leaves_epoch_pauses_out(fake_clock):
    recorder, sink = make_recorder(fake_clock)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    for _ in range(2):  # Two epochs of 15 batches, 100 s between them.
        recorder.begin_steps()
        run_batches(recorder, steps, fake_clock, 15)
        recorder.pause_steps()
        assert recorder.stretch_rate == 4.0
        fake_clock.advance(100.0)
    assert [step for step, _ in sink.records] == [11, 21]
    assert [s["global_step/sec"] for _, s in sink.records] == [4.0, 4.0]


def test_recorder_step_times_count_k_steps_per_call(fake_clock):
    recorder, sink = make_recorder(fake_clock, step_time_stats=True)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps, batches_per_call=4, steps_per_call=4))
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 6, seconds=1.0, per_call=4)
    # Baseline at 4; the record at 16 covers 3 calls of 4 steps, 0.25 s each.
    ((step, scalars),) = sink.records
    assert step == 16 and scalars["global_step/sec"] == 4.0
    assert scalars["step_time/p50"] == scalars["step_time/max"] == 0.25


def test_recorder_goodput_ledger_at_the_run_end(fake_clock):
    recorder, sink = make_recorder(fake_clock, goodput=True)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    fake_clock.advance(2.0)  # Startup before the first batch.
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 9)
    recorder.pause_steps()
    fake_clock.advance(1.0)  # Epoch-end work.
    recorder.end_run()
    step, ledger = sink.records[-1]
    assert step == 9
    assert ledger["goodput/total_secs"] == 5.25
    assert ledger["goodput/startup_secs"] == 2.25  # To the first step's end.
    assert ledger["goodput/step_secs"] == 2.0  # 8 steps after the first.
    assert ledger["goodput/epoch_boundary_secs"] == 1.0
    assert ledger["goodput/fraction"] == 2.0 / 5.25
    # The same ledger as a table, at the same step, right after it.
    assert sink.texts == [(9, "goodput/ledger", ledger_table(ledger))]


def test_recorder_outside_a_run_raises_and_idle_costs_nothing(fake_clock):
    recorder, _ = make_recorder(fake_clock)
    with pytest.raises(RuntimeError, match="track"):
        recorder.batch_end()
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    recorder.go_idle()  # A non-chief worker.
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 50)
    assert steps.reads == [] and recorder.idle
