"""Bad arguments fail early, with the right type and the argument's name.

SPEC section 9: every wrong argument fails in the constructor (or where only
the model can tell, in `on_train_begin`) with a `TypeError` or `ValueError`
naming the argument; never a bare `AttributeError` from deep inside.
"""

import importlib
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Union

import pytest

import keras_stepcounter

# The three recorders share the v1 constructor
# `(every_n_steps=100, every_n_secs=None, output_dir=None, summary_writer=None,
# *, tag=...)`; the table below runs against each one present.
RECORDERS = ["StepCounter", "GraphStepCounter", "compat.v1.StepCounterHook"]


def load_recorder(name: str):
    """`keras_stepcounter.<name>` (each of the three must exist)."""
    module_name, _, class_name = f"keras_stepcounter.{name}".rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


@pytest.fixture(params=RECORDERS)
def recorder(request):
    return load_recorder(request.param)


@dataclass
class Case:
    id: str
    kwargs: Union[Dict[str, Any], Callable[[Any], Dict[str, Any]]]  # or f(tmp_path)
    error: type
    names: str  # What the message must name.

    def kwargs_for(self, tmp_path) -> Dict[str, Any]:
        return self.kwargs(tmp_path) if callable(self.kwargs) else self.kwargs


EXACTLY_ONE = "exactly one of every_n_steps and every_n_secs"


def _file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a directory")
    return path


SHARED_CASES = [
    Case("steps_zero", dict(every_n_steps=0), ValueError, "every_n_steps"),
    Case("steps_negative", dict(every_n_steps=-10), ValueError, "every_n_steps"),
    Case("steps_nan", dict(every_n_steps=math.nan), ValueError, "every_n_steps"),
    Case("steps_inf", dict(every_n_steps=math.inf), ValueError, "every_n_steps"),
    Case("steps_bool", dict(every_n_steps=True), ValueError, "every_n_steps"),
    Case("steps_string", dict(every_n_steps="100"), TypeError, "every_n_steps"),
    Case("steps_float", dict(every_n_steps=100.0), TypeError, "every_n_steps"),
    Case("steps_fraction", dict(every_n_steps=2.5), TypeError, "every_n_steps"),
    Case("secs_zero", dict(every_n_steps=None, every_n_secs=0), ValueError, "every_n_secs"),
    Case("secs_negative", dict(every_n_steps=None, every_n_secs=-1.0), ValueError, "every_n_secs"),
    Case("secs_nan", dict(every_n_steps=None, every_n_secs=math.nan), ValueError, "every_n_secs"),
    Case("secs_inf", dict(every_n_steps=None, every_n_secs=math.inf), ValueError, "every_n_secs"),
    Case("secs_bool", dict(every_n_steps=None, every_n_secs=True), ValueError, "every_n_secs"),
    Case("secs_string", dict(every_n_steps=None, every_n_secs="1"), TypeError, "every_n_secs"),
    Case("both", dict(every_n_steps=10, every_n_secs=1.0), ValueError, EXACTLY_ONE),
    # As in v1: every_n_steps defaults to 100, so seconds need steps=None.
    Case("secs_beside_default_steps", dict(every_n_secs=1.0), ValueError, EXACTLY_ONE),
    Case("neither", dict(every_n_steps=None), ValueError, EXACTLY_ONE),
    Case("tag_empty", dict(tag=""), ValueError, "tag"),
    Case("tag_blank", dict(tag="   "), ValueError, "tag"),
    Case("tag_int", dict(tag=3), TypeError, "tag"),
    Case("tag_bytes", dict(tag=b"global_step/sec"), TypeError, "tag"),
    Case("writer_path", dict(summary_writer="logs/train"), TypeError, "summary_writer"),
    Case("writer_object", dict(summary_writer=object()), TypeError, "summary_writer"),
    Case("output_dir_int", dict(output_dir=7), TypeError, "output_dir"),
    Case("output_dir_empty", dict(output_dir=""), ValueError, "output_dir"),
    Case("output_dir_is_a_file", lambda tmp: dict(output_dir=str(_file(tmp))),
         ValueError, "output_dir"),
    # A path under a file cannot be created, even by root (chmod would not
    # stop root, so a read-only directory is no test here).
    Case("output_dir_under_a_file", lambda tmp: dict(output_dir=str(_file(tmp) / "run")),
         ValueError, "output_dir"),
]


@pytest.mark.parametrize("case", SHARED_CASES, ids=lambda case: case.id)
def test_bad_constructor_argument_fails_naming_it(recorder, case, tmp_path):
    with pytest.raises(case.error, match=re.escape(case.names)):
        recorder(**case.kwargs_for(tmp_path))


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(every_n_steps=1), dict(every_n_steps=None, every_n_secs=2),
     dict(every_n_steps=None, every_n_secs=0.5)],
    ids=["defaults", "steps_1", "secs_int", "secs_float"],
)
def test_good_timing_arguments_are_accepted(recorder, kwargs):
    recorder(**kwargs)


# StepCounter's own keyword arguments. ---------------------------------------

STEP_COUNTER_CASES = [
    Case("batch_size_zero", dict(batch_size=0), ValueError, "batch_size"),
    Case("batch_size_bool", dict(batch_size=True), ValueError, "batch_size"),
    Case("batch_size_float", dict(batch_size=32.0), TypeError, "batch_size"),
    Case("flops_nan", dict(flops_per_step=math.nan), ValueError, "flops_per_step"),
    Case("peak_flops_negative", dict(peak_flops_per_sec=-1.0), ValueError,
         "peak_flops_per_sec"),
    Case("count_fn_not_callable", dict(count_fn="len"), TypeError, "count_fn"),
    Case("clock_is_no_argument", dict(clock=time.perf_counter), TypeError, "clock"),
    Case("goodput_string", dict(goodput="no"), TypeError, "goodput must be True or False"),
    Case("step_time_stats_int", dict(step_time_stats=1), TypeError, "step_time_stats"),
    Case("epoch_logs_none", dict(epoch_logs=None), TypeError, "epoch_logs"),
    Case("pause_between_epochs_str", dict(pause_between_epochs="False"), TypeError,
         "pause_between_epochs"),
    Case("time_to_first_step_int", dict(time_to_first_step=0), TypeError,
         "time_to_first_step"),
    Case("steps_per_call_zero", dict(steps_per_call=0), ValueError, "steps_per_call"),
    Case("steps_per_call_float", dict(steps_per_call=2.0), TypeError, "steps_per_call"),
    Case("step_source_string", dict(step_source="iterations"), TypeError, "step_source"),
    Case("step_source_int", dict(step_source=5), TypeError, "step_source"),
]


@pytest.mark.parametrize("case", STEP_COUNTER_CASES, ids=lambda case: case.id)
def test_step_counter_keyword_fails_naming_it(case, tmp_path):
    with pytest.raises(case.error, match=re.escape(case.names)):
        keras_stepcounter.StepCounter(**case.kwargs_for(tmp_path))


def test_a_failed_check_leaves_no_output_dir_behind(tmp_path):
    output_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="steps_per_call"):
        keras_stepcounter.StepCounter(output_dir=str(output_dir), steps_per_call=0)
    assert not output_dir.exists()


def test_float_variable_step_source_is_a_type_error(keras):
    import tensorflow as tf

    for variable in (tf.Variable(1.0), keras.Variable(1.0)):
        with pytest.raises(TypeError, match="step_source must hold an integer step"):
            keras_stepcounter.StepCounter(step_source=variable)


def test_keras_variables_are_accepted_as_step_source(keras, make_model):
    # Keras 3 variables report their dtype as a string; that is not an error.
    keras_stepcounter.StepCounter(step_source=make_model().optimizer.iterations)
    keras_stepcounter.StepCounter(step_source=keras.Variable(0, dtype="int64"))


@pytest.mark.parametrize(
    "returned", [1.5, "7", None], ids=["float", "string", "none"]
)
def test_step_source_returning_a_non_integer_fails_before_training(
    make_model, tiny_data, returned
):
    x, y = tiny_data
    model = make_model()
    counter = keras_stepcounter.StepCounter(step_source=lambda: returned)
    with pytest.raises(TypeError, match="step_source must return an integer"):
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
    assert int(model.optimizer.iterations) == 0  # Not a single step ran.


def test_float_tensor_from_step_source_fails_in_track():
    import tensorflow as tf

    counter = keras_stepcounter.StepCounter(step_source=lambda: tf.constant(3.0))
    with pytest.raises(TypeError, match="step_source must return an integer"):
        with counter.track():
            pass


def test_model_without_optimizer_fails_in_on_train_begin(keras):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])  # No compile.
    counter = keras_stepcounter.StepCounter()
    callbacks = keras.callbacks.CallbackList([counter], model=model)
    with pytest.raises(ValueError, match=re.escape("model.optimizer")):
        callbacks.on_train_begin()


def test_track_without_model_or_step_source_names_model_optimizer():
    counter = keras_stepcounter.StepCounter()
    with pytest.raises(ValueError, match=re.escape("model.optimizer")):
        with counter.track():
            pass
