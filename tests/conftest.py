"""Shared fixtures: tiny models, data, a fake clock, and reading records back."""

import os

# Quiet TensorFlow's C++ start-up chatter; must precede the first TF import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import logging  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_stepcounter.tools.events import read_scalars  # noqa: E402


class FakeClock:
    """A clock that moves only when told to, for exact timing logic."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def counter_on(clock, **kwargs):
    """A `StepCounter` that reads `clock` (its signature has no clock: a
    test seam is not an argument)."""
    import keras_stepcounter
    from keras_stepcounter.callback import _counters_use_clock

    with _counters_use_clock(clock):
        return keras_stepcounter.StepCounter(**kwargs)


@pytest.fixture
def fake_clock():
    return FakeClock()


@pytest.fixture(scope="session")
def keras():
    import tensorflow as tf

    return tf.keras


@pytest.fixture(scope="session")
def tiny_data():
    """120 examples of 8 features: 30 batches of 4."""
    rng = np.random.default_rng(0)
    x = rng.random((120, 8), dtype=np.float32)
    y = rng.random((120, 1), dtype=np.float32)
    return x, y


@pytest.fixture
def make_model(keras):
    """A fresh compiled one-layer model (fresh optimizer, step 0)."""

    def make(steps_per_execution: int = 1):
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        model.compile(
            optimizer="sgd", loss="mse", steps_per_execution=steps_per_execution
        )
        return model

    return make


def steps_of(log_dir, tag="global_step/sec"):
    """The steps at which `tag` was recorded in `log_dir`."""
    return [r.step for r in read_scalars(str(log_dir)).get(tag, [])]


def values_of(log_dir, tag="global_step/sec"):
    return [r.value for r in read_scalars(str(log_dir)).get(tag, [])]


class LogCapture(logging.Handler):
    """Collects formatted messages from TensorFlow's logger."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelno, record.getMessage()))


@pytest.fixture(autouse=True)
def _restore_tensorflow_logger_level():
    """A test (or a guide's code block) that sets TensorFlow's log level
    leaves it as it found it: at INFO, pytest keeps every record's log line,
    which would grow the memory tests by tens of MB."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
def tf_log():
    logger = logging.getLogger("tensorflow")
    handler = LogCapture()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
