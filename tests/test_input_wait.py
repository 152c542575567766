"""InputWaitMeter: the input wait inside `fit`.

The logic (spans, clipping, attach/detach, the window schedule) runs on a
fake clock with fake models; the TensorFlow path runs real fits on real
slow inputs in this process (Keras 3 on TensorFlow). JAX and tf_keras run
in subprocesses: test_input_wait_flavours.py.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import tempfile
import time
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
import pytest

from keras_stepcounter import input_wait
from keras_stepcounter.input_wait import InputWaitMeter, InputWaits


# -- fakes ------------------------------------------------------------------


class FakeJaxModel:
    """A model whose train_function(state, iterator) calls next() as Keras
    3.7+ on JAX does; each batch takes `wait` fake seconds to arrive and the
    step `step` more."""

    def __init__(self, clock: Any, wait: float, step: float) -> None:
        self.clock, self.wait, self.step = clock, wait, step
        self.train_function = self._train_function
        self.seen: List[Any] = []

    def _train_function(self, state: Any, iterator: Any) -> Tuple[Any, Any]:
        # Keras 3.5 and 3.6 pass the batches themselves.
        batch = next(iterator) if hasattr(iterator, "__next__") else iterator[0]
        self.seen.append(batch)
        self.clock.advance(self.step)
        return {"loss": 0.0}, state

    def batches(self, count: int) -> Iterator[int]:
        for index in range(count):
            self.clock.advance(self.wait)
            yield index

    def fit(self, batches: int) -> None:
        iterator = self.batches(batches)
        for _ in range(batches):
            self.train_function("state", iterator)


@pytest.fixture
def as_jax(monkeypatch):
    monkeypatch.setattr(input_wait, "_backend_and_version", lambda model: ("jax", (3, 15)))


@pytest.fixture
def meter_log():
    logger = logging.getLogger("tensorflow")
    messages: List[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Capture(level=logging.WARNING)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


# -- InputWaits ---------------------------------------------------------------


def test_input_waits_adds_up_its_spans():
    waits = InputWaits(measured=((0.0, 1.0), (2.0, 3.0)), waits=((0.5, 0.75), (2.0, 2.25)))
    assert waits.measured_secs == 2.0
    assert waits.wait_secs == 0.5
    assert waits.share == 0.25
    assert InputWaits(measured=(), waits=()).share == 0.0


# -- the JAX path (logic, fake clock) -------------------------------------------


def test_jax_path_sees_each_wait_and_passes_batches_through(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.004, step=0.001)
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    assert meter.attach(model) is True
    model.fit(5)
    end = fake_clock()
    meter.detach()
    assert model.seen == [0, 1, 2, 3, 4]
    waits = meter.waits_between(start, end)
    assert waits is not None
    assert waits.measured == ((start, end),)
    assert [round(b - a, 9) for a, b in waits.waits] == [0.004] * 5
    assert waits.share == pytest.approx(0.8)


def test_jax_path_times_each_epochs_iterator_with_one_proxy(fake_clock, as_jax, monkeypatch):
    """Keras passes one iterator an epoch: each new one gets one proxy,
    which the wrapper reuses for that iterator's calls."""
    made = []
    original_init = input_wait._TimedIterator.__init__

    def counting_init(self, *args, **kwargs):
        made.append(args[0])
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(input_wait._TimedIterator, "__init__", counting_init)
    model = FakeJaxModel(fake_clock, wait=0.004, step=0.001)
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    meter.attach(model)
    model.fit(3)  # epoch 1: its own iterator
    model.fit(2)  # epoch 2: a new one
    waits = meter.waits_between(start, fake_clock())
    assert len(made) == 2 and made[0] is not made[1]
    assert model.seen == [0, 1, 2, 0, 1]
    assert waits is not None and len(waits.waits) == 5
    assert waits.share == pytest.approx(0.8)


def test_waits_are_clipped_to_the_interval(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.004, step=0.001)
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    meter.attach(model)
    model.fit(2)  # waits [0, 0.004] and [0.005, 0.009] after start
    waits = meter.waits_between(start + 0.002, start + 0.006)
    assert waits is not None
    assert waits.measured == ((start + 0.002, start + 0.006),)
    assert [(round(a - start, 9), round(b - start, 9)) for a, b in waits.waits] == [
        (0.002, 0.004),
        (0.005, 0.006),
    ]


def test_measured_and_nothing_waited_is_an_empty_list_not_none(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.001)
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    meter.attach(model)
    model.fit(3)
    waits = meter.waits_between(start, fake_clock())
    assert waits is not None and waits.waits == () and waits.share == 0.0


def test_time_outside_the_attached_fit_is_not_measured(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.004, step=0.001)
    meter = InputWaitMeter(fake_clock)
    assert meter.waits_between(0.0, 2000.0) is None  # never attached
    fake_clock.advance(1.0)
    attached_at = fake_clock()
    meter.attach(model)
    model.fit(2)
    meter.detach()
    detached_at = fake_clock()
    fake_clock.advance(1.0)
    assert meter.waits_between(attached_at - 1.0, attached_at) is None
    assert meter.waits_between(detached_at, fake_clock()) is None
    waits = meter.waits_between(attached_at - 1.0, fake_clock())
    assert waits is not None and waits.measured == ((attached_at, detached_at),)


def test_discard_before_forgets_old_spans(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.004, step=0.001)
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    meter.attach(model)
    model.fit(4)
    meter.discard_before(start + 0.010)  # the first two batches' waits ended by then
    assert len(meter._waits) == 2
    waits = meter.waits_between(start, fake_clock())
    assert waits is not None and len(waits.waits) == 2


def test_detach_restores_train_function_and_is_idempotent(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.0)
    original = model.train_function
    meter = InputWaitMeter(fake_clock)
    meter.detach()  # never attached: nothing to do
    meter.attach(model)
    assert model.train_function is not original
    meter.detach()
    assert model.train_function is original
    meter.detach()
    assert model.train_function is original


def test_a_left_over_wrapper_is_not_wrapped_again(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.0)
    original = model.train_function
    InputWaitMeter(fake_clock).attach(model)  # a fit that never detached
    meter = InputWaitMeter(fake_clock)
    meter.attach(model)
    assert model.train_function.original is original
    meter.detach()
    assert model.train_function is original


def test_detach_leaves_a_train_function_set_since(fake_clock, as_jax):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.0)
    meter = InputWaitMeter(fake_clock)
    meter.attach(model)

    def replacement(state, iterator):
        return {}, state

    model.train_function = replacement  # make_train_function(force=True)
    meter.detach()
    assert model.train_function is replacement


def test_train_function_without_an_iterator_stops_measuring_once(fake_clock, as_jax, meter_log):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.001)
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    meter.attach(model)
    fake_clock.advance(1.0)
    stopped_at = fake_clock()
    model.train_function("state", [np.zeros(2)])  # Keras 3.5/3.6: the batch itself
    model.train_function("state", [np.zeros(2)])
    fake_clock.advance(1.0)
    assert meter.waits_between(stopped_at, fake_clock()) is None
    waits = meter.waits_between(start, fake_clock())
    assert waits is not None and waits.measured == ((start, stopped_at),)
    assert len(meter_log) == 1 and "without an iterator" in meter_log[0]


# -- backends that cannot be measured -----------------------------------------


@pytest.mark.parametrize(
    "backend, version, reason",
    [
        ("torch", (3, 15), "on the torch backend the meter needs the callback's batch hooks"),
        ("numpy", (3, 15), "the numpy backend is not supported"),
        ("jax", (3, 6), "Keras 3.6 on JAX fetches each batch outside train_function"),
    ],
)
def test_unmeasurable_backend_warns_once_and_measures_nothing(
    fake_clock, monkeypatch, meter_log, backend, version, reason
):
    monkeypatch.setattr(input_wait, "_backend_and_version", lambda model: (backend, version))
    model = FakeJaxModel(fake_clock, wait=0.004, step=0.001)
    original = model.train_function
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    assert meter.attach(model) is False
    assert meter.attach(model) is False
    assert model.train_function is original
    model.fit(2)
    assert meter.waits_between(start, fake_clock()) is None
    assert len(meter_log) == 1 and reason in meter_log[0]
    assert "the input wait is not measured" in meter_log[0]


# -- the torch path (logic, fake clock) -----------------------------------------


class CountingCallback:
    """A callback whose batch end is an instance attribute, as the counter's."""

    def __init__(self, clock: Any, hook_secs: float = 0.0) -> None:
        self.clock = clock
        self.hook_secs = hook_secs
        self.calls: List[str] = []
        self.on_train_batch_end = self._end

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(f"begin {batch}")
        self.clock.advance(self.hook_secs)

    def _end(self, batch=None, logs=None):
        self.calls.append(f"end {batch}")
        self.clock.advance(self.hook_secs)

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch end {epoch}")


def torch_fit(clock, callback, epochs, batches, fetch_secs, step_secs, epoch_end_secs=0.0):
    """Keras 3's torch loop: fetch, batch begin, step, batch end; then the
    epoch's end (validation) and the next epoch's first fetch."""
    for epoch in range(epochs):
        for batch in range(batches):
            clock.advance(fetch_secs)  # next(epoch_iterator)
            callback.on_train_batch_begin(batch, logs=None)
            clock.advance(step_secs)  # train_function(data)
            callback.on_train_batch_end(batch, logs={})
        clock.advance(epoch_end_secs)
        callback.on_epoch_end(epoch, {})


@pytest.fixture
def as_torch(monkeypatch):
    monkeypatch.setattr(input_wait, "_backend_and_version", lambda model: ("torch", (3, 15)))


def test_torch_path_times_the_fetch_between_the_callbacks_hooks(fake_clock, as_torch):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.0)
    original = model.train_function
    callback = CountingCallback(fake_clock, hook_secs=0.0001)
    meter = InputWaitMeter(fake_clock)
    start = fake_clock()
    assert meter.attach(model, callback) is True
    assert model.train_function is original  # torch: the hooks, not train_function
    torch_fit(fake_clock, callback, epochs=2, batches=3, fetch_secs=0.004, step_secs=0.0008,
              epoch_end_secs=0.5)
    end = fake_clock()
    meter.detach()
    # The hooks still ran, in order, and are the callback's own again.
    assert callback.calls[:3] == ["begin 0", "end 0", "begin 1"]
    assert callback.on_train_batch_end == callback._end
    assert "on_train_batch_begin" not in vars(callback) and "on_epoch_end" not in vars(callback)
    waits = meter.waits_between(start, end)
    assert waits is not None and waits.measured == ((start, end),)
    # Two gaps an epoch (each epoch's first fetch and its end are no step's
    # wait), each the fetch, without the callback's own hook time.
    assert [round(b - a, 9) for a, b in waits.waits] == [0.004] * 4


def test_torch_path_stops_at_detach(fake_clock, as_torch):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.0)
    callback = CountingCallback(fake_clock)
    meter = InputWaitMeter(fake_clock)
    meter.attach(model, callback)
    torch_fit(fake_clock, callback, epochs=1, batches=2, fetch_secs=0.004, step_secs=0.001)
    meter.detach()
    after = fake_clock()
    torch_fit(fake_clock, callback, epochs=1, batches=3, fetch_secs=0.004, step_secs=0.001)
    assert meter.waits_between(after, fake_clock()) is None
    meter.detach()  # idempotent


def test_torch_detach_leaves_a_hook_set_since(fake_clock, as_torch):
    model = FakeJaxModel(fake_clock, wait=0.0, step=0.0)
    callback = CountingCallback(fake_clock)
    meter = InputWaitMeter(fake_clock)
    meter.attach(model, callback)

    def theirs(batch, logs=None):
        return None

    callback.on_train_batch_begin = theirs  # Set by someone else mid-fit.
    meter.detach()
    assert callback.on_train_batch_begin is theirs
    assert callback.on_train_batch_end == callback._end


def test_a_model_without_train_function_cannot_be_measured(fake_clock, meter_log):
    class Bare:
        train_function = None

    assert InputWaitMeter(fake_clock).attach(Bare()) is False
    assert "no train_function" in meter_log[0]


# -- bad arguments -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"window_calls": 0}, "window_calls"),
        ({"window_calls": 2.5}, "window_calls"),
        ({"window_calls": True}, "window_calls"),
        ({"first_window_call": -1}, "first_window_call"),
        ({"cost_budget": 0}, "cost_budget"),
        ({"cost_budget": 1.5}, "cost_budget"),
        ({"cost_budget": float("nan")}, "cost_budget"),
        ({"cost_budget": "1%"}, "cost_budget"),
    ],
)
def test_bad_arguments_are_value_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        InputWaitMeter(time.perf_counter, **kwargs)


def test_a_clock_that_is_not_callable_is_a_type_error():
    with pytest.raises(TypeError, match="clock"):
        InputWaitMeter(1.0)  # type: ignore[arg-type]


# -- the window schedule (TensorFlow path, fake windows) -----------------------


class FakeWindow:
    """Stands in for a profiler session: one wait of `wait` seconds a call."""

    opened: List["FakeWindow"] = []
    busy = False  # another profiler session runs
    wait = 0.004
    cost = 0.05

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.began = clock()
        self.calls = 0
        self.abandoned = self.closed = False

    @classmethod
    def open(cls, clock: Any) -> Optional["FakeWindow"]:
        if cls.busy:
            return None
        window = cls(clock)
        cls.opened.append(window)
        return window

    def trace(self, name: str) -> Any:  # tf.profiler.experimental.Trace
        assert name == input_wait.CALL_EVENT
        self.calls += 1
        return contextlib.nullcontext()

    def close(self, call_spans: Any) -> Any:
        self.closed = True
        assert len(call_spans) == self.calls  # each call had its event
        waits = [(began, min(began + self.wait, ended)) for began, ended in call_spans if self.wait]
        return (self.began, self.clock()), waits, self.cost

    def abandon(self) -> None:
        self.abandoned = True


class FakeTfModel:
    def __init__(self, clock: Any, step: float = 0.005, step_in_window: Optional[float] = None) -> None:
        self.clock, self.step = clock, step
        self.step_in_window = step if step_in_window is None else step_in_window
        self.train_function = self._train_function

    def _train_function(self, iterator: Any) -> Any:
        windowed = FakeWindow.opened and not FakeWindow.opened[-1].closed
        self.clock.advance(self.step_in_window if windowed else self.step)
        return {}

    def fit(self, calls: int) -> None:
        for _ in range(calls):
            self.train_function(None)


@pytest.fixture
def fake_windows(monkeypatch):
    monkeypatch.setattr(input_wait, "_backend_and_version", lambda model: ("tensorflow", (3, 15)))
    monkeypatch.setattr(input_wait, "_Window", FakeWindow)
    FakeWindow.opened, FakeWindow.busy, FakeWindow.wait, FakeWindow.cost = [], False, 0.004, 0.05
    return FakeWindow


def test_first_window_opens_at_its_call_and_spans_window_calls(fake_clock, fake_windows):
    model = FakeTfModel(fake_clock)
    meter = InputWaitMeter(fake_clock, window_calls=4, first_window_call=3)
    start = fake_clock()
    meter.attach(model)
    model.fit(10)
    assert len(fake_windows.opened) == 1
    window = fake_windows.opened[0]
    assert window.began == pytest.approx(start + 2 * 0.005)  # before call 3
    waits = meter.waits_between(start, fake_clock())
    assert waits is not None
    assert waits.measured == ((window.began, pytest.approx(window.began + 4 * 0.005)),)
    assert len(waits.waits) == 4 and waits.share == pytest.approx(0.8)
    # Calls before and after the window: not measured.
    assert meter.waits_between(start, window.began) is None
    assert meter.waits_between(window.began + 0.0201, fake_clock()) is None


def test_next_window_waits_cost_over_budget(fake_clock, fake_windows):
    model = FakeTfModel(fake_clock, step=0.01)
    meter = InputWaitMeter(fake_clock, window_calls=5, first_window_call=3, cost_budget=0.01)
    meter.attach(model)
    model.fit(7)  # call 2 is the usual call; the window: calls 3-7, cost 0.05 s
    closed_at = fake_clock()
    model.fit(499)  # 4.99 s later: not due yet (0.05 / 0.01 = 5 s)
    assert len(fake_windows.opened) == 1
    model.fit(3)  # due at closed_at + 5 s: opens before the first call after it
    assert len(fake_windows.opened) == 2
    assert closed_at + 5.0 - 1e-6 <= fake_windows.opened[1].began <= closed_at + 5.01 + 1e-6


def test_the_profilers_slowdown_counts_in_the_windows_cost(fake_clock, fake_windows):
    model = FakeTfModel(fake_clock, step=0.01, step_in_window=0.02)
    meter = InputWaitMeter(fake_clock, window_calls=5, first_window_call=3, cost_budget=0.01)
    meter.attach(model)
    model.fit(7)  # cost: 0.05 s own + 5 calls x 0.01 s slower = 0.1 s
    closed_at = fake_clock()
    model.fit(999)  # 9.99 s
    assert len(fake_windows.opened) == 1
    model.fit(3)
    assert len(fake_windows.opened) == 2
    assert closed_at + 10.0 - 1e-6 <= fake_windows.opened[1].began <= closed_at + 10.01 + 1e-6


def test_no_sampling_opens_windows_back_to_back(fake_clock, fake_windows):
    model = FakeTfModel(fake_clock)
    meter = InputWaitMeter(fake_clock, window_calls=3, first_window_call=1, cost_budget=None)
    start = fake_clock()
    meter.attach(model)
    model.fit(9)
    assert len(fake_windows.opened) == 3
    waits = meter.waits_between(start, fake_clock())
    assert waits is not None and waits.measured_secs == pytest.approx(9 * 0.005)


def test_no_window_while_another_session_runs_then_a_retry(fake_clock, fake_windows):
    model = FakeTfModel(fake_clock, step=0.5)
    meter = InputWaitMeter(fake_clock, window_calls=2, first_window_call=1)
    meter.attach(model)
    fake_windows.busy = True
    model.fit(4)  # 2 s: the retry is 10 s away
    assert fake_windows.opened == []
    fake_windows.busy = False
    model.fit(14)  # calls up to 9 s after the failed start
    assert fake_windows.opened == []
    model.fit(3)  # the call at 10 s opens one
    assert len(fake_windows.opened) == 1
    assert fake_windows.opened[0].began == pytest.approx(1000.0 + 10.0)


def test_a_window_with_no_input_op_stops_measuring(fake_clock, fake_windows, meter_log):
    fake_windows.wait = 0.0  # no IteratorGetNext event in the profile
    model = FakeTfModel(fake_clock)
    meter = InputWaitMeter(fake_clock, window_calls=2, first_window_call=1, cost_budget=None)
    start = fake_clock()
    meter.attach(model)
    model.fit(10)
    assert len(fake_windows.opened) == 1
    assert meter.waits_between(start, fake_clock()) is None
    assert len(meter_log) == 1 and "IteratorGetNextOp::DoCompute" in meter_log[0]


def test_detach_abandons_an_open_window(fake_clock, fake_windows):
    model = FakeTfModel(fake_clock)
    meter = InputWaitMeter(fake_clock, window_calls=10, first_window_call=1)
    meter.attach(model)
    model.fit(3)
    meter.detach()
    assert fake_windows.opened[0].abandoned


# -- TensorFlow for real (Keras 3 on TensorFlow in this process) -----------------


def _slow_pydataset(keras: Any, steps: int, sleep: float) -> Any:
    rng = np.random.default_rng(0)
    x = rng.random((4, 8), dtype=np.float32)
    y = rng.random((4, 1), dtype=np.float32)

    class Slow(keras.utils.PyDataset):
        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> Any:
            time.sleep(sleep)
            return x, y

    return Slow()


def _fit_measured(keras: Any, model: Any, meter: InputWaitMeter, **fit_kwargs: Any) -> Any:
    class Attach(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.attached = meter.attach(self.model)
            self.began = meter.clock()

        def on_train_end(self, logs: Any = None) -> None:
            self.ended = meter.clock()
            meter.detach()

    callback = Attach()
    model.fit(**fit_kwargs, epochs=1, verbose=0, callbacks=[callback])
    return callback, meter.waits_between(callback.began, callback.ended)


def _our_temp_dirs() -> List[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), "keras_stepcounter_input_*"))


def test_tensorflow_sees_a_slow_pydataset_and_not_in_memory_arrays(
    keras, make_model, tiny_data, tmp_path, monkeypatch
):
    # The windows' directories go to a temporary directory of this test's
    # own, so another process's (a parallel test run) cannot count as ours.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = set(_our_temp_dirs())
    model = make_model()
    original = model.make_train_function() or model.train_function
    # A 20 ms sleep on a ~1 ms step: truth about 0.95, less the step's own
    # time on a loaded machine (the input thread sleeps beside the step; at
    # 5 ms load took it from 0.8 to 0.6); asserted with 2x margins.
    meter = InputWaitMeter(time.perf_counter, window_calls=20, first_window_call=5)
    callback, slow = _fit_measured(keras, model, meter, x=_slow_pydataset(keras, 40, 0.02))
    assert callback.attached
    assert slow is not None and len(slow.waits) == 20
    assert 0.4 <= slow.share <= 1.0
    assert model.train_function is original
    x, y = tiny_data
    meter = InputWaitMeter(time.perf_counter, window_calls=20, first_window_call=5)
    _, fast = _fit_measured(keras, model, meter, x=x, y=y, batch_size=4)
    assert fast is not None and len(fast.waits) == 20
    assert fast.share < 0.4
    assert set(_our_temp_dirs()) == before  # each window's directory is removed


def test_tensorflow_opens_no_window_inside_another_profiler_session(keras, make_model, tiny_data, tmp_path):
    import tensorflow as tf

    x, y = tiny_data
    tf.profiler.experimental.start(str(tmp_path))  # the user's session
    try:
        meter = InputWaitMeter(time.perf_counter, window_calls=5, first_window_call=2)
        _, waits = _fit_measured(keras, make_model(), meter, x=x, y=y, batch_size=4)
        assert waits is None
    finally:
        tf.profiler.experimental.stop()  # raises if the meter had stopped it
    assert glob.glob(str(tmp_path / "plugins" / "profile" / "*" / "*.xplane.pb"))


def test_tensorflow_fit_that_raises_mid_window_leaves_no_session(keras, make_model, tiny_data, tmp_path):
    import tensorflow as tf

    x, y = tiny_data
    model = make_model()
    meter = InputWaitMeter(time.perf_counter, window_calls=50, first_window_call=2)

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 5:
                raise RuntimeError("boom")

    class Attach(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            meter.attach(self.model)

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Attach(), Boom()])
    assert meter._window is not None  # the window was open when the fit raised
    meter.detach()  # what the counter does when a fit raised
    assert not type(model.train_function).__name__.startswith("_TrainFunction")
    tf.profiler.experimental.start(str(tmp_path))  # no session is left running
    tf.profiler.experimental.stop(save=False)


def test_xplane_protos_and_both_events_are_where_the_meter_reads_them(tmp_path):
    """Fails when TensorFlow moves its XPlane protos, renames the op event,
    or stops recording a `Trace` (the call's event) in the profile."""
    import tensorflow as tf

    assert hasattr(input_wait._xplane_pb2(), "XSpace")
    dataset = tf.data.Dataset.range(100)
    iterator = iter(dataset)

    @tf.function
    def step(iterator):
        return iterator.get_next() + 1

    step(iterator)  # trace outside the profile
    tf.profiler.experimental.start(str(tmp_path))
    call_spans = []
    for _ in range(7):
        began = time.perf_counter()
        with tf.profiler.experimental.Trace(input_wait.CALL_EVENT):
            step(iterator)
        call_spans.append((began, time.perf_counter()))
    step(iterator)  # a wait in no call's event
    tf.profiler.experimental.stop()
    events = input_wait.read_events(str(tmp_path), (input_wait.CALL_EVENT, input_wait.WAIT_EVENT))
    assert events is not None
    calls, waits = events[input_wait.CALL_EVENT], events[input_wait.WAIT_EVENT]
    assert len(calls) == 7 and len(waits) == 8
    # Each call's wait inside its event, in the profiler's one clock.
    for (start, end), (wait_start, wait_end) in zip(calls, waits):
        assert start <= wait_start < wait_end <= end
    placed = input_wait.place_waits(calls, waits, call_spans)
    assert len(placed) == 7
    assert all(began <= start < end <= ended for (began, ended), (start, end) in zip(call_spans, placed))
    assert input_wait.read_events(str(tmp_path / "nothing"), (input_wait.WAIT_EVENT,)) is None


def test_tensorflow_counts_no_validation_wait_inside_a_window(keras, make_model, tiny_data):
    """A window across an epoch's end holds the evaluation's own iterator
    reads (a slow validation input here): they are not training waits."""
    x, y = tiny_data
    meter = InputWaitMeter(time.perf_counter, window_calls=15, first_window_call=25)
    model = make_model()

    class Attach(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            meter.attach(self.model)
            self.began = meter.clock()

        def on_train_end(self, logs: Any = None) -> None:
            self.ended = meter.clock()
            meter.detach()

    attach = Attach()
    model.fit(
        x[:40], y[:40], batch_size=4, epochs=5, verbose=0, callbacks=[attach],  # 10 steps an epoch
        validation_data=_slow_pydataset(keras, 5, 0.02),  # 100 ms an evaluation
    )
    waits = meter.waits_between(attach.began, attach.ended)
    assert waits is not None
    assert len(waits.waits) == 15  # calls 25-39: training batches only
    # The window spans one evaluation (100 ms of slow validation input);
    # the training input is in memory.
    assert waits.measured_secs > 0.1
    assert waits.wait_secs < 0.05


def _space(line_ns: int, start_stat_ns: Optional[int]) -> Any:
    """An XSpace as the profiler writes one: a call event at 1 µs into the
    Python thread's line (whose timestamp is 100 ns later than the
    iterator's), a wait (2 µs at 5 µs into the iterator's line) and
    another event there."""
    xplane_pb2 = input_wait._xplane_pb2()
    space = xplane_pb2.XSpace()
    host = space.planes.add(id=1, name="/host:CPU")
    host.event_metadata[1].id, host.event_metadata[1].name = 1, input_wait.WAIT_EVENT
    host.event_metadata[2].id, host.event_metadata[2].name = 2, "Iterator::Root"
    host.event_metadata[3].id, host.event_metadata[3].name = 3, input_wait.CALL_EVENT
    line = host.lines.add(id=7, name="tf_data_iterator_get_next", timestamp_ns=line_ns)
    line.events.add(metadata_id=1, offset_ps=5_000_000, duration_ps=2_000_000)
    line.events.add(metadata_id=2, offset_ps=5_000_000, duration_ps=1_000_000)
    python = host.lines.add(id=8, name="python3", timestamp_ns=line_ns + 100)
    python.events.add(metadata_id=3, offset_ps=1_000_000, duration_ps=9_000_000)
    if start_stat_ns is not None:
        env = space.planes.add(id=2, name="Task Environment")
        env.stat_metadata[1].id, env.stat_metadata[1].name = 1, "profile_start_time"
        env.stats.add(metadata_id=1, uint64_value=start_stat_ns)
    return space


@pytest.mark.parametrize(
    "line_ns, start_stat_ns, expected_wait_ns",
    [
        (300, 1_700_000_000_000_000_000, 1_700_000_000_000_005_300),  # TF 2.21: relative + stat
        (1_700_000_000_000_000_300, None, 1_700_000_000_000_005_300),  # absolute times
        (300, None, 5_300),  # TF 2.16: relative, no stat: relative to the start
    ],
)
def test_every_line_of_a_profile_is_read_in_one_base(line_ns, start_stat_ns, expected_wait_ns):
    events = {input_wait.WAIT_EVENT: [], input_wait.CALL_EVENT: []}
    input_wait._add_space_events(_space(line_ns, start_stat_ns), events)
    assert events[input_wait.WAIT_EVENT] == [(expected_wait_ns, expected_wait_ns + 2_000)]
    call_ns = expected_wait_ns - 5_000 + 100 + 1_000  # the other line, 100 ns later
    assert events[input_wait.CALL_EVENT] == [(call_ns, call_ns + 9_000)]


def test_a_wait_is_placed_at_its_offset_from_its_calls_start():
    """The profiler's clock is never mapped onto the counter's as a whole:
    here it runs 5 ms behind, and a call is placed by its own start."""
    ms = 1_000_000
    calls_ns = [(10 * ms, 11 * ms), (12 * ms, 13 * ms)]
    call_spans = [(100.015, 100.016), (100.017, 100.018)]
    waits_ns = [
        (9 * ms, 9 * ms + 500),  # before the first call: no call's wait
        (10 * ms + 200_000, 10 * ms + 300_000),  # the first call's
        (11 * ms + 100_000, 11 * ms + 900_000),  # between the calls (an evaluation's)
        (12 * ms + 900_000, 13 * ms + 500_000),  # past its call's end: clipped
        (14 * ms, 15 * ms),  # after the last call
    ]
    placed = input_wait.place_waits(calls_ns, waits_ns, call_spans)
    assert placed == [pytest.approx((100.0152, 100.0153)), pytest.approx((100.0179, 100.018))]
    with pytest.raises(ValueError, match="the profile holds 1 of the window's 2 train_function calls"):
        input_wait.place_waits(calls_ns[:1], waits_ns, call_spans)


# -- a fit that raised leaves no wrapper behind ---------------------------------


class RaisingJaxModel(FakeJaxModel):
    """`fit` (a frame named so, as Keras's) attaches the meter like the
    counter's `on_train_begin`, and may raise mid-epoch."""

    def fit(self, batches: int, attach: Any = None, raise_at: Optional[int] = None) -> None:
        if attach is not None:
            attach(self)
        iterator = self.batches(batches)
        for index in range(batches):
            if index == raise_at:
                raise RuntimeError("boom")
            self.train_function("state", iterator)


def _nearest_fit_frame(frame: Any) -> Any:
    while frame is not None and frame.f_code.co_name != "fit":
        frame = frame.f_back
    return frame


def test_jax_wrapper_of_a_fit_that_raised_takes_itself_off(fake_clock, as_jax, monkeypatch):
    # Keras calls no on_train_end when fit raises: the wrapper stays on the
    # model until a later fit runs it, which finds the attaching fit gone
    # (at its epoch's first call) and puts the original back.
    monkeypatch.setattr(input_wait, "fit_frame", _nearest_fit_frame)
    model = RaisingJaxModel(fake_clock, wait=0.004, step=0.001)
    meter = InputWaitMeter(fake_clock)
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(5, attach=meter.attach, raise_at=2)
    assert type(model.train_function).__name__ == "_TrainFunctionWrapper"
    later = fake_clock()
    model.fit(4)  # A fit without the counter.
    assert model.train_function == model._train_function
    assert model.seen == [0, 1, 0, 1, 2, 3]
    assert meter.waits_between(later, fake_clock()) is None  # Nothing timed.


def test_tensorflow_wrapper_of_a_fit_that_raised_takes_itself_off(keras, make_model, tiny_data):
    # The same with Keras's own fit (the frame the meter looks for) on
    # TensorFlow: the later fit's first due window finds the fit gone.
    x, y = tiny_data
    model = make_model()
    meter = InputWaitMeter(time.perf_counter, window_calls=5, first_window_call=4)

    class Attach(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            meter.attach(self.model)

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 1:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Attach(), Boom()])
    assert type(model.train_function).__name__ == "_TrainFunctionWrapper"
    later = time.perf_counter()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert type(model.train_function).__name__ != "_TrainFunctionWrapper"
    assert meter.waits_between(later, time.perf_counter()) is None  # No window opened.
