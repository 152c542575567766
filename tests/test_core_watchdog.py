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
    check_stall_secs,
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
        self.stalls_flagged = 0

    def flag(self):
        self.stalls_flagged += 1


def _watchdog(progress, stall_secs, clock=time.perf_counter, typical=None):
    return StallWatchdog(
        stall_secs,
        last_progress=lambda: progress.time,
        last_step=lambda: progress.step,
        typical_step_secs=lambda: typical,
        on_stall=progress.flag,
        clock=clock,
    )


# Logic, on a fake clock (poll() is what the thread runs at each wake). ----


def test_poll_reports_once_per_stall(fake_clock, tf_log):
    progress = Progress(fake_clock(), step=7)
    watchdog = _watchdog(progress, 10, clock=fake_clock)
    fake_clock.advance(9.9)
    assert not watchdog.poll()
    fake_clock.advance(0.1)
    assert watchdog.poll()
    fake_clock.advance(30)
    assert not watchdog.poll()  # The same stall: no second warning.
    assert progress.stalls_flagged == 1
    [warning] = _warnings(tf_log)
    assert "for 10.0 s" in warning and "last global step read: 7" in warning


def test_end_stall_gives_the_length_once(fake_clock, tf_log):
    progress = Progress(fake_clock(), step=7)
    watchdog = _watchdog(progress, 10, clock=fake_clock)
    assert watchdog.end_stall(fake_clock(), 7) is None  # No stall yet.
    start = fake_clock()
    fake_clock.advance(12)
    watchdog.poll()
    fake_clock.advance(3)
    progress.time, progress.step = fake_clock(), 8
    assert watchdog.end_stall(fake_clock(), 8) == fake_clock() - start == 15
    assert watchdog.end_stall(fake_clock(), 8) is None
    [info] = _infos(tf_log)
    assert "resumed after a 15.0 s stall, at global step 8" in info


def test_end_stall_step_defaults_to_last_step(fake_clock, tf_log):
    progress = Progress(fake_clock(), step=3)
    watchdog = _watchdog(progress, 1, clock=fake_clock)
    fake_clock.advance(2)
    watchdog.poll()
    assert watchdog.end_stall(fake_clock()) == 2
    assert "at global step 3" in _infos(tf_log)[0]


def test_a_new_stall_after_progress_is_reported_again(fake_clock, tf_log):
    progress = Progress(fake_clock())
    watchdog = _watchdog(progress, 5, clock=fake_clock)
    fake_clock.advance(6)
    assert watchdog.poll()
    progress.time = fake_clock()
    watchdog.end_stall(fake_clock())
    fake_clock.advance(6)
    assert watchdog.poll()
    assert len(_warnings(tf_log)) == 2
    assert progress.stalls_flagged == 2


def test_paused_is_never_a_stall(fake_clock, tf_log):
    progress = Progress(None)
    watchdog = _watchdog(progress, 5, clock=fake_clock)
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
    assert watchdog.threshold_secs() == threshold


def test_auto_follows_the_typical_time(fake_clock):
    typical = {"secs": 1.0}
    watchdog = StallWatchdog(
        "auto", last_progress=fake_clock, last_step=lambda: 0,
        typical_step_secs=lambda: typical["secs"], clock=fake_clock,
    )
    assert watchdog.threshold_secs() == 60.0
    typical["secs"] = 30.0
    assert watchdog.threshold_secs() == 300.0


@pytest.mark.parametrize(
    "stall_secs, wake",
    [(0.1, MIN_WAKE_SECS), (2.0, 0.5), (1000.0, MAX_WAKE_SECS)],
)
def test_wake_is_a_bounded_quarter(stall_secs, wake):
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
        now = progress.time = time.perf_counter()
        stall = watchdog.end_stall(now, step=43)
    finally:
        watchdog.stop()
    [warning] = _warnings(tf_log)
    assert "last global step read: 42" in warning
    assert "blocked_in_a_recognisable_function" in warning
    assert "time.sleep(seconds)" in warning  # The line it is stuck in.
    assert progress.stalls_flagged == 1
    assert 1.4 <= stall <= 2.5
    assert any("at global step 43" in m for m in _infos(tf_log))
    assert _watchdog_threads() == []


def test_steady_progress_gives_no_warning(tf_log):
    progress = Progress(time.perf_counter())
    watchdog = _watchdog(progress, 1.0)  # Wakes every 0.25 s.
    watchdog.start(threading.get_ident())
    try:
        end = time.perf_counter() + 1.2
        while time.perf_counter() < end:
            time.sleep(0.05)
            progress.time = time.perf_counter()
    finally:
        watchdog.stop()
    assert _warnings(tf_log) == []
    assert progress.stalls_flagged == 0


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
    watchdog = _watchdog(Progress(None), 1000.0)  # Wakes every 15 s.
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

    watchdog = StallWatchdog(0.2, last_progress=broken, last_step=lambda: 0)
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
    progress = Progress(fake_clock())
    watchdog = _watchdog(progress, 1, clock=fake_clock)
    watchdog.start(finished.ident)
    watchdog.stop()
    fake_clock.advance(2)
    watchdog.poll()
    assert "the training thread is not running" in _warnings(tf_log)[0]


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
