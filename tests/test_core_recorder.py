"""The framework-free recorder and its parts, on a fake clock and fake steps:
`ReadSchedule`, `Recorder` (no TensorFlow)."""

import logging
import math
import threading
from types import SimpleNamespace

import pytest
from conftest import FakeClock

from keras_stepcounter.core.ledger_table import ledger_table
from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.recorder import KEPT_CALLS, Recorder
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.schedule import ReadSchedule
from keras_stepcounter.core.timer import SecondOrStepTimer
from keras_stepcounter.core.watchdog import _Watch


class ListSink:
    def __init__(self):
        self.records, self.texts, self.flushes = [], [], 0

    def write(self, step, scalars):
        self.records.append((step, dict(scalars)))
        return True

    def write_text(self, step, tag, markdown):
        self.texts.append((step, tag, markdown))
        return True

    def begin_run(self, start_step):
        return None

    def reached(self, step):
        pass

    def flush(self):
        self.flushes += 1

    def rates(self):
        """The rate records, without the baselines and the rest."""
        return [(step, s) for step, s in self.records if "global_step/sec" in s]


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


# Reading the step. -----------------------------------------------------------


def test_reads_outside_a_run_say_to_use_track(fake_clock):
    recorder, _ = make_recorder(fake_clock)
    with pytest.raises(RuntimeError, match=r"with counter.track\(\):"):
        recorder.batch_end()


def test_reads_from_another_thread_are_refused_with_one_warning(fake_clock, caplog):
    recorder, sink = make_recorder(fake_clock, every_steps=1)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    recorder.begin_steps()
    with caplog.at_level(logging.WARNING, "tensorflow"):
        for _ in range(2):
            worker = threading.Thread(target=recorder.batch_end)
            worker.start()
            worker.join()
    assert steps.reads == [0] and recorder.idle  # The run records nothing more.
    assert len([r for r in caplog.records if "another thread" in r.getMessage()]) == 1


def test_a_failed_read_ends_the_runs_records_but_a_bad_first_read_raises(fake_clock, caplog):
    recorder, sink = make_recorder(fake_clock, every_steps=1)

    def bad_source():
        raise TypeError("step_source must return an integer")

    recorder.begin_run(RunSource(read=bad_source))
    with pytest.raises(TypeError, match="step_source must return an integer"):
        recorder.begin_steps()
    failing = {"now": False}

    def read():
        if failing["now"]:
            raise OSError("device lost")
        return 3

    recorder.begin_run(RunSource(read=read))
    recorder.begin_steps()
    failing["now"] = True
    with caplog.at_level(logging.WARNING, "tensorflow"):
        recorder.batch_end()
    assert recorder.idle and sink.records == []
    assert "reading the global step failed (OSError: device lost)" in caplog.text


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
    assert sink.records == [
        (1, {"baseline_step": 1.0}),  # Where the rates' first interval starts.
        (11, {"global_step/sec": 4.0}),
        (21, {"global_step/sec": 4.0}),
    ]
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
    assert [step for step, _ in sink.rates()] == [11, 21]
    assert [s["global_step/sec"] for _, s in sink.rates()] == [4.0, 4.0]


def test_recorder_step_times_count_k_steps_per_call(fake_clock):
    recorder, sink = make_recorder(fake_clock, step_time_stats=True)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps, batches_per_call=4, steps_per_call=4))
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 6, seconds=1.0, per_call=4)
    # Baseline at 4; the record at 16 covers 3 calls of 4 steps, 0.25 s each.
    ((step, scalars),) = sink.rates()
    assert step == 16 and scalars["global_step/sec"] == 4.0
    assert scalars["step_time/p50"] == scalars["step_time/max"] == 0.25


def test_step_times_stay_bounded_between_far_apart_records(fake_clock):
    # Records every 10,000 steps: the quiet calls' times go straight into
    # `step_times.calls`, so the schedule reads at least every `capacity`
    # calls, and each read folds what is past the capacity.
    recorder, sink = make_recorder(fake_clock, every_steps=10_000, step_time_stats=True)
    capacity = recorder.step_times.capacity
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    recorder.begin_steps()
    longest = 0
    for i in range(10_001):
        fake_clock.advance(2.0 if i == 5000 else 0.25)
        steps.step += 1
        recorder.batch_end()
        longest = max(longest, len(recorder.step_times.calls))
    assert longest <= 2 * capacity
    # Start, baseline at 1, a read at least every `capacity` calls, the record.
    assert len(steps.reads) == 2 + 10_000 // capacity + 1
    ((step, scalars),) = sink.rates()
    assert step == 10_001 and scalars["global_step/sec"] == 10_000 / (9_999 * 0.25 + 2.0)
    assert scalars["step_time/max"] == 2.0 and scalars["step_time/p50"] == 0.25
    recorder.go_idle()  # An idle recorder keeps no step times.
    run_batches(recorder, steps, fake_clock, 3 * capacity)
    assert recorder.step_times.calls == []


class EveryWaitMeter:
    """A meter that saw every wait (JAX-like): it keeps each one's span
    until the recorder books it."""

    def __init__(self):
        self.waits, self.most_kept, self.detached = [], 0, False

    def wait(self, clock, seconds):
        start = clock()
        clock.advance(seconds)
        self.waits.append((start, clock()))
        self.most_kept = max(self.most_kept, len(self.waits))

    def waits_between(self, start, end):
        inside = tuple((a, b) for a, b in self.waits if start <= a and b <= end)
        return SimpleNamespace(measured=((start, end),), waits=inside)

    def discard_before(self, time_point):
        self.waits = [(a, b) for a, b in self.waits if b > time_point]

    def detach(self):
        self.detached = True


def test_input_waits_are_booked_at_reads_between_far_apart_records(fake_clock):
    # Each 1 s step waits 0.25 s for its batch; a record every 10,000 steps.
    # The recorder reads at least every KEPT_CALLS calls and books the
    # waits so far, so the meter never holds more than that many.
    meter = EveryWaitMeter()
    recorder, sink = make_recorder(
        fake_clock, every_steps=10_000, input_meter=meter, goodput=True
    )
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    recorder.begin_steps()
    for _ in range(10_001):
        meter.wait(fake_clock, 0.25)
        fake_clock.advance(0.75)
        steps.step += 1
        recorder.batch_end()
    recorder.end_run()
    assert meter.most_kept <= KEPT_CALLS + 1
    ((step, scalars),) = sink.rates()
    assert step == 10_001 and scalars["time_frac/input"] == pytest.approx(0.25)
    ledger = sink.records[-1][1]
    assert ledger["goodput/input_secs"] == pytest.approx(0.25 * 10_000)
    assert ledger["goodput/step_secs"] == pytest.approx(0.75 * 10_000)
    assert meter.detached


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


# One timeline: every instrument tells the same story. ------------------------


def test_a_record_spanning_an_epoch_end_reads_like_its_neighbours(fake_clock):
    recorder, sink = make_recorder(fake_clock, step_time_stats=True, goodput=True)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    rates = []
    for _ in range(2):  # Epochs of 15 steps of 0.25 s.
        recorder.begin_steps()
        run_batches(recorder, steps, fake_clock, 15)
        fake_clock.advance(0.5)  # Keras's own work after the last batch...
        recorder.pause_steps()  # ...before the first epoch-end hook.
        rates.append(recorder.stretch_rate)
        fake_clock.advance(100.0)  # Validation.
    recorder.end_run()
    records = sink.rates()
    assert [step for step, _ in records] == [11, 21]
    for _, scalars in records:
        assert scalars["global_step/sec"] == 4.0
        assert scalars["step_time/max"] == scalars["step_time/p10"] == 0.25
    assert rates == [4.0, 4.0]  # The first leaves out startup (step 1).
    ledger = sink.records[-1][1]
    assert ledger["goodput/epoch_boundary_secs"] == 2 * 100.5
    assert ledger["goodput/step_secs"] == 29 * 0.25
    assert ledger["goodput/stall_secs"] == 0.0


def test_without_epoch_pauses_the_boundary_is_steps_for_all(fake_clock):
    recorder, sink = make_recorder(fake_clock, goodput=True, pause_between_epochs=False)
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    for _ in range(2):
        recorder.begin_steps()
        run_batches(recorder, steps, fake_clock, 15)
        recorder.pause_steps()
        fake_clock.advance(2.5)
    recorder.end_run()
    rates = {step: s["global_step/sec"] for step, s in sink.rates()}
    assert rates == {11: 4.0, 21: 10 / (10 * 0.25 + 2.5)}
    ledger = sink.records[-1][1]
    assert ledger["goodput/epoch_boundary_secs"] == 0.0
    assert ledger["goodput/step_secs"] == 29 * 0.25 + 2 * 2.5


def _stall_recorder(clock, steps, **kwargs):
    recorder, sink = make_recorder(clock, stall_secs=1.0, step_time_stats=True,
                                   goodput=True, **kwargs)
    recorder.begin_run(RunSource(read=steps))
    recorder.begin_steps()
    run_batches(recorder, steps, clock, 1)
    watchdog = recorder._watchdog
    watchdog.stop()  # The test plays the watchdog's thread: poll() by hand.
    watchdog._watch = _Watch(threading.get_ident(), None)
    return recorder, sink, watchdog


def test_a_stall_ends_at_the_next_batch_and_every_instrument_agrees(fake_clock, tf_log):
    steps = Steps()
    recorder, sink, watchdog = _stall_recorder(fake_clock, steps)
    run_batches(recorder, steps, fake_clock, 4)  # Steps 2..5; no read due.
    fake_clock.advance(5.0)  # A hang after step 5's end...
    assert watchdog.poll()
    assert "training is at global step about 5 (step 1 read, and 4 batch calls since)" in (
        tf_log.messages[-1][1])
    run_batches(recorder, steps, fake_clock, 1)  # ...ended by step 6's end.
    assert sink.records[1] == (6, {"stall_secs": 5.25})  # Read at once, not at 11.
    run_batches(recorder, steps, fake_clock, 5)
    recorder.end_run()
    [record] = [s for step, s in sink.rates() if step == 11]
    assert record["global_step/sec"] == 10 / (10 * 0.25 + 5.0)  # The hang slows it...
    assert record["step_time/max"] == 5.25  # ...and shows as the slowest step.
    ledger = sink.records[-1][1]
    assert ledger["goodput/stall_secs"] == 5.25  # The ledger books it apart.
    assert ledger["goodput/step_secs"] == 9 * 0.25


def test_a_hang_in_the_counters_own_read_is_a_stall_of_that_call(fake_clock):
    # The read waits for the device to finish the step: a read that blocks
    # is that batch call's time, and a stall when it reaches the threshold.
    steps = Steps()
    recorder, sink, watchdog = _stall_recorder(fake_clock, steps)

    def slow_read():
        if steps.step == 11:  # The record's read hangs.
            fake_clock.advance(5.0)
        return steps()

    recorder._read = slow_read
    run_batches(recorder, steps, fake_clock, 10)  # Through step 11.
    assert (11, {"stall_secs": 5.25}) in sink.records
    [record] = [s for step, s in sink.rates() if step == 11]
    assert record["step_time/max"] == 5.25
    recorder.end_run()
    assert sink.records[-1][1]["goodput/stall_secs"] == 5.25
    assert sink.records[-1][1]["goodput/recorder_secs"] == 0.0


def test_a_gap_is_a_stall_by_its_length_whether_or_not_the_watchdog_looked(fake_clock):
    steps = Steps()
    recorder, sink, watchdog = _stall_recorder(fake_clock, steps)
    run_batches(recorder, steps, fake_clock, 3)
    fake_clock.advance(0.75)  # 0.75 + 0.25: exactly the 1 s threshold.
    run_batches(recorder, steps, fake_clock, 1)
    fake_clock.advance(0.5)  # 0.5 + 0.25: under it.
    run_batches(recorder, steps, fake_clock, 1)
    recorder.end_run()
    assert [r for r in sink.records if "stall_secs" in r[1]] == [(5, {"stall_secs": 1.0})]
    assert sink.records[-1][1]["goodput/stall_secs"] == 1.0


def test_a_paused_block_is_left_out_and_never_a_stall(fake_clock, tf_log):
    steps = Steps()
    recorder, sink, watchdog = _stall_recorder(fake_clock, steps)
    run_batches(recorder, steps, fake_clock, 5)
    assert recorder.pause_steps(epoch_end=False)
    assert not recorder.pause_steps(epoch_end=False)  # Nested: nothing.
    fake_clock.advance(100.0)  # An evaluation.
    assert not watchdog.poll()
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 15)
    recorder.end_run()
    assert [s["global_step/sec"] for _, s in sink.rates()] == [4.0, 4.0]
    assert sink.records[-1][1]["goodput/epoch_boundary_secs"] == 100.0
    assert not [m for _, m in tf_log.messages if "no training step" in m]


def test_a_stall_that_runs_into_an_epoch_end_is_boundary_time(fake_clock, tf_log):
    steps = Steps()
    recorder, sink, watchdog = _stall_recorder(fake_clock, steps)
    fake_clock.advance(3.0)  # A callback's epoch-end work after the last batch.
    assert watchdog.poll()
    recorder.pause_steps()
    recorder.end_run()
    assert not any("stall_secs" in s and len(s) == 1 for _, s in sink.records)
    assert sink.records[-1][1]["goodput/stall_secs"] == 0.0
    assert sink.records[-1][1]["goodput/epoch_boundary_secs"] == 3.0
    assert "it is counted as epoch-boundary time, not as a stall" in tf_log.messages[-2][1]


def test_examples_of_an_applied_update_with_gradient_accumulation(fake_clock):
    sink = ListSink()
    rates = RateTracker(SecondOrStepTimer(every_steps=5, clock=fake_clock), batch_size=8)
    recorder = Recorder(rates, sink, fake_clock)
    calls = Steps()
    # Two batch calls per update: the step moves every second call.
    recorder.begin_run(RunSource(read=lambda: calls.step // 2, calls_per_update=2))
    recorder.begin_steps()
    run_batches(recorder, calls, fake_clock, 12)
    # The first step is the first applied update: the baseline is step 1 at
    # the 2nd call's end; the record step 6 at the 12th's, 5 updates in 10
    # calls of 0.25 s.
    ((step, scalars),) = sink.rates()
    assert step == 6 and scalars["global_step/sec"] == 2.0
    assert scalars["examples/sec"] == 2.0 * 8 * 2  # 16 examples an update.


def test_slow_writes_are_own_work_warned_once_with_the_share(fake_clock, tf_log):
    # A disk that takes 0.5 s a write: never a stall, never in the rate, and
    # one warning once the writes pass 5% of the run's time so far.
    sink = ListSink()
    write = sink.write

    def slow_write(step, scalars):
        fake_clock.advance(0.5)
        return write(step, scalars)

    sink.write = slow_write
    rates = RateTracker(SecondOrStepTimer(every_steps=10, clock=fake_clock))
    recorder = Recorder(rates, sink, fake_clock, stall_secs=0.25, goodput=True,
                        where="gs://bucket/logs")
    steps = Steps()
    recorder.begin_run(RunSource(read=steps))
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 100, seconds=0.125)
    recorder.end_run()
    assert {s["global_step/sec"] for _, s in sink.rates()} == {8.0}  # Writes left out.
    assert [r for r in sink.records if "stall_secs" in r[1]] == []
    ledger = sink.records[-1][1]
    assert ledger["goodput/recorder_secs"] == 10 * 0.5  # The baseline and 9 records.
    assert ledger["goodput/stall_secs"] == 0.0
    warnings = [m for level, m in tf_log.messages
                if level == logging.WARNING and "writing records took" in m]
    assert warnings == [
        # At the record at step 61 (the first past 10 s): 7 writes of 0.5 s
        # in 61 batches of 0.125 s and those writes.
        "keras_stepcounter: writing records took 31.5% of training time so far "
        "(3.50 s of 11.1 s writing to gs://bucket/logs). It is left out of the rates, "
        "which then overstate what the job gets: record less often (every_n_steps), "
        "or write to a faster disk."
    ]


def test_a_paused_block_mid_epoch_keeps_the_epochs_batch_count(fake_clock):
    # A callback's paused() block in the middle of an epoch: after the
    # epoch's 10th batch the watchdog still knows the epoch is over (what
    # follows until the next hook is boundary time, never awaited as a step).
    steps = Steps()
    recorder, sink, watchdog = _stall_recorder(fake_clock, steps)  # 1 batch run.
    recorder._source = RunSource(read=steps, batches_per_epoch=10)
    run_batches(recorder, steps, fake_clock, 4)
    assert recorder.pause_steps(epoch_end=False)
    fake_clock.advance(5.0)
    recorder.begin_steps()
    run_batches(recorder, steps, fake_clock, 4)
    assert recorder._progress() is not None  # The 10th batch is still to come.
    run_batches(recorder, steps, fake_clock, 1)
    assert recorder._progress() is None
    fake_clock.advance(3.0)
    assert not watchdog.poll()


@pytest.mark.parametrize("extra_update, warned", [(1, 1), (0, 0)])
def test_an_unseen_short_calls_extra_update_is_said_once(fake_clock, tf_log, extra_update, warned):
    # Keras before 3.7 on TensorFlow: 4 batches an epoch in calls of 3 and 1,
    # no hook for the short call, and the optimizer counting it as 2 updates.
    steps = Steps()
    recorder, sink = make_recorder(fake_clock, every_steps=1000)
    recorder.begin_run(RunSource(read=steps, batches_per_call=3, steps_per_call=3,
                                 batches_per_epoch=4))
    for _ in range(3):  # Epochs.
        recorder.begin_steps()
        run_batches(recorder, steps, fake_clock, 1, seconds=0.3, per_call=3)
        fake_clock.advance(0.1)  # The unseen call.
        steps.step += 1 + extra_update
        recorder.pause_steps()
        assert recorder.stretch_rate is not None
    recorder.end_run()
    said = [m for level, m in tf_log.messages if "advanced" in m]
    assert len(said) == warned
    if warned:
        assert said[0].startswith(
            "keras_stepcounter: the step source advanced 2 over the epoch's last 1 batches: "
            "Keras before 3.7 on TensorFlow counts an update more")
