"""The pure-Python core: no TensorFlow, and one validated options object."""

import math
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keras_stepcounter.core.checks import V1_EXACTLY_ONE

import keras_stepcounter.core
from keras_stepcounter.core.options import RecorderOptions
from keras_stepcounter.core.rates import interval_scalars

REPO = Path(__file__).resolve().parents[1]
CORE_MODULES = sorted(
    f"keras_stepcounter.core.{m.name}" for m in pkgutil.iter_modules(keras_stepcounter.core.__path__)
)


def test_core_imports_no_tensorflow():
    assert {"keras_stepcounter.core.options", "keras_stepcounter.core.rates",
            "keras_stepcounter.core.timer", "keras_stepcounter.core.checks"} <= set(CORE_MODULES)
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'jax', 'numpy')\n"
        "               if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


# RecorderOptions: every shared check, once. ------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(every_n_steps=None), ValueError,
         "exactly one of every_n_steps and every_n_secs should be provided."),
        (dict(every_n_secs=2.0), ValueError, "exactly one of every_n_steps"),
        (dict(every_n_steps=0), ValueError, "every_n_steps must be a positive int, got 0."),
        (dict(every_n_steps=2.5), TypeError, "every_n_steps must be a positive int"),
        (dict(every_n_steps=True), ValueError, "every_n_steps must be a positive number, not a bool"),
        (dict(every_n_steps=None, every_n_secs=math.inf), ValueError,
         "every_n_secs must be a positive finite number, got inf."),
        (dict(tag=""), ValueError, "tag must be a non-empty str"),
        (dict(tag=7), TypeError, "tag must be a non-empty str"),
        (dict(count_fn="len"), TypeError, "count_fn must be callable"),
        (dict(batch_size=4, count_fn=len), ValueError, "give at most one of batch_size and count_fn"),
        (dict(flops_per_step=1.0), ValueError, "got only flops_per_step."),
        (dict(peak_flops_per_sec=1.0), ValueError, "got only peak_flops_per_sec."),
        (dict(batch_size=0), ValueError, "batch_size must be a positive int"),
        (dict(batch_size=32.0), TypeError, "batch_size must be a positive int"),
        (dict(flops_per_step=math.nan, peak_flops_per_sec=1.0), ValueError, "flops_per_step"),
        (dict(flops_per_step=1.0, peak_flops_per_sec=-1.0), ValueError, "peak_flops_per_sec"),
    ],
)
def test_each_check_names_the_argument(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        RecorderOptions(**kwargs)


def test_values_are_normalized_and_frozen():
    options = RecorderOptions(every_n_steps=None, every_n_secs=2, flops_per_step=4,
                              peak_flops_per_sec=8, time_to_first_step=True)
    assert options.every_n_secs == 2.0 and isinstance(options.every_n_secs, float)
    assert options.mfu_per_step_rate == 0.5
    assert options.time_to_first_step is True
    assert not options.writes_examples
    with pytest.raises(Exception):
        options.tag = "other"  # type: ignore[misc]


@pytest.mark.parametrize("recorder", ["GraphStepCounter", "compat.v1.StepCounterHook",
                                      "StepCounter"])
@pytest.mark.parametrize("kwargs", [dict(every_n_steps=0), dict(tag=""),
                                    dict(every_n_steps=None)])
def test_recorders_fail_with_the_options_message(recorder, kwargs):
    import keras_stepcounter

    cls = keras_stepcounter
    for part in recorder.split("."):
        cls = getattr(cls, part)
    with pytest.raises(ValueError) as expected:
        RecorderOptions(**kwargs)
    message = str(expected.value)
    if recorder == "compat.v1.StepCounterHook" and message.startswith(V1_EXACTLY_ONE):
        message = V1_EXACTLY_ONE  # TF's hook says exactly this; so does ours.
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        cls(**kwargs)


@pytest.mark.parametrize(
    "kwargs, given",
    [
        (dict(every_n_secs=-1), "Got every_n_steps=100 and every_n_secs=-1"),
        (dict(every_n_steps=10, every_n_secs=5), "Got every_n_steps=10 and every_n_secs=5"),
        (dict(every_n_steps=None), "Got neither"),
    ],
)
def test_exactly_one_error_says_what_was_given_and_what_to_pass(kwargs, given):
    with pytest.raises(ValueError) as error:
        RecorderOptions(**kwargs)
    message = str(error.value)
    assert message.startswith(V1_EXACTLY_ONE + " " + given)
    assert "every_n_steps=None" in message and "every_n_secs=S" in message


@pytest.mark.parametrize("value", [1, 0, "no", "yes", None, 1.0])
def test_on_off_option_is_a_bool_or_a_type_error(value):
    with pytest.raises(TypeError, match=f"^time_to_first_step must be True or False, got {re.escape(repr(value))}"):
        RecorderOptions(time_to_first_step=value)


# interval_scalars: one formula. ---------------------------------------------------


def test_interval_scalars_on_floats():
    assert interval_scalars("global_step/sec", 10, 4.0, None, batch_size=8,
                            mfu_per_step_rate=0.1) == {
        "global_step/sec": 2.5, "examples/sec": 20.0, "mfu": 0.25}
    assert interval_scalars("s", 10, 4.0, 0.0) == {"s": 2.5, "examples/sec": 0.0}
    assert interval_scalars("s", 10, 4.0) == {"s": 2.5}


def test_interval_scalars_on_tensors_gives_the_same_numbers():
    import tensorflow as tf

    as_tensors = interval_scalars(
        "global_step/sec", tf.constant(10.0, tf.float64), tf.constant(4.0, tf.float64),
        tf.constant(30.0, tf.float64), mfu_per_step_rate=0.1)
    as_floats = interval_scalars("global_step/sec", 10.0, 4.0, 30.0, mfu_per_step_rate=0.1)
    assert {tag: float(value) for tag, value in as_tensors.items()} == as_floats


def test_rate_tracker_from_options(fake_clock):
    from keras_stepcounter.core.rates import RateTracker
    from keras_stepcounter.core.timer import SecondOrStepTimer

    options = RecorderOptions(every_n_steps=2, count_fn=len, flops_per_step=2.0,
                              peak_flops_per_sec=8.0, tag="train/sps")
    tracker = RateTracker.from_options(SecondOrStepTimer(every_steps=2, clock=fake_clock),
                                       options)
    tracker.interval(0)
    fake_clock.advance(2.0)
    # Counted examples: examples/sec at every record, 0 included.
    assert tracker.scalars(*tracker.interval(2)) == {"train/sps": 1.0, "examples/sec": 0.0, "mfu": 0.25}
