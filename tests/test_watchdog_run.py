"""The watchdog belongs to its run, whatever frames run the steps.

Real time where the point is the watchdog's thread: a 1.6 s hang over a
0.8 s threshold (2x both ways). Each setup must warn once, write
`stall_secs` once, and book the hang as the ledger's stall, never as step
time: a subclass's hook calling `super()`, a custom loop's `step_done()`
in a helper function, a loop body in a generator, `fit` in a thread, and
a hand-driven loop across notebook cells (IPython's real shell).
"""

import logging
import sys
import threading
import time

import pytest
from conftest import FakeClock, counter_on

import keras_stepcounter
from keras_stepcounter.core.watchdog import THREAD_NAME, fit_frame
from keras_stepcounter.tools.events import read_scalars

HANG_SECS, STALL_SECS = 1.6, 0.8


def _warnings(tf_log):
    return [m for level, m in tf_log.messages
            if level == logging.WARNING and "no training step has ended" in m]


def _watchdog_threads():
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def _assert_one_hang_booked(log_dir, tf_log, hung_function):
    [warning] = _warnings(tf_log)
    assert hung_function in warning
    scalars = read_scalars(str(log_dir))
    [stall] = scalars["stall_secs"]
    assert HANG_SECS <= stall.value <= 2 * HANG_SECS
    [ledger_stall] = scalars["goodput/stall_secs"]
    assert ledger_stall.value == pytest.approx(stall.value, abs=1e-6)
    [step_secs] = scalars["goodput/step_secs"]
    assert step_secs.value < HANG_SECS  # The hang is not step time.
    assert _watchdog_threads() == []


def hang_in_a_callback():
    time.sleep(HANG_SECS)


@pytest.fixture
def hang_callback(keras):
    class Hang(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 15:
                hang_in_a_callback()

    return Hang


def test_a_subclass_overriding_the_batch_hook_is_watched(
    make_model, tiny_data, tmp_path, tf_log, hang_callback
):
    class MyCounter(keras_stepcounter.StepCounter):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)

    counter = MyCounter(every_n_steps=10, output_dir=str(tmp_path),
                        stall_secs=STALL_SECS, goodput=True)
    x, y = tiny_data
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0,
                     callbacks=[counter, hang_callback()])
    _assert_one_hang_booked(tmp_path, tf_log, "hang_in_a_callback")


def test_fit_in_a_thread_is_watched(make_model, tiny_data, tmp_path, tf_log, hang_callback):
    counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(tmp_path),
                                            stall_secs=STALL_SECS, goodput=True)
    x, y = tiny_data
    model = make_model()
    trainer = threading.Thread(target=lambda: model.fit(
        x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter, hang_callback()]))
    trainer.start()
    trainer.join()
    _assert_one_hang_booked(tmp_path, tf_log, "hang_in_a_callback")


def _custom_loop_counter(log_dir):
    return keras_stepcounter.StepCounter(every_n_steps=10, output_dir=str(log_dir),
                                         stall_secs=STALL_SECS, goodput=True)


def hang_in_a_helper():
    time.sleep(HANG_SECS)


def test_step_done_from_a_helper_function_is_watched(tmp_path, tf_log):
    counter = _custom_loop_counter(tmp_path)
    state = {"step": 0}

    def train_one(i):
        time.sleep(0.005)
        if i == 15:
            hang_in_a_helper()
        state["step"] += 1
        counter.step_done()

    with counter.track(lambda: state["step"]):
        for i in range(30):
            train_one(i)
    _assert_one_hang_booked(tmp_path, tf_log, "hang_in_a_helper")


def hang_while_the_generator_waits():
    time.sleep(HANG_SECS)


def test_a_loop_body_in_a_generator_is_watched(tmp_path, tf_log):
    counter = _custom_loop_counter(tmp_path)
    state = {"step": 0}

    def training_steps():
        with counter.track(lambda: state["step"]):
            for i in range(30):
                time.sleep(0.005)
                state["step"] += 1
                counter.step_done()
                yield i

    for i in training_steps():  # The generator's frame leaves the stack at each yield.
        if i == 15:
            hang_while_the_generator_waits()
    _assert_one_hang_booked(tmp_path, tf_log, "hang_while_the_generator_waits")


def test_fit_frame_is_found_in_a_real_fit(make_model, tiny_data, keras):
    # The watchdog's sign that a fit raised: Keras's `fit` frame. Fails if
    # Keras renames or moves `fit` out of its modules.
    found = []

    class Look(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            found.append(fit_frame(sys._getframe()))

    x, y = tiny_data
    make_model().fit(x[:8], y[:8], batch_size=4, verbose=0, callbacks=[Look()])
    [frame] = found
    assert frame is not None and frame.f_code.co_name == "fit"
    assert frame.f_globals["__name__"].startswith(("keras.", "tf_keras."))


def test_a_fit_that_raised_gets_its_ledger_at_close_ending_at_its_last_step(
    make_model, tiny_data, tmp_path, keras
):
    clock = FakeClock()
    counter = counter_on(clock, every_n_steps=10, output_dir=str(tmp_path), goodput=True)

    class Fail(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(0.25)
            if batch == 11:
                raise RuntimeError("boom")

    class Tick(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            clock.advance(0.25)

    x, y = tiny_data
    with pytest.raises(RuntimeError, match="boom"):
        make_model().fit(x, y, batch_size=4, verbose=0, callbacks=[Tick(), counter, Fail()])
    clock.advance(1000.0)  # The interpreter idles: not in the fit's ledger.
    counter.close()
    scalars = read_scalars(str(tmp_path))
    [total] = scalars["goodput/total_secs"]
    # 12 batch ends at 0.5 s apart (the counter's is 0.25 s after a begin);
    # the failing batch's end is the last step end the counter saw.
    assert total.step == 11  # The last step read (at the record).
    assert total.value == 12 * 0.5 - 0.25
    assert scalars["goodput/step_secs"][0].value == 11 * 0.5
    assert _watchdog_threads() == []


def test_a_run_across_notebook_cells_is_paused_between_cells(tmp_path, tf_log):
    from IPython.core.interactiveshell import InteractiveShell

    clock = FakeClock()
    shell = InteractiveShell.instance()
    try:
        state = {"step": 0}
        shell.user_ns.update(
            counter=counter_on(clock, every_n_steps=5, output_dir=str(tmp_path),
                               stall_secs=1.0, goodput=True,
                               step_source=lambda: state["step"]),
            clock=clock, state=state,
        )
        shell.run_cell(  # A loop driven by hand (the Keras guide's CallbackList way).
            "counter.on_train_begin()\n"
            "for _ in range(8):\n"
            "    counter.on_train_batch_begin(0)\n"
            "    clock.advance(0.25); state['step'] += 1\n"
            "    counter.on_train_batch_end(0)\n"
        ).raise_error()
        clock.advance(120.0)  # A person reads the output: no cell runs.
        time.sleep(0.3)  # The watchdog's thread looks meanwhile (0.1 s wakes).
        shell.run_cell(
            "for _ in range(8):\n"
            "    counter.on_train_batch_begin(0)\n"
            "    clock.advance(0.25); state['step'] += 1\n"
            "    counter.on_train_batch_end(0)\n"
            "counter.on_train_end()\n"
        ).raise_error()
    finally:
        InteractiveShell.clear_instance()
    scalars = read_scalars(str(tmp_path))
    assert "stall_secs" not in scalars and _warnings(tf_log) == []
    assert scalars["goodput/epoch_boundary_secs"][0].value == 120.0
    assert scalars["goodput/stall_secs"][0].value == 0.0
    assert scalars["goodput/step_secs"][0].value == 15 * 0.25
    assert [r.value for r in scalars["global_step/sec"]] == [4.0, 4.0, 4.0]
