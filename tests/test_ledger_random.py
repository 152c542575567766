"""The ledger against a second-by-second model, driven through the Recorder.

Random runs on a fake clock (1/8 s ticks: every sum is an exact float):
batches of random length, hangs in a step, in the step read and at epoch
ends, slow writes, `paused()` blocks, epoch boundaries with and without
`pause_between_epochs`, and runs that end without `end_run` (a `fit` that
raised, ended by the next run's `begin_run`). A plain model books each
second as the timeline's rule says, from what the test did; every bucket
of every ledger must equal it, none negative.
"""

import random

import pytest

from keras_stepcounter.core.rates import RateTracker
from keras_stepcounter.core.recorder import Recorder
from keras_stepcounter.core.run_source import RunSource
from keras_stepcounter.core.tags import (
    EPOCH_BOUNDARY_TAG,
    OTHER_TAG,
    RECORDER_TAG,
    STALL_TAG,
    STARTUP_TAG,
    STEP_TAG,
    TOTAL_TAG,
)
from keras_stepcounter.core.timer import SecondOrStepTimer
from keras_stepcounter.core.watchdog import StallWatchdog

THRESHOLD = 1.0
BUCKETS = (STARTUP_TAG, STEP_TAG, EPOCH_BOUNDARY_TAG, STALL_TAG, RECORDER_TAG, OTHER_TAG)


class Model:
    """Where each second went, by the rule, from what the test did."""

    def __init__(self, clock, pauses_epochs):
        self.clock, self.pauses_epochs = clock, pauses_epochs
        self.begin = clock()
        self.buckets = dict.fromkeys(BUCKETS, 0.0)
        self.first_done = False
        self.began = False  # Steps began (before: startup, even "paused").
        self.paused = True
        self.carry = 0.0  # Time in steps since the last call ended, not yet booked.
        self.last_end = clock()

    def begin_steps(self):
        if self.paused or not self.began:
            self.last_end = self.clock()
        self.began, self.paused = True, False

    def wait(self, seconds):
        """Time passes outside a batch call and outside the counter's work."""
        self.clock.advance(seconds)
        if not self.began:
            self.buckets[STARTUP_TAG] += seconds
        elif self.paused:
            self.buckets[EPOCH_BOUNDARY_TAG] += seconds
        else:
            self.carry += seconds

    def call(self, seconds):
        """A batch call of `seconds` ends (its read's time is added by the
        read itself, through `wait`)."""
        self.clock.advance(seconds)
        self.carry += seconds

    def call_ended(self):
        length, self.carry = self.carry, 0.0
        if not self.first_done:
            self.buckets[STARTUP_TAG] += length
            self.first_done = True
        else:
            self.buckets[STALL_TAG if length >= THRESHOLD else STEP_TAG] += length
        self.last_end = self.clock()

    def work(self, seconds):
        """The counter writes for `seconds` (left out of the call it is in)."""
        self.clock.advance(seconds)
        if self.paused and self.began:
            self.buckets[EPOCH_BOUNDARY_TAG] += seconds
        else:
            self.buckets[RECORDER_TAG] += seconds
            self.last_end += seconds

    def expected(self, end, tail):
        """The ledger of a run that ends at `end`, `tail` seconds in steps
        after its last call."""
        buckets = dict(self.buckets)
        if self.pauses_epochs or self.paused:
            buckets[EPOCH_BOUNDARY_TAG] += tail
        else:
            buckets[STEP_TAG] += tail
        total = buckets[TOTAL_TAG] = end - self.begin
        if not self.first_done:  # No step ended: all but the work is other.
            for tag in (STARTUP_TAG, STEP_TAG, EPOCH_BOUNDARY_TAG, STALL_TAG):
                buckets[tag] = 0.0
            buckets[OTHER_TAG] = total - buckets[RECORDER_TAG]
        return buckets


class Sink:
    def __init__(self, rng, clock, model_of):
        self.rng, self.clock, self.model_of = rng, clock, model_of
        self.ledgers = []
        self.quiet = False  # Writes after a ledger's end take no time.

    def _work(self):
        if not self.quiet:
            self.model_of().work(self.rng.choice([0.0, 0.0, 0.125, 0.5, 2.0]))

    def write(self, step, scalars):
        if TOTAL_TAG in scalars:
            self.ledgers.append(scalars)
        else:
            self._work()
        return True

    def write_text(self, step, tag, markdown):
        return True

    def begin_run(self, start_step):
        self._work()
        return None

    def reached(self, step):
        self._work()

    def flush(self):
        pass


@pytest.mark.parametrize("pauses_epochs", [True, False])
def test_random_runs_book_every_second_once(fake_clock, monkeypatch, pauses_epochs):
    monkeypatch.setattr(StallWatchdog, "start", lambda *args: None)  # No thread.
    rng = random.Random(7 if pauses_epochs else 8)
    state = {}
    sink = Sink(rng, fake_clock, lambda: state["model"])
    recorder = Recorder(
        RateTracker(SecondOrStepTimer(every_steps=3, clock=fake_clock)), sink, fake_clock,
        step_time_stats=True, stall_secs=THRESHOLD, goodput=True,
        pause_between_epochs=pauses_epochs,
    )
    steps = {"step": rng.randrange(0, 5)}

    def read():
        state["model"].wait(rng.choice([0.0, 0.0, 0.0, 0.125, 1.5]))  # A read can hang.
        return steps["step"]

    checked = 0
    for run in range(300):
        if "model" in state and rng.random() < 0.2:
            # The last run raised: this begin_run ends it at its last step end.
            expected = state["model"].expected(state["model"].last_end, 0.0)
            state["ended_open"] = True
        else:
            expected = None
        ledgers_before = len(sink.ledgers)
        sink.quiet = True
        recorder.begin_run(RunSource(read=read))
        sink.quiet = False
        state["model"] = model = Model(fake_clock, pauses_epochs)
        if expected is not None and sink.ledgers[ledgers_before:]:
            ledger = sink.ledgers[ledgers_before]
            assert {tag: ledger[tag] for tag in expected} == expected
            checked += 1
            ledgers_before += 1
        model.wait(rng.choice([0.0, 0.5]))  # Keras's set-up before the first batch.
        recorder.begin_steps()
        model.begin_steps()
        for _ in range(rng.randrange(1, 25)):
            kind = rng.choice(["batch"] * 6 + ["hang", "epoch", "paused"])
            if kind in ("batch", "hang"):
                model.call(rng.choice([0.125, 0.25, 0.5]) if kind == "batch" else 1.5)
                steps["step"] += 1
                recorder.batch_end()
                model.call_ended()
            elif kind == "epoch":
                model.paused = pauses_epochs
                model.wait(rng.choice([0.0, 0.25, 3.0]))  # Keras, then validation.
                recorder.pause_steps()
                model.wait(rng.choice([0.0, 1.0]))
                recorder.begin_steps()
                model.begin_steps()
            else:
                # A pause runs from the last call's end: what waited since is in it.
                model.buckets[EPOCH_BOUNDARY_TAG if model.began else STARTUP_TAG] += model.carry
                model.carry, model.paused = 0.0, True
                recorder.pause_steps(epoch_end=False)
                model.wait(rng.choice([0.25, 5.0]))
                recorder.begin_steps()
                model.begin_steps()
        if rng.random() < 0.2:
            continue  # Raised: no end_run.
        tail = rng.choice([0.0, 0.375])  # The run's tail.
        fake_clock.advance(tail)
        model.paused = model.paused or pauses_epochs
        sink.quiet = True  # The end's epoch read may hang; writes take no time.
        recorder.end_run()
        sink.quiet = False
        end = fake_clock()
        ledger = sink.ledgers[-1]
        assert {tag: ledger[tag] for tag in (*BUCKETS, TOTAL_TAG)} == model.expected(
            end, model.carry + tail)
        assert all(ledger[tag] >= 0 for tag in BUCKETS)
        state.pop("model")
        checked += 1
    assert checked > 200
