"""`StepCounter(input_stats=True)` in a real `fit` on Keras 3 / TensorFlow:
a slow input is seen in the records, the ledger and the report.

Real time (the point is the input's real wait): a `PyDataset` whose
`__getitem__` sleeps 20 ms, on a step of about a millisecond, waits about
0.95 of the training time; in-memory arrays wait under 0.2. Asserted with
2x margins: the worker sleeps beside the step, so the truth is 1 less the
step's own time over 20 ms, and a loaded machine lengthens that step (at
5 ms a batch it took the share from 0.8 to 0.6). JAX and tf_keras run in
tests/test_input_wait_flavours.py.
"""

import numpy as np
import pytest

import keras_stepcounter
from keras_stepcounter.tools.events import read_scalars

STEPS = 160


@pytest.fixture(scope="module")
def fits(keras, tmp_path_factory):
    class SlowBatches(keras.utils.PyDataset):
        def __len__(self):
            return STEPS

        def __getitem__(self, index):
            import time

            time.sleep(0.02)
            return np.ones((4, 8), np.float32), np.ones((4, 1), np.float32)

    def fit(data):
        log_dir = tmp_path_factory.mktemp("input")
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        counter = keras_stepcounter.StepCounter(
            every_n_steps=20, output_dir=str(log_dir), input_stats=True, goodput=True)
        if data == "slow":
            model.fit(SlowBatches(), epochs=1, verbose=0, callbacks=[counter])
        else:
            x, y = np.ones((STEPS * 4, 8), np.float32), np.ones((STEPS * 4, 1), np.float32)
            model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
        counter.close()
        return log_dir, read_scalars(str(log_dir))

    return {"slow": fit("slow"), "arrays": fit("arrays")}


def test_a_slow_input_is_in_the_records_and_the_ledger(fits):
    _, scalars = fits["slow"]
    shares = [r.value for r in scalars["time_frac/input"]]
    assert shares and all(0.4 <= share <= 1.0 for share in shares), shares
    [input_secs] = scalars["goodput/input_secs"]
    [step_secs] = scalars["goodput/step_secs"]
    assert input_secs.value >= 0.4 * (input_secs.value + step_secs.value)


def test_in_memory_arrays_wait_little(fits):
    _, scalars = fits["arrays"]
    shares = [r.value for r in scalars["time_frac/input"]]
    assert shares and all(share <= 0.4 for share in shares), shares


def test_only_records_whose_interval_was_measured_carry_the_share(fits):
    _, scalars = fits["slow"]
    rates = [r.step for r in scalars["global_step/sec"]]
    shares = [r.step for r in scalars["time_frac/input"]]
    assert set(shares) <= set(rates) and len(shares) < len(rates)  # Sampled.


def test_the_report_says_the_input_dominates(fits, capsys):
    from keras_stepcounter.tools.cli import main

    log_dir, _ = fits["slow"]
    assert main(["report", str(log_dir)]) == 0
    out = capsys.readouterr().out
    assert "waits on its input" in out
