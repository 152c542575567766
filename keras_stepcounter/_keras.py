"""What differs between Keras flavours, kept out of the callback.

`tf.keras` is Keras 3 by default and tf_keras (Keras 2) when
`TF_USE_LEGACY_KERAS=1`; Keras 3 may also run on the JAX backend.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any, Callable

import tensorflow as tf

keras = tf.keras
StepReader = Callable[[], int]
# Keras 3 wraps backend variables in keras.Variable; tf_keras uses tf.Variable.
_VARIABLE_TYPES = (tf.Variable, getattr(keras, "Variable", tf.Variable))


def iterations_reader(model: Any) -> StepReader:
    """A callable reading `model.optimizer.iterations` as a Python int."""
    optimizer = getattr(model, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None)
    if iterations is None:
        raise ValueError(
            "model.optimizer must be set (compile the model first, or pass "
            "step_source= to StepCounter); StepCounter reads the global step "
            "from model.optimizer.iterations."
        )
    if keras.backend.backend() == "jax":
        return _jax_iterations_reader(model, optimizer, iterations)
    return lambda: as_int(iterations)


def _jax_iterations_reader(model: Any, optimizer: Any, iterations: Any) -> StepReader:
    """Reads the step from the JAX trainer's state while `fit` runs.

    During `fit` on JAX, Keras keeps the training state in `model._jax_state`
    and writes it back to the variables only at the end of an epoch, so
    mid-epoch `optimizer.iterations` is stale (and its value detached:
    reading it raises). The current step is the
    optimizer's counter in that state (found by its position in
    `optimizer.variables`); outside `fit` the variable itself is current.
    """
    counter = getattr(optimizer, "_iterations", iterations)
    accumulation = getattr(optimizer, "gradient_accumulation_steps", None) or 1
    position = None

    def read() -> int:
        nonlocal position
        state = getattr(model, "_jax_state", None) or {}
        values = state.get("optimizer_variables")
        if values is not None:
            if position is None:
                position = next(
                    (i for i, v in enumerate(optimizer.variables) if v is counter), -1
                )
            if 0 <= position < len(values):
                return int(values[position]) // accumulation
        return as_int(iterations)

    return read


def as_int(value: Any) -> int:
    """A scalar variable or tensor as a Python int.

    `.numpy()` first: `int()` of a tf_keras `MirroredVariable` (any
    `tf.distribute` strategy) is a TypeError, its `.numpy()` is the local
    copy. No collective is involved either way.
    """
    numpy = getattr(value, "numpy", None)
    return int(numpy() if numpy is not None else value)


def step_source_reader(step_source: Any) -> StepReader:
    """A callable reading an integer `tf.Variable` or a callable as an int."""
    if isinstance(step_source, _VARIABLE_TYPES):
        # Keras 3 variables give their dtype as a string ("int64").
        dtype = tf.as_dtype(step_source.dtype)
        if not dtype.is_integer:
            raise TypeError(
                "step_source must hold an integer step, got a variable of "
                f"dtype {dtype.name}."
            )
        return lambda: as_int(step_source)
    if callable(step_source):
        return lambda: _as_step(step_source())
    raise TypeError(
        "step_source must be an integer tf.Variable (e.g. optimizer.iterations) "
        "or a callable returning an int, got "
        f"{step_source!r} of type {type(step_source).__name__}."
    )


def _as_step(value: Any) -> int:
    """`value` as an int, if it is an integer (Python, NumPy, tensor, variable)."""
    if isinstance(value, _VARIABLE_TYPES):
        value = value.numpy()
    try:
        return operator.index(value)
    except (TypeError, AttributeError):  # A float tensor raises the latter.
        raise TypeError(
            "step_source must return an integer global step, got "
            f"{value!r} of type {type(value).__name__}."
        ) from None


def steps_per_execution(model: Any) -> int:
    """Training steps that one batch callback covers (Keras steps_per_execution)."""
    value = getattr(model, "steps_per_execution", None)  # Keras 3
    if value is None:
        value = getattr(model, "_steps_per_execution", None)  # tf_keras
    if isinstance(value, _VARIABLE_TYPES) or tf.is_tensor(value):
        value = as_int(value)
    if isinstance(value, numbers.Integral) and value > 0:
        return int(value)
    return 1
