"""What every benchmark row shares: the row type, interleaving, statistics."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

NOT_AVAILABLE = "not available"


@dataclass
class Row:
    """One line of the results table."""

    name: str
    measured: str
    compared_with: str
    result: str
    target: str
    verdict: str  # "met", "missed", "reference", "not available" or "error"


@dataclass(frozen=True)
class Settings:
    """How much work each row does (`--quick` shrinks all of it)."""

    quick: bool
    rounds: int  # interleaved A/B rounds per row

    @classmethod
    def make(cls, quick: bool, rounds: int = 0) -> "Settings":
        return cls(quick=quick, rounds=rounds or (3 if quick else 9))


def interleave(
    variants: Dict[str, Callable[[], Dict[str, float]]], rounds: int
) -> Dict[str, List[Dict[str, float]]]:
    """Runs every variant once per round, alternating the order (ABC, CBA, ...).

    Each variant returns its measurements (e.g. `{"cpu": s, "wall": s}`).
    Alternating the order cancels slow drift (a neighbour starting a job, a
    CPU clocking down) that a fixed order would charge to the variant that
    always runs last. One untimed warm-up round comes first, so one-time
    costs (tracing, TensorFlow's first summary write in a process, about
    0.3 s) are not charged to whichever variant meets them first.
    """
    names = list(variants)
    for name in names:
        variants[name]()  # Warm-up, not recorded.
    results: Dict[str, List[Dict[str, float]]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            results[name].append(variants[name]())
    return results


def ratios(
    results: Dict[str, List[Dict[str, float]]], name: str, base: str, key: str
) -> List[float]:
    """Per-round ratios `name / base` of measurement `key`, same round only."""
    return [
        a[key] / b[key] for a, b in zip(results[name], results[base]) if b[key] > 0
    ]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """`median [min-max]` of `values`, so the noise is visible beside the figure."""
    if not values:
        return "n/a"
    return (
        f"{fmt.format(median(values))} "
        f"[{fmt.format(min(values))}–{fmt.format(max(values))}]"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def import_recorder(module_name: str, name: str):
    """`module_name.name`, from the `keras_stepcounter` being benchmarked.

    Raises ImportError when it is missing, also when Python would find it
    only in another copy of the package (an editable install elsewhere can
    supply submodules this checkout lacks): a row must not mix two versions.
    """
    import importlib.util

    import keras_stepcounter

    package_dir = os.path.dirname(os.path.realpath(keras_stepcounter.__file__))
    parts = module_name.split(".")
    for end in range(2, len(parts) + 1):  # Look before running foreign code.
        spec = importlib.util.find_spec(".".join(parts[:end]))
        origin = os.path.realpath(spec.origin or "") if spec else ""
        if not origin.startswith(package_dir + os.sep):
            raise ImportError(
                f"{'.'.join(parts[:end])} is not in the keras_stepcounter at "
                f"{package_dir}" + (f" (only in {origin})" if spec else "")
            )
    module = importlib.import_module(module_name)
    try:
        recorder = getattr(module, name)
    except AttributeError as error:
        raise ImportError(f"{module_name} has no {name}") from error
    source = os.path.realpath(getattr(sys.modules[recorder.__module__], "__file__", ""))
    if not source.startswith(package_dir + os.sep):
        raise ImportError(
            f"{name} comes from {source}, not from the keras_stepcounter at {package_dir}"
        )
    return recorder


def machine_lines() -> List[str]:
    """The machine and versions, for the heading of the table."""
    import tensorflow as tf

    try:
        import keras

        keras_version = keras.__version__
    except ImportError:  # pragma: no cover - tf_keras only
        keras_version = "n/a"
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = cores or 0
    return [
        f"- CPU: {_cpu_model()}, {cores} logical cores ({usable} usable)",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras_version} (tf.keras: {tf.keras.__name__.split('.')[0]} "
        f"{getattr(tf.keras, '__version__', '')})",
        f"- GPU visible to TensorFlow: "
        f"{len(tf.config.list_physical_devices('GPU'))}",
    ]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def markdown_table(rows: Sequence[Row]) -> str:
    header = (
        "| benchmark | measured | compared with | result (median [min–max]) "
        "| target | verdict |"
    )
    lines = [header, "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        cells = [row.name, row.measured, row.compared_with, row.result, row.target, row.verdict]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def tiny_model(keras, steps_per_execution: int = 1):
    """The tiny model of the test suite: one Dense layer on 8 features, SGD."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=steps_per_execution)
    return model


def tiny_data(examples: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((examples, 8), dtype=np.float32)
    y = rng.random((examples, 1), dtype=np.float32)
    return x, y


TRAINING_HOOKS = (
    "on_train_begin", "on_epoch_begin", "on_train_batch_begin",
    "on_train_batch_end", "on_epoch_end", "on_train_end",
)


def timed_hooks(callback):
    """`callback`, with the wall time spent inside its training hooks summed
    into `callback.seconds_inside`, per hook into `callback.seconds_by_hook`,
    and call by call into `callback.calls[hook]` (a `perf_counter` pair
    around each call).

    An empty callback wrapped the same way measures what the wrapping and
    Keras's call of a hook cost; the difference is the callback's own cost.
    """
    import time

    callback.seconds_inside = 0.0
    callback.seconds_by_hook = dict.fromkeys(TRAINING_HOOKS, 0.0)
    callback.calls = {name: [] for name in TRAINING_HOOKS}  # Seconds, per call.
    for name in TRAINING_HOOKS:
        def timed(*args, _hook=getattr(callback, name), _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                callback.seconds_inside += seconds
                callback.seconds_by_hook[_name] += seconds
                callback.calls[_name].append(seconds)

        setattr(callback, name, timed)
    return callback


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)
