"""Steps per second for TensorFlow 2 and Keras: TF1's StepCounterHook, ported.

* `StepCounter`: a Keras callback for `model.fit` and custom loops.
* `GraphStepCounter`: a `tf.Module` recording from inside a `tf.function`.
* `compat.v1.StepCounterHook`: the v1 hook, for `MonitoredSession` code.

The recorders are loaded on first use (PEP 562 module `__getattr__`), so
`import keras_stepcounter.tools` and `python -m keras_stepcounter report`
never import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from keras_stepcounter._version import __version__

if TYPE_CHECKING:  # For type checkers and IDEs; at run time, see __getattr__.
    from keras_stepcounter import compat
    from keras_stepcounter.callback import StepCounter
    from keras_stepcounter.graph import GraphStepCounter

__all__ = ["GraphStepCounter", "StepCounter", "__version__", "compat"]

_LAZY = {
    "StepCounter": ("keras_stepcounter.callback", "StepCounter"),
    "GraphStepCounter": ("keras_stepcounter.graph", "GraphStepCounter"),
    "compat": ("keras_stepcounter.compat", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_stepcounter' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # Later lookups skip this function.
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
