"""Argument checks shared by the recorders: fail at construction, by name."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional


V1_EXACTLY_ONE = "exactly one of every_n_steps and every_n_secs should be provided."


def check_every(every_n_steps: Any, every_n_secs: Any, v1_message: bool = False) -> None:
    """Exactly one of the two, each a positive finite number (steps: an int).

    The error keeps v1's sentence, then says what was given and what to
    pass; `v1_message` gives v1's sentence alone (the v1 hook, whose
    callers may match it exactly).
    """
    if (every_n_steps is None) == (every_n_secs is None):
        raise ValueError(
            V1_EXACTLY_ONE if v1_message else _exactly_one_message(every_n_steps, every_n_secs)
        )
    if every_n_steps is not None:
        check_positive_int("every_n_steps", every_n_steps)
    else:
        check_positive_number("every_n_secs", every_n_secs)


def _exactly_one_message(every_n_steps: Any, every_n_secs: Any) -> str:
    if every_n_steps is None:
        return (
            f"{V1_EXACTLY_ONE} Got neither: pass every_n_steps=N to record every "
            f"N global steps (default 100), or every_n_secs=S with "
            f"every_n_steps=None to record every S seconds."
        )
    return (
        f"{V1_EXACTLY_ONE} Got every_n_steps={every_n_steps!r} and "
        f"every_n_secs={every_n_secs!r} (every_n_steps defaults to 100): to "
        f"record every S seconds, pass every_n_steps=None, every_n_secs=S."
    )


def check_bool(name: str, value: Any) -> bool:
    """An on/off option: True or False, nothing merely truthy ("no" is not
    False)."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{name} must be True or False, got {value!r} of type {type(value).__name__}."
        )
    return value


def check_positive_int(name: str, value: Any) -> int:
    _reject_bool_and_non_finite(name, value)
    if not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be a positive int, got {value!r} "
            f"of type {type(value).__name__}."
        )
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def check_positive_number(name: str, value: Any) -> float:
    _reject_bool_and_non_finite(name, value)
    if not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a positive number, got {value!r} "
            f"of type {type(value).__name__}."
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"{name} must be a positive finite number, got {value!r}."
        )
    return float(value)


def _reject_bool_and_non_finite(name: str, value: Any) -> None:
    # Booleans, NaN and infinities are wrong values (a ValueError), even
    # where an int is wanted (True is an int to Python, never a step count
    # to a user); other non-numbers are a TypeError.
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, not a bool ({value!r}).")
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")


def check_optional_positive_number(name: str, value: Any) -> Optional[float]:
    return None if value is None else check_positive_number(name, value)


def check_optional_positive_int(name: str, value: Any) -> Optional[int]:
    return None if value is None else check_positive_int(name, value)


def check_tag(tag: Any, name: str = "tag") -> str:
    """A non-empty str (a tag, or a name that ends one)."""
    if not isinstance(tag, str):
        raise TypeError(
            f"{name} must be a non-empty str, got {tag!r} of type {type(tag).__name__}."
        )
    if not tag.strip():
        raise ValueError(f"{name} must be a non-empty str, got {tag!r}.")
    return tag


def check_callable(name: str, value: Any, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(
            f"{name} must be callable, got {value!r} of type {type(value).__name__}."
        )


def check_extras(
    batch_size: Any, count_fn: Any, flops_per_step: Any, peak_flops_per_sec: Any
) -> None:
    """The extra scalars' arguments that only make sense alone or in pairs."""
    if batch_size is not None and count_fn is not None:
        raise ValueError(
            "give at most one of batch_size and count_fn: both define "
            "examples/sec."
        )
    if (flops_per_step is None) != (peak_flops_per_sec is None):
        raise ValueError(
            "flops_per_step and peak_flops_per_sec go together (mfu is "
            "steps/sec * flops_per_step / peak_flops_per_sec); got only "
            + ("flops_per_step." if peak_flops_per_sec is None else "peak_flops_per_sec.")
        )
