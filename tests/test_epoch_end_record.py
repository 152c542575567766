"""A record on an epoch's last batch, followed by an epoch-end pause.

Found by the accuracy benchmark: the recorder's own work at such a record
(slow: the first write to a new writer takes tens of milliseconds) was left
out of the timing twice, once by re-taking the baseline after it and once
more as part of the epoch-end pause, so the next interval came out short
and its rate too high.
"""

import logging

from conftest import counter_on, steps_of, values_of

import keras_stepcounter


class _SlowLogging(logging.Handler):
    """Makes the recorder's own work (its log line) take `seconds` fake seconds."""

    def __init__(self, clock, seconds):
        super().__init__(level=logging.INFO)
        self.clock, self.seconds = clock, seconds

    def emit(self, record):
        if record.getMessage().startswith("global_step/sec: "):
            self.clock.advance(self.seconds)


def _ticker(keras, clock, per_batch, per_epoch_end):
    class Ticker(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(per_batch)

        def on_epoch_end(self, epoch, logs=None):
            clock.advance(per_epoch_end)

    return Ticker()


def test_record_on_last_batch_of_epoch_is_not_excluded_twice(
    keras, make_model, tiny_data, tmp_path, fake_clock
):
    x, y = tiny_data
    logger = logging.getLogger("tensorflow")
    handler, old_level = _SlowLogging(fake_clock, 1.0), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path)
        )
        # Epochs of 11 batches: the record at step 11 is epoch 1's last batch,
        # and the interval 11 -> 21 spans 5 s of epoch-end work. The ticker's
        # time stands for each step's, so it comes before the counter's
        # batch end.
        make_model().fit(
            x[:44], y[:44], batch_size=4, epochs=2, verbose=0,
            callbacks=[_ticker(keras, fake_clock, 0.125, 5.0), counter],
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert steps_of(tmp_path) == [11, 21]
    # 10 steps of 0.125 s each; without the fix the second was 10 / 0.25 = 40.
    assert values_of(tmp_path) == [8.0, 8.0]
