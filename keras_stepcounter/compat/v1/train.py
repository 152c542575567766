"""Alias module mirroring `tf.compat.v1.train`."""

from keras_stepcounter.compat.v1.step_counter_hook import StepCounterHook
from keras_stepcounter.compat.v1.timer import SecondOrStepTimer

__all__ = ["SecondOrStepTimer", "StepCounterHook"]
