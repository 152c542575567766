"""Alias module mirroring `tf.estimator` (removed from TensorFlow in 2.16)."""

from keras_stepcounter.compat.v1.step_counter_hook import StepCounterHook
from keras_stepcounter.compat.v1.timer import SecondOrStepTimer

__all__ = ["SecondOrStepTimer", "StepCounterHook"]
