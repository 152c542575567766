"""Compatibility APIs for code written against older TensorFlow, as in `tf.compat`."""

from keras_stepcounter.compat import v1

__all__ = ["v1"]
