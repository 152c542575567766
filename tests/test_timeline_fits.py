"""One timeline, tried as a user would (issue 21): real `fit` runs that hang,
abort, restart and reuse a directory, and a custom loop that pauses.

Every instrument (the rate, `step_time/*`, the epoch's `steps_per_sec`,
`stall_secs`, the goodput ledger, the watchdog's warning) reads one record
of the run, so in each setup they must tell the same story. Fits are shared
through module-scoped fixtures; real sleeps only where the point is real
timing, with bounds of at least 2x. Where the logic is the point (exact
values), a fake clock drives a real fit.
"""

import contextlib
import io
import logging
import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import FakeClock, LogCapture, counter_on

import keras_stepcounter
from keras_stepcounter.core import tags
from keras_stepcounter.core.watchdog import THREAD_NAME
from keras_stepcounter.tools import events
from keras_stepcounter.tools.events import read_scalars
from keras_stepcounter.tools.report import print_report
from keras_stepcounter.writer.event_file import FILE_SUFFIX, EventFileSink

keras = tf.keras
RNG = np.random.default_rng(21)
X = RNG.random((40, 8), dtype=np.float32)  # 10 batches of 4.
Y = RNG.random((40, 1), dtype=np.float32)
BUCKETS = ("startup", "step", "epoch_boundary", "stall", "recorder", "other")
STALL_WARNING = "no training step has ended"


# Helpers. ------------------------------------------------------------------


def make_model(optimizer="sgd", steps_per_execution=1):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=steps_per_execution)
    return model


def iterations(model):
    return int(model.optimizer.iterations.numpy())


def scalars_of(log_dir):
    """{tag: [(step, value), ...]} of every event file in `log_dir`."""
    return {tag: [(r.step, r.value) for r in records]
            for tag, records in read_scalars(str(log_dir)).items()}


def ledger_of(log_dir):
    """The goodput ledger of a one-fit directory: {bucket: seconds}, its step."""
    scalars = scalars_of(log_dir)
    (step,) = {s for name in BUCKETS for s, _ in scalars[f"goodput/{name}_secs"]}
    seconds = {name: scalars[f"goodput/{name}_secs"][0][1] for name in BUCKETS}
    seconds["total"] = scalars[tags.TOTAL_TAG][0][1]
    seconds["fraction"] = scalars[tags.FRACTION_TAG][0][1]
    return step, seconds


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def outside(values, low, high, around):
    """The values not within [low, high] x `around`."""
    return [v for v in values if not low * around <= v <= high * around]


def watchdog_threads():
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def seconds_until_no_watchdog(limit=3.0):
    """Polls `threading.enumerate()`; the seconds it took (or `limit`)."""
    start = time.perf_counter()
    while watchdog_threads() and time.perf_counter() - start < limit:
        time.sleep(0.01)
    return time.perf_counter() - start


@contextlib.contextmanager
def tf_messages():
    """Collects TensorFlow's log records (INFO and up) in the block."""
    logger = logging.getLogger("tensorflow")
    handler, level = LogCapture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def stall_warnings(messages):
    return [m for level, m in messages if level == logging.WARNING and STALL_WARNING in m]


class Steps(keras.callbacks.Callback):
    """Real time, listed after the counter: `per_step` seconds at each batch
    begin (inside the step); `tail` seconds after each epoch's last batch
    (batch index `last_batch`, or the end index of the call covering it):
    a pause, whatever hook the counter learns of it in; and a hang of
    `hang[1]` seconds after the end of the fit's `hang[0]`th batch (a stall
    in a user's callback)."""

    def __init__(self, per_step=0.02, tail=0.0, last_batch=9, hang=None):
        super().__init__()
        self.per_step, self.tail, self.last_batch, self.hang = per_step, tail, last_batch, hang
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        time.sleep(self.per_step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = global_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.hang is not None and self.batches == self.hang[0]:
            hang_in_a_callback(self.hang[1])
        # A short last call reports 11 for 9 (Keras 3.6 on); before, a call's
        # begin index (8 for 8-9): the steps done this epoch tell then.
        if batch >= self.last_batch or global_step(self.model) - self.epoch_start > self.last_batch:
            time.sleep(self.tail)


def global_step(model):
    """The step the counter reads: a LossScaleOptimizer's inner count."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    return int(optimizer.iterations.numpy())


def hang_in_a_callback(seconds):
    time.sleep(seconds)


class Stamps(keras.callbacks.Callback):
    """Listed right before the counter: the clock at each batch end, by the
    global step, as the counter's own batch-end read will see it."""

    def __init__(self):
        super().__init__()
        self.at = {}

    def on_train_batch_end(self, batch, logs=None):
        self.at[iterations(self.model)] = time.perf_counter()


class Ticker(keras.callbacks.Callback):
    """Fake time, listed before the counter: `per_call` fake seconds for
    each batch call."""

    def __init__(self, clock, per_call=0.125):
        super().__init__()
        self.clock, self.per_call = clock, per_call

    def on_train_batch_end(self, batch, logs=None):
        self.clock.advance(self.per_call)


class FakeTail(keras.callbacks.Callback):
    """Fake time, listed after the counter: `tail` fake seconds after each
    epoch's last batch (batch index `last_batch`)."""

    def __init__(self, clock, tail, last_batch=9):
        super().__init__()
        self.clock, self.tail, self.last_batch = clock, tail, last_batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.last_batch:
            self.clock.advance(self.tail)


# 2. A hang in a user's callback, with epoch ends and validation. ----------

CALLBACK_HANG = 2.0  # Seconds of the hang in a user's callback.


@pytest.fixture(scope="module")
def hang_fit(tmp_path_factory):
    """3 epochs of 10 steps of ~0.02 s, 0.3 s of other callbacks' work after
    each epoch's last batch, validation, and a 2 s hang after the 15th
    batch's end; records every 5 steps. A stall is 1 s without a step end:
    twice the hang, and well over a tail with what Keras does after an
    epoch's last batch (the watchdog hears of the epoch end only at the
    counter's next hook)."""
    log_dir = tmp_path_factory.mktemp("hang")
    counter = keras_stepcounter.StepCounter(
        every_n_steps=5, output_dir=str(log_dir), stall_secs=1.0, goodput=True,
        step_time_stats=True,
    )
    model = make_model()
    with tf_messages() as messages:
        history = model.fit(
            X, Y, batch_size=4, epochs=3, verbose=0, shuffle=False,
            validation_data=(X[:8], Y[:8]),
            callbacks=[counter, Steps(per_step=0.02, tail=0.3, hang=(15, CALLBACK_HANG))],
        )
    report = io.StringIO()
    print_report(str(log_dir), file=report)
    return {
        "scalars": scalars_of(log_dir), "ledger": ledger_of(log_dir),
        "epoch_rates": history.history["steps_per_sec"], "messages": list(messages),
        "report": report.getvalue(),
    }


def test_hang_stall_secs_is_recorded_once_at_the_step_that_ended_it(hang_fit):
    # The hang follows the 15th step's end: the 16th step's end ends it.
    ((step, stall),) = hang_fit["scalars"]["stall_secs"]
    assert step == 16
    assert CALLBACK_HANG <= stall < 2 * CALLBACK_HANG


def test_hang_is_inside_the_rate_interval_and_step_time_max(hang_fit):
    scalars = hang_fit["scalars"]
    ((_, stall),) = scalars["stall_secs"]
    rates = dict(scalars["global_step/sec"])
    assert sorted(rates) == [6, 11, 16, 21, 26]
    # The record at 16 covers steps 12..16: the stall and 4 short steps.
    maxima = dict(scalars["step_time/max"])
    assert maxima[16] == pytest.approx(stall, rel=1e-6)
    assert stall <= 5 / rates[16] < stall + 4 * 0.1
    others = [rate for step, rate in rates.items() if step != 16]
    assert outside(others, 0.5, 2.0, median(others)) == [], rates
    assert all(maxima[step] < stall / 4 for step in maxima if step != 16), maxima


def test_hang_is_only_in_the_ledgers_stall_bucket(hang_fit):
    step, seconds = hang_fit["ledger"]
    ((_, stall),) = hang_fit["scalars"]["stall_secs"]
    assert step == 30
    assert seconds["stall"] == pytest.approx(stall, rel=1e-6)
    assert sum(seconds[name] for name in BUCKETS) == pytest.approx(seconds["total"], rel=1e-5)
    # Three tails of 0.3 s and validation are boundary time; the steps
    # (28 of ~0.02 s: step 1 is startup, step 16 ended the stall and is in
    # it) are well under the hang, which is not among them.
    assert seconds["epoch_boundary"] >= 3 * 0.3
    assert 28 * 0.02 <= seconds["step"] < CALLBACK_HANG
    assert seconds["other"] == 0.0
    assert seconds["fraction"] == pytest.approx(seconds["step"] / seconds["total"], rel=1e-5)


def test_hang_is_in_its_epochs_steps_per_sec_only(hang_fit):
    first, second, third = hang_fit["epoch_rates"]
    assert second < 10 / CALLBACK_HANG  # 10 steps, the hang among them.
    assert first > 2 * 10 / CALLBACK_HANG and third > 2 * 10 / CALLBACK_HANG


def test_hang_gives_one_warning_naming_the_step_and_the_hung_code(hang_fit):
    messages = hang_fit["messages"]
    warnings = stall_warnings(messages)
    assert len(warnings) == 1, [m for _, m in messages if "keras_stepcounter" in m]
    (warning,) = warnings
    # Read at step 11, 4 batch calls since: training is at step 15.
    assert "training is at global step about 15 (step 11 read, and 4 batch calls since)" in warning
    assert "hang_in_a_callback" in warning
    resumed = [m for _, m in messages if "training resumed after a" in m]
    assert len(resumed) == 1 and resumed[0].endswith("stall, at global step 16.")
    assert watchdog_threads() == []


def test_hang_has_its_own_row_in_the_report_and_epoch_ends_none(hang_fit):
    lines = hang_fit["report"].splitlines()
    ((_, stall),) = hang_fit["scalars"]["stall_secs"]
    (seen,) = [line for line in lines if line.startswith("  .  resumed at step 16 after ")]
    assert seen.endswith(" s without a step")
    assert float(seen.split()[6]) == pytest.approx(stall, abs=0.01)
    # The one low record is the hang's; the epoch ends (10 -> 11, 20 -> 21)
    # are not listed as stalls.
    low = [line for line in lines if "global_step/sec  steps" in line]
    assert len(low) == 1 and "steps 11-16:" in low[0]
    # The ledger's table: the hang in its own row.
    (row,) = [line.split() for line in lines if line.split()[:1] == ["stall"]]
    assert float(row[1]) == pytest.approx(stall, abs=0.01)


def test_work_after_an_epochs_last_batch_is_never_warned_of_as_a_stall(tmp_path):
    # A callback listed after the counter works 1 s on the epoch's last
    # batch (a checkpoint every 10 batches, say): boundary time for the
    # rate and the ledger, so not a stall for the watchdog either.
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path),
                                            stall_secs=0.4, goodput=True)
    with tf_messages() as messages:
        make_model().fit(X, Y, batch_size=4, epochs=1, verbose=0,
                         callbacks=[counter, Steps(per_step=0.0, tail=1.0)])
    _, seconds = ledger_of(tmp_path)
    assert seconds["epoch_boundary"] >= 1.0 and seconds["stall"] == 0.0
    assert [m for _, m in messages if "keras_stepcounter" in m and "stall" in m] == []


# 3. A hang in the counter's own work: a step read, an event write. ---------

WORK_HANG = 1.5  # Seconds of a blocking step read or event write.


@pytest.fixture(scope="module")
def blocking_work_fit(tmp_path_factory):
    """30 steps of ~0.01 s, a record every 5; the step read that returns 11
    blocks 1.5 s, and so does the write of the record at step 16."""
    log_dir = tmp_path_factory.mktemp("blocking")
    model = make_model()
    blocked = set()

    def step_source():
        step = iterations(model)
        if step == 11 and "read" not in blocked:
            blocked.add("read")
            time.sleep(WORK_HANG)
        return step

    counter = keras_stepcounter.StepCounter(
        every_n_steps=5, output_dir=str(log_dir), stall_secs=0.5, goodput=True,
        step_time_stats=True, step_source=step_source,
    )
    write = EventFileSink.write

    def slow_write(sink, step, scalars):  # A disk that blocks once.
        if step == 16 and "global_step/sec" in scalars and "write" not in blocked:
            blocked.add("write")
            time.sleep(WORK_HANG)
        return write(sink, step, scalars)

    stamps = Stamps()
    with tf_messages() as messages, pytest.MonkeyPatch.context() as patch:
        patch.setattr(EventFileSink, "write", slow_write)
        model.fit(np.concatenate([X] * 3), np.concatenate([Y] * 3), batch_size=4,
                  epochs=1, verbose=0, shuffle=False,
                  callbacks=[Steps(per_step=0.01), stamps, counter])
    assert blocked == {"read", "write"}
    return {"scalars": scalars_of(log_dir), "ledger": ledger_of(log_dir),
            "stamps": stamps.at, "messages": list(messages)}


def test_a_blocking_read_is_a_stall_of_its_own_call(blocking_work_fit):
    # The read waits on the device: the call whose step it reads ends when
    # it returns, and its 1.5 s make that call a stall, at step 11.
    stalls = blocking_work_fit["scalars"]["stall_secs"]
    assert [step for step, _ in stalls] == [11]
    stamps = blocking_work_fit["stamps"]
    [(_, stall)] = stalls
    # From the end of the call before (a callback listed before the counter
    # saw it a little earlier) to the read's end, before call 12 ended.
    assert WORK_HANG <= stall <= stamps[12] - stamps[10]


def test_a_blocking_write_is_the_counters_own_work_in_every_instrument(blocking_work_fit):
    scalars = blocking_work_fit["scalars"]
    stalls = dict(scalars["stall_secs"])
    rates = dict(scalars["global_step/sec"])
    maxima = dict(scalars["step_time/max"])
    # The read's hang is in the record at 11 (its call's time), the write's
    # at 16 in no record: it is left out of the rate and the step times.
    assert maxima[11] == pytest.approx(stalls[11], rel=1e-6)
    assert 5 / rates[11] >= stalls[11]
    for step in (6, 16, 21, 26):
        assert 5 / rates[step] < WORK_HANG / 2 and maxima[step] < WORK_HANG / 2
    _, seconds = blocking_work_fit["ledger"]
    assert seconds["stall"] == pytest.approx(stalls[11], rel=1e-5)
    assert WORK_HANG <= seconds["recorder"] <= 2 * WORK_HANG  # The write, never a stall.
    assert sum(seconds[name] for name in BUCKETS) == pytest.approx(seconds["total"], rel=1e-5)
    # Both hangs are warned of while they last (training makes no step);
    # only the read's is booked as a stall.
    assert len(stall_warnings(blocking_work_fit["messages"])) == 2


# 4. The watchdog belongs to its fit. ---------------------------------------

ABORTS = {
    "error-0.3": (RuntimeError, 0.3),
    "interrupt-0.3": (KeyboardInterrupt, 0.3),
    "error-auto": (RuntimeError, "auto"),
    "interrupt-auto": (KeyboardInterrupt, "auto"),
}


class RaiseAt(keras.callbacks.Callback):
    """Raises `error` at the end of batch `batch` of the second epoch (Ctrl-C
    in a notebook raises KeyboardInterrupt wherever Python is)."""

    def __init__(self, error, batch):
        super().__init__()
        self.error, self.batch, self.epoch = error, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (1, self.batch):
            raise self.error("raised from a callback")


@pytest.fixture(scope="module")
def aborted_fits(tmp_path_factory):
    """For each case: a fit raised in its second epoch; the seconds until no
    watchdog thread was left; then, once for all, 1.5 s of an idle
    interpreter living on; then each counter's second fit."""
    runs = {}
    with tf_messages() as messages:
        for name, (error, stall_secs) in ABORTS.items():
            log_dir = tmp_path_factory.mktemp(name)
            counter = keras_stepcounter.StepCounter(
                every_n_steps=4, output_dir=str(log_dir), stall_secs=stall_secs, goodput=True,
            )
            model = make_model()
            with pytest.raises(error, match="raised from a callback"):
                model.fit(X, Y, batch_size=4, epochs=3, verbose=0,
                          callbacks=[counter, Steps(per_step=0.0), RaiseAt(error, 5)])
            runs[name] = {
                "counter": counter, "model": model, "log_dir": log_dir,
                "thread_gone_secs": seconds_until_no_watchdog(),
                "step_after_abort": iterations(model),
            }
        idle_from = len(messages)
        time.sleep(1.5)
        idle_messages = messages[idle_from:]
        for run in runs.values():
            run["records_before"] = scalars_of(run["log_dir"])
            run["model"].fit(X, Y, batch_size=4, epochs=1, verbose=0,
                             callbacks=[run["counter"]])
            run["records_after"] = scalars_of(run["log_dir"])
            run["threads_after_second_fit"] = len(watchdog_threads())
    return runs, idle_messages


@pytest.mark.parametrize("case", sorted(ABORTS))
def test_aborted_fit_leaves_no_watchdog_thread(aborted_fits, case):
    runs, _ = aborted_fits
    # Within ~2 s (the "auto" watchdog looks once a second).
    assert runs[case]["thread_gone_secs"] < 2.0


def test_aborted_fits_never_warn_in_the_idle_interpreter(aborted_fits):
    _, idle_messages = aborted_fits
    assert [m for _, m in idle_messages if "keras_stepcounter" in m] == []


@pytest.mark.parametrize("case", sorted(ABORTS))
def test_the_same_counter_works_in_the_next_fit(aborted_fits, case):
    run = aborted_fits[0][case]
    start = run["step_after_abort"]
    assert start == 16  # Raised at the end of the second epoch's 6th batch.
    before = dict(run["records_before"]["global_step/sec"])
    assert sorted(before) == [5, 9, 13]
    # The next fit: 10 steps from 17 (its baseline) on, a record every 4.
    after = run["records_after"]
    rates = [step for step, _ in after["global_step/sec"] if step > start]
    assert rates == [start + 1 + 4, start + 1 + 8]
    # The aborted fit's ledger, at its last step read (the record at 13),
    # written when the next fit began; then the next fit's.
    assert [step for step, _ in after["goodput/total_secs"]] == [13, start + 10]
    assert "goodput/rerun_steps" not in after
    assert run["threads_after_second_fit"] == 0


class HangThenInterrupt(keras.callbacks.Callback):
    """Hangs after the end of batch 7 (the watchdog warns), then raises
    KeyboardInterrupt: a user who sees the warning and presses Ctrl-C."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 7:
            hang_in_a_callback(0.8)
            raise KeyboardInterrupt


def assert_no_stall_from_before(log_dir, first_step_of_next_fit):
    scalars = scalars_of(log_dir)
    stalls = [step for step, _ in scalars.get("stall_secs", [])]
    assert [step for step in stalls if step >= first_step_of_next_fit] == []
    ((_, step_secs),) = scalars["goodput/step_secs"][-1:]
    ((_, stall_secs),) = scalars["goodput/stall_secs"][-1:]
    ((_, fraction),) = scalars["goodput/fraction"][-1:]
    assert stall_secs == 0.0 and step_secs >= 0.0 and 0.0 <= fraction <= 1.0


def test_ctrl_c_during_a_hang_leaves_no_stall_for_the_next_fit(tmp_path):
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path),
                                            stall_secs=0.3, goodput=True)
    model = make_model()
    with tf_messages() as messages:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, Y, batch_size=4, epochs=1, verbose=0,
                      callbacks=[counter, HangThenInterrupt()])
        assert len(stall_warnings(messages)) == 1
        time.sleep(0.5)  # The user reads the warning.
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
    assert [m for _, m in messages if "training resumed after a" in m] == []
    assert_no_stall_from_before(tmp_path, first_step_of_next_fit=9)


def test_a_failed_read_during_a_stall_leaves_no_stall_for_the_next_fit(tmp_path):
    model = make_model()

    def step_source():
        step = iterations(model)
        if step == 6:
            hang_in_a_callback(0.8)
            raise OSError("the device is gone")
        return step

    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path),
                                            stall_secs=0.3, goodput=True,
                                            step_source=step_source)
    with tf_messages() as messages:
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
        failed = [m for level, m in messages
                  if level == logging.WARNING and "reading the global step failed" in m]
        assert len(stall_warnings(messages)) == 1 and len(failed) == 1
        model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
    assert_no_stall_from_before(tmp_path, first_step_of_next_fit=11)


# 5. Re-run steps in a reused directory. -------------------------------------


def write_foreign_event_file(log_dir, megabytes=20):
    """Another tool's large event file, at steps far above the counter's."""
    writer = tf.summary.create_file_writer(str(log_dir))
    blob = tf.random.uniform((256, 1024))  # 1 MB a record.
    with writer.as_default():
        for i in range(megabytes):
            tf.summary.write("blob", blob, step=10**6 + i)
        for i in range(50):
            tf.summary.scalar("foreign/loss", 1.0, step=10**6 + i)
            tf.summary.histogram("foreign/weights", tf.random.normal((100,)), step=10**6 + i)
    writer.close()


@pytest.fixture(scope="module")
def reused_dir(tmp_path_factory):
    """logs/train holds a 20 MB foreign event file and Keras's TensorBoard
    callback's files; three counters train there in turn."""
    root = tmp_path_factory.mktemp("reused")
    train = root / "train"
    write_foreign_event_file(train)
    real_read = events.read_event_file
    reads = []

    def spy(path):
        reads.append(os.path.basename(path))
        return real_read(path)

    def fit(model, counter, epochs):
        tensorboard = keras.callbacks.TensorBoard(str(root), histogram_freq=1, update_freq=1)
        model.fit(X, Y, batch_size=4, epochs=epochs, verbose=0,
                  validation_data=(X[:8], Y[:8]), callbacks=[counter, tensorboard])

    results = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(events, "read_event_file", spy)
        # A run from scratch: steps 1..20, records 6, 11, 16, the ledger at 20.
        first = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(train),
                                              goodput=True)
        fit(make_model(), first, epochs=2)
        results["reads_first"] = list(reads)
        results["files"] = sorted(os.listdir(train))
        # The script run again, restored to step 12, below the highest step
        # recorded there (20); then restored to 18 by the same counter.
        restoring = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(train),
                                                  goodput=True)
        restored = make_model()
        restored.optimizer.build(restored.trainable_variables)
        restored.optimizer.iterations.assign(12)
        fit(restored, restoring, epochs=1)  # 13..22
        results["reads_restored"] = list(reads)
        restored.optimizer.iterations.assign(18)
        fit(restored, restoring, epochs=1)  # 19..28
        results["reads_again"] = list(reads)
        # The script run again from scratch: a new run, not a re-run.
        fresh = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(train),
                                              goodput=True)
        fit(make_model(), fresh, epochs=1)  # 1..10
        results["reads_fresh"] = list(reads)
    results["scalars"] = {name: read_scalars_of_file(train / name)
                          for name in os.listdir(train) if name.endswith(FILE_SUFFIX)}
    results["tensorboard_files"] = [name for name in results["files"]
                                    if not name.endswith(FILE_SUFFIX)
                                    and name != "stepcounter.lineage.json"]
    return results


def read_scalars_of_file(path):
    found = {}
    for tag, record in events.read_event_file(str(path)).scalars:
        found.setdefault(tag, []).append((record.step, record.value))
    return found


def test_reused_dir_holds_the_other_tools_files(reused_dir):
    # The foreign file and the TensorBoard callback's train file.
    assert len(reused_dir["tensorboard_files"]) == 2
    counters = [name for name in reused_dir["files"] if name.endswith(FILE_SUFFIX)]
    assert len(counters) == 1


def by_ledger_steps(reused_dir):
    """The counters' files' scalars, by the steps of their ledgers."""
    return {tuple(step for step, _ in scalars["goodput/total_secs"]): scalars
            for scalars in reused_dir["scalars"].values()}


def test_reused_dir_a_run_from_step_zero_reads_nothing_and_is_no_rerun(reused_dir):
    # A start at step 0 reads no file; its records hold no re-run steps.
    assert reused_dir["reads_first"] == []
    assert reused_dir["reads_fresh"] == reused_dir["reads_again"]
    runs = by_ledger_steps(reused_dir)
    assert sorted(runs) == [(10,), (20,), (22, 28)]
    assert "goodput/rerun_steps" not in runs[(20,)]
    assert "goodput/rerun_steps" not in runs[(10,)]


def test_reused_dir_a_restore_counts_the_steps_from_its_start(reused_dir):
    restored = by_ledger_steps(reused_dir)[(22, 28)]
    # Highest recorded there: 20 (the first run's ledger); restored at 12,
    # then at 18, below the 22 this counter reached.
    assert restored["goodput/rerun_steps"] == [(12, 8.0), (18, 4.0)]


def test_reused_dir_reads_no_event_file(reused_dir):
    # Re-run steps come from the counter's small index beside its files:
    # no event file is read, the counters' own nor the other tools'.
    assert "stepcounter.lineage.json" in reused_dir["files"]
    assert reused_dir["reads_restored"] == reused_dir["reads_again"] == []


def test_a_restore_within_a_new_run_ignores_an_older_runs_records(tmp_path):
    # Yesterday's run got to step 20 here. Today's starts over at 0 (a new
    # run), reaches 10, and is restored to 5: 5 steps are redone, not 15.
    yesterday = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path),
                                              goodput=True)
    make_model().fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[yesterday])
    today = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path),
                                          goodput=True)
    model = make_model()
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[today])
    model.optimizer.iterations.assign(5)
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[today])
    reruns = scalars_of(tmp_path).get("goodput/rerun_steps")
    assert reruns == [(5, 5.0)]


# 6. counter.paused() in a custom loop. --------------------------------------


def test_paused_block_is_left_out_of_every_instrument_and_never_a_stall(tmp_path):
    step = [0]
    counter = keras_stepcounter.StepCounter(
        every_n_steps=5, output_dir=str(tmp_path), stall_secs=0.3, goodput=True,
        step_time_stats=True,
    )
    with tf_messages() as messages:
        with counter.track(lambda: step[0]):
            for _ in range(30):
                with counter.timed("work"):
                    time.sleep(0.02)
                step[0] += 1
                counter.step_done()
                if step[0] == 13:  # Inside the interval 11 -> 16.
                    with counter.paused():
                        time.sleep(1.0)  # An evaluation, over 3x stall_secs.
    scalars = scalars_of(tmp_path)
    rates = dict(scalars["global_step/sec"])
    assert sorted(rates) == [6, 11, 16, 21, 26]
    assert outside(rates.values(), 0.5, 2.0, median(rates.values())) == [], rates
    assert max(value for _, value in scalars["step_time/max"]) < 0.5
    # The block is not in the interval: the timed work fills it all.
    assert min(value for _, value in scalars["time_frac/work"]) > 0.5
    _, seconds = ledger_of(tmp_path)
    assert seconds["epoch_boundary"] >= 1.0
    assert seconds["stall"] == 0.0
    assert sum(seconds[name] for name in BUCKETS) == pytest.approx(seconds["total"], rel=1e-5)
    assert "stall_secs" not in scalars
    assert stall_warnings(messages) == []
    assert watchdog_threads() == []


# 7. Honest options. ---------------------------------------------------------


@pytest.mark.parametrize("option", [
    "goodput", "step_time_stats", "pause_between_epochs", "epoch_logs", "time_to_first_step",
    "input_stats",
])
@pytest.mark.parametrize("value", ["no", 1, None])
def test_an_on_off_option_takes_only_a_bool(option, value):
    with pytest.raises(TypeError, match=rf"^{option} must be True or False, got {value!r}"):
        keras_stepcounter.StepCounter(**{option: value})


def test_every_n_secs_alone_says_what_was_given_and_what_to_pass():
    with pytest.raises(ValueError) as raised:
        keras_stepcounter.StepCounter(every_n_secs=-1)
    message = str(raised.value)
    assert message.startswith(
        "exactly one of every_n_steps and every_n_secs should be provided.")
    assert "every_n_secs=-1" in message and "every_n_steps=100" in message
    assert "every_n_steps=None" in message  # What to pass.


def test_a_non_positive_every_n_secs_is_named_with_its_value():
    with pytest.raises(ValueError, match=r"every_n_secs .*-1"):
        keras_stepcounter.StepCounter(every_n_steps=None, every_n_secs=-1)


def test_gradient_accumulation_examples_are_those_of_applied_updates(tmp_path):
    model = make_model(keras.optimizers.SGD(gradient_accumulation_steps=2))
    counter = keras_stepcounter.StepCounter(every_n_steps=3, output_dir=str(tmp_path),
                                            batch_size=4)
    model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[counter, Steps(0.005)])
    assert iterations(model) == 10  # 20 batches, 10 applied updates.
    scalars = scalars_of(tmp_path)
    rates, examples = scalars["global_step/sec"], scalars["examples/sec"]
    assert len(rates) >= 3
    assert [step for step, _ in examples] == [step for step, _ in rates]
    for (_, rate), (_, per_sec) in zip(rates, examples):
        assert per_sec == pytest.approx(rate * 4 * 2, rel=1e-6)


def test_gradient_accumulation_first_record_reads_like_the_rest(tmp_path):
    clock = FakeClock()
    model = make_model(keras.optimizers.SGD(gradient_accumulation_steps=2))
    counter = counter_on(clock, every_n_steps=3, output_dir=str(tmp_path))
    history = model.fit(X, Y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[Ticker(clock), counter])
    # 0.125 fake seconds a batch, 2 batches an update: 4 updates a second.
    values = [value for _, value in scalars_of(tmp_path)["global_step/sec"]]
    assert len(values) >= 2 and set(values) == {4.0}, values
    assert history.history["steps_per_sec"] == [4.0, 4.0]


# 8. What else a user hits. --------------------------------------------------


def test_mixed_precision_with_steps_per_execution_across_epoch_ends(tmp_path):
    # LossScaleOptimizer, 2 steps a call (5 calls an epoch: no short last
    # call, which Keras before 3.7 on TensorFlow ends without a batch-end hook), real
    # time: 0.05 s a call, 0.3 s after each epoch's last batch. A loss scale
    # of 1 skips no update (the default 2**15 overflows float16 gradients
    # at random, and a skipped update is no step), so the steps are known.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(), initial_scale=1.0)
        model = make_model(optimizer, steps_per_execution=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[0].compute_dtype == "float16"
    inner = model.optimizer.inner_optimizer  # Its count is the global step.
    counter = keras_stepcounter.StepCounter(every_n_steps=6, output_dir=str(tmp_path),
                                            goodput=True)
    history = model.fit(X, Y, batch_size=4, epochs=3, verbose=0, shuffle=False,
                        validation_data=(X[:8], Y[:8]),
                        callbacks=[counter, Steps(per_step=0.05, tail=0.3)])
    assert int(inner.iterations.numpy()) == 30
    rates = scalars_of(tmp_path)["global_step/sec"]
    # Calls end at 2, 4, ..., 10 | 12, ..., 20 | 22, ..., 30; baseline at 2.
    # 8 -> 14 and 20 -> 26 span an epoch end.
    assert [step for step, _ in rates] == [8, 14, 20, 26]
    values = [value for _, value in rates]
    assert outside(values, 0.5, 2.0, median(values)) == [], rates
    assert outside(history.history["steps_per_sec"], 0.5, 2.0, median(values)) == []
    _, seconds = ledger_of(tmp_path)
    assert seconds["epoch_boundary"] >= 3 * 0.3


def test_step_time_of_an_epochs_short_last_call(tmp_path):
    # steps_per_execution=3, 10 batches an epoch: calls of 3, 3, 3 and 1
    # steps, each 0.125 fake seconds. The record at 13 covers the 1-step
    # call (step 10: 0.125 s) and a 3-step call (0.125 / 3 s a step).
    clock = FakeClock()
    counter = counter_on(clock, every_n_steps=4, output_dir=str(tmp_path),
                         step_time_stats=True)
    ends = []

    class BatchEnds(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(iterations(self.model))

    make_model(steps_per_execution=3).fit(X, Y, batch_size=4, epochs=2, verbose=0,
                                          callbacks=[Ticker(clock), counter, BatchEnds()])
    scalars = scalars_of(tmp_path)
    if 10 in ends:  # Keras calls the batch-end hooks after the 1-step call.
        assert dict(scalars["global_step/sec"])[13] == 16.0  # 4 steps in 0.25 s.
        assert dict(scalars["step_time/max"])[13] == 0.125
        assert dict(scalars["step_time/p50"])[13] == pytest.approx(0.125 / 3)
    else:  # Keras 3.5 ends that call with no hook: no call is seen short.
        assert ends == [3, 6, 9, 14, 17, 20]
        maxima = [value for _, value in scalars["step_time/max"]]
        assert maxima and all(value == pytest.approx(0.125 / 3) for value in maxima)


def test_without_epoch_pauses_every_instrument_counts_the_tails(tmp_path):
    # pause_between_epochs=False: the tail after each epoch's last batch is
    # step time for the rate, the epoch's rate and the ledger alike.
    clock = FakeClock()
    counter = counter_on(clock, every_n_steps=5, output_dir=str(tmp_path),
                         pause_between_epochs=False, goodput=True)
    history = make_model().fit(
        X, Y, batch_size=4, epochs=2, verbose=0,
        callbacks=[Ticker(clock), counter, FakeTail(clock, 1.0)],
    )
    rates = dict(scalars_of(tmp_path)["global_step/sec"])
    # 0.125 a step; 6 -> 11 holds epoch 1's 1.0 s tail.
    assert rates == pytest.approx({6: 8.0, 11: 5 / (5 * 0.125 + 1.0), 16: 8.0}, rel=1e-6)
    # An epoch's rate runs from the last batch end before it (the run's
    # first step's for epoch 1) to its last batch end: epoch 1's tail is in
    # epoch 2's rate; epoch 2's, the run's tail, in the ledger only.
    assert history.history["steps_per_sec"] == pytest.approx([8.0, 10 / (10 * 0.125 + 1.0)])
    _, seconds = ledger_of(tmp_path)
    assert seconds["epoch_boundary"] == 0.0
    assert seconds["step"] == pytest.approx(19 * 0.125 + 2 * 1.0)
    assert seconds["startup"] == pytest.approx(0.125)


@pytest.fixture(scope="module")
def backup_and_restore(tmp_path_factory):
    """A fit preempted at step 15 (the second epoch's 5th batch), then the
    script run again with BackupAndRestore (a new model, a new counter), the
    counter first or last in the list."""
    runs = {}
    for order in ("counter-first", "counter-last"):
        root = tmp_path_factory.mktemp(order)
        backup, logs = str(root / "backup"), root / "logs"

        def callbacks(counter, *others):
            restore = keras.callbacks.BackupAndRestore(backup)
            if order == "counter-first":
                return [counter, restore, *others]
            return [restore, *others, counter]

        first = keras_stepcounter.StepCounter(every_n_steps=4, output_dir=str(logs),
                                              goodput=True)
        with pytest.raises(RuntimeError, match="raised from a callback"):
            make_model().fit(X, Y, batch_size=4, epochs=4, verbose=0,
                             callbacks=callbacks(first, RaiseAt(RuntimeError, 4)))
        before, files_before = scalars_of(logs), set(os.listdir(logs))
        second = keras_stepcounter.StepCounter(every_n_steps=4, output_dir=str(logs),
                                               goodput=True)
        model = make_model()
        history = model.fit(X, Y, batch_size=4, epochs=4, verbose=0,
                            callbacks=callbacks(second))
        (new_file,) = set(os.listdir(logs)) - files_before
        runs[order] = {"before": before, "after": read_scalars_of_file(logs / new_file),
                       "history": history, "step": iterations(model)}
    return runs


@pytest.mark.parametrize("order", ["counter-first", "counter-last"])
def test_backup_and_restore_anywhere_in_the_list(backup_and_restore, order):
    run = backup_and_restore[order]
    highest_before = max(step for records in run["before"].values() for step, _ in records)
    # Preempted at step 15 (epoch 2's 5th batch); records at 5, 9, 13.
    assert highest_before == 13
    # Restored at the end of epoch 1 (step 10): epochs 2..4, 30 steps, the
    # baseline at 11 (read after BackupAndRestore's on_train_begin).
    assert run["history"].epoch == [1, 2, 3]
    assert run["step"] == 40
    after = run["after"]
    assert [step for step, _ in after["global_step/sec"]] == [15, 19, 23, 27, 31, 35, 39]
    # Redone: from the restored step to the highest the counters recorded.
    assert after["goodput/rerun_steps"] == [(10, float(highest_before - 10))]
    assert [step for step, _ in after["goodput/total_secs"]] == [40]


def test_a_hand_driven_loop_across_notebook_cells_is_watched(tmp_path):
    model = make_model()
    model.optimizer.build(model.trainable_variables)
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path),
                                            stall_secs=0.3)
    namespace = {"callbacks": keras.callbacks.CallbackList([counter], model=model),
                 "model": model, "time": time, "hang": hang_in_a_callback}
    cells = [
        "callbacks.on_train_begin()",
        "for batch in range(12):\n"
        "    callbacks.on_train_batch_begin(batch)\n"
        "    model.optimizer.iterations.assign_add(1)\n"
        "    hang(1.0) if batch == 8 else time.sleep(0.01)\n"
        "    callbacks.on_train_batch_end(batch)\n",
        "callbacks.on_train_end()",
    ]
    with tf_messages() as messages:
        for number, cell in enumerate(cells):  # As IPython runs each cell.
            exec(compile(cell, f"<cell {number}>", "exec"), namespace)
    assert len(stall_warnings(messages)) == 1
    # The hang is before the 9th step's end: it ends the stall.
    assert [step for step, _ in scalars_of(tmp_path)["stall_secs"]] == [9]


def test_a_watchdog_thread_that_cannot_start_is_one_warning(tmp_path, monkeypatch):
    real_start = threading.Thread.start

    def start(thread):
        if thread.name == THREAD_NAME:
            raise RuntimeError("can't start new thread")
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    counter = keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(tmp_path),
                                            stall_secs=0.3)
    model = make_model()
    with tf_messages() as messages:
        for _ in range(2):
            model.fit(X, Y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
    failures = [m for level, m in messages
                if level == logging.WARNING and "could not start" in m]
    assert len(failures) == 1 and "training goes on without it" in failures[0]
    assert [step for step, _ in scalars_of(tmp_path)["global_step/sec"]] == [6, 16]
