"""StallWatchdog: the check logic on a fake clock, the thread with real time."""

import logging
import math
import threading
import time

import pytest

from keras_stepcounter.core.watchdog import (
    AUTO_MIN_SECS,
    MAX_WAKE_SECS,
    MIN_WAKE_SECS,
    THREAD_NAME,
    StallWatchdog,
    _Watch,
    check_stall_secs,
    fit_frame,
    stall_threshold,
)


def _warnings(tf_log):
    return [m for level, m in tf_log.messages if level == logging.WARNING]


def _infos(tf_log):
    return [m for level, m in tf_log.messages if level == logging.INFO]


def _watchdog_threads():
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


class Progress:
    """What the callback would keep: the last progress time and step."""

    def __init__(self, now=None, step=0):
        self.time = now
        self.step = step


def _watchdog(progress, stall_secs, clock=time.perf_counter, typical=None, **kwargs):
    return StallWatchdog(
        stall_secs,
        progress=lambda: progress.time,
        step_text=lambda: f"training is at global step {progress.step}",
        typical_step_secs=lambda: typical,
        clock=clock,
        **kwargs,
    )


def _armed(watchdog):
    """A watch of this thread without the thread: `poll()` is then what the
    thread would do at a wake, on the test's clock."""
    watchdog._watch = _Watch(threading.get_ident(), None)
    return watchdog


# Logic, on a fake clock (poll() is what the thread runs at each wake). ----


def test_poll_warns_once_per_stall(fake_clock, tf_log):
    progress = Progress(fake_clock(), step=7)
    watchdog = _armed(_watchdog(progress, 10, clock=fake_clock))
    fake_clock.advance(9.9)
    assert not watchdog.poll()
    fake_clock.advance(0.1)
    assert watchdog.poll()
    fake_clock.advance(30)
    assert not watchdog.poll()  # The same stall: no second warning.
    [warning] = _warnings(tf_log)
    assert warning.startswith("keras_stepcounter: no training step has ended for 10.0 s "
                              "(stall_secs: 10.0); training is at global step 7.")


def test_a_look_after_stop_says_nothing(fake_clock, tf_log):
    # The run token: a look the thread takes after its run ended (a late
    # wake after stop()) finds its watch gone and says nothing.
    progress = Progress(fake_clock())
    watchdog = _armed(_watchdog(progress, 1, clock=fake_clock))
    watch = watchdog._watch
    watchdog.stop()
    fake_clock.advance(5)
    assert not watchdog.poll(watch) and not watchdog.poll()
    _armed(watchdog)  # A new run: the old run's watch is not its.
    assert not watchdog.poll(watch)
    assert _warnings(tf_log) == []


def test_log_resumed(fake_clock, tf_log):
    watchdog = _watchdog(Progress(fake_clock()), 10, clock=fake_clock)
    watchdog.log_resumed(15.0, 8)
    [info] = _infos(tf_log)
    assert info == "keras_stepcounter: training resumed after a 15.0 s stall, at global step 8."


def test_a_warned_wait_that_ends_in_a_pause_is_said_to_be_boundary_time(fake_clock, tf_log):
    progress = Progress(fake_clock())
    watchdog = _armed(_watchdog(progress, 1, clock=fake_clock))
    watchdog.log_if_warned_before_pause(progress.time, fake_clock())  # Not warned.
    assert _infos(tf_log) == []
    fake_clock.advance(2)
    assert watchdog.poll()
    watchdog.log_if_warned_before_pause(progress.time, fake_clock() + 1)
    assert _infos(tf_log) == [
        "keras_stepcounter: the 3.0 s without a step ended at an epoch end (or a "
        "paused() block); it is counted as epoch-boundary time, not as a stall."]


def test_the_process_is_named_in_both_lines(fake_clock, tf_log):
    progress = Progress(fake_clock(), step=5)
    watchdog = _armed(_watchdog(progress, 1, clock=fake_clock, process="JAX process 1 of 2"))
    fake_clock.advance(2)
    watchdog.poll()
    watchdog.log_resumed(2.0, 6)
    assert _warnings(tf_log)[0].startswith(
        "keras_stepcounter: no training step has ended in JAX process 1 of 2 for 2.0 s "
        "(stall_secs: 1.0); training is at global step 5. Stack of the training thread")
    assert _infos(tf_log)[0] == (
        "keras_stepcounter: training resumed in JAX process 1 of 2 after a 2.0 s stall, "
        "at global step 6.")


def test_a_new_stall_after_progress_is_reported_again(fake_clock, tf_log):
    progress = Progress(fake_clock())
    watchdog = _armed(_watchdog(progress, 5, clock=fake_clock))
    fake_clock.advance(6)
    assert watchdog.poll()
    progress.time = fake_clock()
    fake_clock.advance(6)
    assert watchdog.poll()
    assert len(_warnings(tf_log)) == 2


def test_paused_is_never_a_stall(fake_clock, tf_log):
    progress = Progress(None)
    watchdog = _armed(_watchdog(progress, 5, clock=fake_clock))
    fake_clock.advance(1000)
    assert not watchdog.poll()
    assert _warnings(tf_log) == []


@pytest.mark.parametrize(
    "typical, threshold",
    [(None, AUTO_MIN_SECS), (0.5, 60.0), (6.0, 60.0), (10.0, 100.0),
     (math.nan, AUTO_MIN_SECS), (0.0, AUTO_MIN_SECS)],
)
def test_auto_threshold(typical, threshold):
    watchdog = _watchdog(Progress(0.0), "auto", typical=typical)
    assert watchdog.threshold_secs() == threshold == stall_threshold("auto", typical)


def test_stall_threshold_of_a_number_and_of_none():
    assert stall_threshold(2.5, 100.0) == 2.5
    assert stall_threshold(None, 1.0) == math.inf  # No stalls at all.


def test_auto_follows_the_typical_time(fake_clock):
    typical = {"secs": 1.0}
    watchdog = StallWatchdog(
        "auto", progress=fake_clock, typical_step_secs=lambda: typical["secs"],
        clock=fake_clock,
    )
    assert watchdog.threshold_secs() == 60.0
    typical["secs"] = 30.0
    assert watchdog.threshold_secs() == 300.0


@pytest.mark.parametrize(
    "stall_secs, wake",
    [(0.1, MIN_WAKE_SECS), (2.0, 0.2), (1000.0, MAX_WAKE_SECS)],
)
def test_wake_is_a_bounded_tenth(stall_secs, wake):
    assert _watchdog(Progress(0.0), stall_secs).wake_secs() == wake


@pytest.mark.parametrize("value", [None, "auto", 5, 0.25])
def test_check_stall_secs_accepts(value):
    assert check_stall_secs(value) == value


@pytest.mark.parametrize(
    "value, error",
    [(0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
     (math.inf, ValueError), (True, ValueError), ("fast", ValueError),
     ("AUTO", ValueError), ([1], TypeError)],
)
def test_bad_stall_secs_names_the_argument(value, error):
    with pytest.raises(error, match="stall_secs"):
        check_stall_secs(value)
    with pytest.raises(error, match="stall_secs"):
        _watchdog(Progress(0.0), value)


def test_none_is_not_a_threshold():
    with pytest.raises(TypeError, match="stall_secs"):
        _watchdog(Progress(0.0), None)


# The thread, with real (short) times. -------------------------------------


def blocked_in_a_recognisable_function(seconds):
    time.sleep(seconds)


def test_a_hang_gives_one_warning_with_the_training_stack(tf_log):
    progress = Progress(time.perf_counter(), step=42)
    watchdog = _watchdog(progress, 0.5)
    watchdog.start(threading.get_ident())  # This thread plays the trainer.
    try:
        blocked_in_a_recognisable_function(1.5)
        progress.time = time.perf_counter()
    finally:
        watchdog.stop()
    [warning] = _warnings(tf_log)
    assert "training is at global step 42" in warning
    assert "blocked_in_a_recognisable_function" in warning
    assert "time.sleep(seconds)" in warning  # The line it is stuck in.
    assert _watchdog_threads() == []


def test_steady_progress_gives_no_warning(tf_log):
    progress = Progress(time.perf_counter())
    watchdog = _watchdog(progress, 1.0)  # Wakes every 0.1 s.
    watchdog.start(threading.get_ident())
    try:
        end = time.perf_counter() + 1.2
        while time.perf_counter() < end:
            time.sleep(0.05)
            progress.time = time.perf_counter()
    finally:
        watchdog.stop()
    assert _warnings(tf_log) == []


def test_paused_gives_no_warning_in_real_time(tf_log):
    progress = Progress(None)
    watchdog = _watchdog(progress, 0.2)
    watchdog.start(threading.get_ident())
    try:
        time.sleep(0.8)
    finally:
        watchdog.stop()
    assert _warnings(tf_log) == []


def test_stop_returns_without_waiting_for_the_wake():
    watchdog = _watchdog(Progress(None), 1000.0)  # Wakes every second.
    watchdog.start(threading.get_ident())
    assert watchdog.running and len(_watchdog_threads()) == 1
    began = time.perf_counter()
    watchdog.stop()
    assert time.perf_counter() - began < 5.0
    assert not watchdog.running and _watchdog_threads() == []


def test_stop_is_idempotent_and_safe_unstarted():
    watchdog = _watchdog(Progress(None), 1.0)
    watchdog.stop()
    watchdog.start(threading.get_ident())
    watchdog.stop()
    watchdog.stop()
    assert _watchdog_threads() == []


def test_restart_leaves_one_thread():
    watchdog = _watchdog(Progress(None), 1.0)
    watchdog.start(threading.get_ident())
    watchdog.start(threading.get_ident())
    try:
        assert len(_watchdog_threads()) == 1
    finally:
        watchdog.stop()
    assert _watchdog_threads() == []


def test_a_failing_callable_stops_the_watchdog_with_a_warning(tf_log):
    def broken():
        raise RuntimeError("boom")

    watchdog = StallWatchdog(0.2, progress=broken)
    watchdog.start(threading.get_ident())
    try:
        deadline = time.perf_counter() + 5
        while watchdog.running and time.perf_counter() < deadline:
            time.sleep(0.02)
    finally:
        watchdog.stop()
    [warning] = _warnings(tf_log)
    assert "watchdog stopped after an error" in warning and "boom" in warning
    assert _watchdog_threads() == []


def test_stack_of_a_finished_thread_says_so(fake_clock, tf_log):
    finished = threading.Thread(target=lambda: None)
    finished.start()
    finished.join()
    from keras_stepcounter.core.watchdog import _stack_of

    assert _stack_of(finished.ident) == "  (the training thread is not running)"


def test_the_watchdog_ends_when_the_training_thread_ends(tf_log):
    progress = Progress(time.perf_counter())
    watchdog = _watchdog(progress, 0.2)
    trainer = threading.Thread(target=lambda: watchdog.start(threading.get_ident()))
    trainer.start()
    trainer.join()
    try:
        deadline = time.perf_counter() + 5
        while watchdog.running and time.perf_counter() < deadline:
            time.sleep(0.02)
        assert not watchdog.running
    finally:
        watchdog.stop()
    assert _watchdog_threads() == []
    assert _warnings(tf_log) == []


# The watchdog belongs to its run. ------------------------------------------


def _run_that_returns():
    """Plays `fit`: the fit call's frame, gone from the stack once it returns."""
    import sys

    return sys._getframe()


def test_the_thread_ends_quietly_once_the_runs_frame_left_the_stack(tf_log):
    progress = Progress(time.perf_counter())
    watchdog = _watchdog(progress, 0.2)
    watchdog.start(threading.get_ident(), fit=_run_that_returns())
    try:
        time.sleep(MAX_WAKE_SECS * 2 + 0.5)  # An idle interpreter, no steps.
        assert not watchdog.running
    finally:
        watchdog.stop()
    assert _warnings(tf_log) == [] and _watchdog_threads() == []


def test_a_run_whose_frame_is_on_the_stack_is_watched(tf_log):
    import sys

    progress = Progress(time.perf_counter(), step=3)
    watchdog = _watchdog(progress, 0.2)
    watchdog.start(threading.get_ident(), fit=sys._getframe())
    try:
        blocked_in_a_recognisable_function(1.0)
    finally:
        watchdog.stop()
    [warning] = _warnings(tf_log)
    assert "blocked_in_a_recognisable_function" in warning


def test_a_thread_that_cannot_start_is_one_warning(monkeypatch, tf_log):
    def cannot_start(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", cannot_start)
    watchdog = _watchdog(Progress(None), 1.0)
    watchdog.start(threading.get_ident())
    watchdog.start(threading.get_ident())
    monkeypatch.undo()
    assert not watchdog.running
    [warning] = _warnings(tf_log)
    assert warning == (
        "keras_stepcounter: the stall watchdog's thread could not start "
        "(RuntimeError(\"can't start new thread\")); training goes on without it.")
    watchdog.stop()


def test_fit_frame_is_a_keras_fit_whatever_lies_between():
    import sys

    def frame_in(module_name, function):
        """A frame of `function` in `module_name`, called from a frame of
        a callback's hook (the counter's, a subclass's) above nothing."""
        source = f"def {function}():\n    return hook()\n"
        namespace = {"__name__": module_name, "hook": lambda: sys._getframe(1)}
        exec(compile(source, f"<{module_name}>", "exec"), namespace)
        return namespace[function]()

    for module in ("keras.src.backend.tensorflow.trainer", "keras.src.backend.jax.trainer",
                   "tf_keras.src.engine.training"):
        frame = frame_in(module, "fit")
        assert fit_frame(frame) is frame
    assert fit_frame(frame_in("my_training_script", "fit")) is None  # Not Keras's.
    assert fit_frame(frame_in("keras.src.trainers.trainer", "evaluate")) is None
    assert fit_frame(sys._getframe()) is None  # A custom loop: no fit.
