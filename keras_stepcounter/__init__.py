"""Steps per second for TensorFlow 2 and Keras: TF1's StepCounterHook, ported.

* `StepCounter`: a Keras callback for `model.fit` and custom loops.
* `GraphStepCounter`: a `tf.Module` recording from inside a `tf.function`.
* `compat.v1.StepCounterHook`: the v1 hook, for `MonitoredSession` code.
"""

from keras_stepcounter import compat
from keras_stepcounter._version import __version__
from keras_stepcounter.callback import StepCounter
from keras_stepcounter.graph import GraphStepCounter

__all__ = ["GraphStepCounter", "StepCounter", "__version__", "compat"]
