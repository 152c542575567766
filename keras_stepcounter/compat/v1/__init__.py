"""TF1's `StepCounterHook` and `SecondOrStepTimer`, for `MonitoredSession` code.

Mirrors TensorFlow's aliases: `compat.v1.train.StepCounterHook` (as
`tf.compat.v1.train.StepCounterHook`) and `compat.v1.estimator.StepCounterHook`
(as the `tf.estimator.StepCounterHook` removed in TF 2.16) are this class.
"""

from keras_stepcounter.compat.v1 import estimator, train
from keras_stepcounter.compat.v1.migrate import to_step_counter
from keras_stepcounter.compat.v1.step_counter_hook import StepCounterHook, global_step_read
from keras_stepcounter.compat.v1.timer import SecondOrStepTimer

__all__ = [
    "SecondOrStepTimer",
    "StepCounterHook",
    "estimator",
    "global_step_read",
    "to_step_counter",
    "train",
]
