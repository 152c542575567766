"""Reading the global step as a Python int, for every Keras flavour and source.

`tf.keras` is Keras 3 (on TensorFlow or JAX), or tf_keras when
`TF_USE_LEGACY_KERAS=1`. The step is the number of updates the optimizer
applied: under a wrapper (a `LossScaleOptimizer`), the wrapped optimizer's
counter; with gradient accumulation, divided by the accumulation steps.

A reader is read only at records (rarely), but then on the training path,
so it uses the cheapest public read: one `ReadVariableOp` (about 6 µs; a
Keras `Variable.numpy()` costs about 20 µs and 100-230 µs inside `fit`).
"""

from __future__ import annotations

import numbers
import operator
from typing import Any, Callable, Tuple

import tensorflow as tf

from keras_stepcounter.core.run_source import RunSource

keras = tf.keras


def _variable_types() -> Tuple[Any, ...]:
    """`tf.Variable` and Keras 3's variable classes (tf_keras uses the former).

    Keras before 3.7 exports `keras.Variable` as a subclass of its backend's
    variable class, and the variables layers and optimizers make are of that
    base, not of the export (later Keras makes them of the export): Keras's
    own classes among the export's bases cover both.
    """
    exported = getattr(keras, "Variable", None)
    if exported is None:
        return (tf.Variable,)
    bases = tuple(
        cls for cls in exported.__mro__ if cls.__module__.split(".")[0] == "keras"
    )
    return (tf.Variable, *bases)


_VARIABLE_TYPES = _variable_types()


def iterations_reader(model: Any) -> RunSource:
    """Reads the updates applied by `model.optimizer`, fresh at every call.

    Raises:
        ValueError: the model has no optimizer, or (Keras 3 on JAX) its
            counter cannot be found in the trainer's state.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or getattr(optimizer, "iterations", None) is None:
        raise ValueError(
            "model.optimizer must be set (compile the model first, or pass "
            "step_source= to StepCounter); StepCounter reads the global step "
            "from model.optimizer.iterations."
        )
    inner, counter, accumulation = applied_update_counter(optimizer)
    description = f"model.optimizer.iterations ({_setup_name(optimizer, inner, accumulation)})"
    if keras.backend.backend() == "jax":
        read = _jax_reader(model, optimizer, counter, accumulation, description)
    else:
        read_counter = variable_reader(counter)
        read = read_counter if accumulation == 1 else lambda: read_counter() // accumulation
    loss_scaled = inner is not optimizer and "LossScale" in type(optimizer).__name__
    return RunSource(read, description, calls_per_update=accumulation, loss_scaled=loss_scaled)


def applied_update_counter(optimizer: Any) -> Tuple[Any, Any, int]:
    """(innermost optimizer, its step variable, gradient accumulation steps).

    Wrappers (Keras 3's and tf_keras's `LossScaleOptimizer`) expose the
    optimizer they wrap as `inner_optimizer` and delegate `iterations` to
    it. With `gradient_accumulation_steps=N` (Keras 3), the public
    `iterations` is a tensor computed when the property is read
    (`_iterations // N`): a reader holding it would never see it move, and
    recomputing it per read costs an extra op (and on JAX the variable is
    stale during `fit`), so the variable `_iterations` is read instead and
    divided here. `tests/test_setups.py` fails if Keras renames it.
    """
    inner = optimizer
    while getattr(inner, "inner_optimizer", None) is not None:
        inner = inner.inner_optimizer
    accumulation = int(getattr(inner, "gradient_accumulation_steps", None) or 1)
    counter = getattr(inner, "_iterations", None)
    if counter is None or accumulation == 1:
        counter = inner.iterations
    return inner, counter, accumulation


def _setup_name(optimizer: Any, inner: Any, accumulation: int) -> str:
    name = type(inner).__name__
    if inner is not optimizer:
        name = f"{type(optimizer).__name__} wrapping {name}"
    if accumulation > 1:
        name += f", gradient_accumulation_steps={accumulation}"
    return name


def _jax_reader(
    model: Any, optimizer: Any, counter: Any, accumulation: int, description: str
) -> Callable[[], int]:
    """Reads the step from the JAX trainer's state while `fit` runs.

    During `fit` on JAX, Keras keeps the training state in `model._jax_state`
    (private: Keras offers no public view of it short of
    `jax_state_sync()`, which writes every variable back) and writes it to
    the variables only at epoch ends, so mid-epoch the variable is stale.
    The state's "optimizer_variables" are in the order of
    `model.optimizer.variables` (Keras zips them in `jax_state_sync`), which
    holds a wrapper's and its inner optimizer's variables: the counter is
    found there by identity. Outside `fit` the variable itself is current.
    """
    position = next(
        (i for i, v in enumerate(optimizer.variables) if v is counter), None
    )
    if position is None:
        raise ValueError(
            f"StepCounter cannot find the step counter of {description} among "
            "model.optimizer.variables, where Keras on JAX keeps it during fit. "
            "Pass the variable that counts your updates as step_source=."
        )

    def read() -> int:
        state = getattr(model, "_jax_state", None)
        values = state.get("optimizer_variables") if state else None
        if values is not None and position < len(values):
            return int(values[position]) // accumulation
        return as_int(counter) // accumulation

    return read


def variable_reader(variable: Any) -> Callable[[], int]:
    """The cheapest read of an integer variable as an int: one
    `tf.raw_ops.ReadVariableOp` of a plain resource variable's handle (a
    Keras 3 variable's `.value` on TensorFlow); `.numpy()`, the local copy,
    of a distributed one (tf_keras under a strategy), which has no handle.
    """
    # A Keras 3 variable holds its tf.Variable as `.value` (on a tf.Variable,
    # `.value` is a method).
    resource = getattr(variable, "value", None)
    if not isinstance(resource, tf.Variable):
        resource = variable
    handle = getattr(resource, "handle", None) if _is_plain(resource) else None
    if handle is None:
        return lambda: as_int(variable)
    dtype = tf.as_dtype(resource.dtype)
    read_op = tf.raw_ops.ReadVariableOp
    return lambda: int(read_op(resource=handle, dtype=dtype))


def _is_plain(variable: Any) -> bool:
    return isinstance(variable, tf.Variable) and not isinstance(
        variable, tf.distribute.DistributedValues
    )


def as_int(value: Any) -> int:
    """A scalar variable or tensor as a Python int.

    `.numpy()` first: `int()` of a tf_keras `MirroredVariable` (any
    `tf.distribute` strategy) is a TypeError, its `.numpy()` is the local
    copy. No collective is involved either way.
    """
    numpy = getattr(value, "numpy", None)
    return int(numpy() if numpy is not None else value)


def step_source_reader(step_source: Any) -> RunSource:
    """A reader of an integer `tf.Variable` or of a callable returning an int."""
    if isinstance(step_source, _VARIABLE_TYPES):
        # Keras 3 variables give their dtype as a string ("int64").
        dtype = tf.as_dtype(step_source.dtype)
        if not dtype.is_integer:
            raise TypeError(
                "step_source must hold an integer step, got a variable of "
                f"dtype {dtype.name}."
            )
        name = getattr(step_source, "path", None) or getattr(step_source, "name", "")
        return RunSource(variable_reader(step_source), f"step_source {name!r}")
    if callable(step_source):
        name = getattr(step_source, "__qualname__", type(step_source).__name__)
        return RunSource(lambda: _as_step(step_source()), f"step_source {name}()")
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
    if isinstance(value, numbers.Integral) and int(value) > 0:
        return int(value)
    return 1


def updates_per_call(batches_per_call: int, calls_per_update: int) -> int:
    """The most optimizer updates one batch callback can cover."""
    return max(1, -(-batches_per_call // calls_per_update))

