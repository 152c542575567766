"""The installed package, not the checkout, trains and records.

    python .ci/wheel_smoke.py CHECKOUT_DIR     (run from outside CHECKOUT_DIR)

.ci/run runs this in each lane that installs the built wheel: fails if
`keras_stepcounter` is imported from CHECKOUT_DIR; else trains 30 steps
with a StepCounter and checks its records (steps 11 and 21), then runs
`python -m keras_stepcounter report` on them.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras_stepcounter  # noqa: E402
from keras_stepcounter.tools.events import read_scalars  # noqa: E402


def main(checkout: Path) -> int:
    installed = Path(keras_stepcounter.__file__).resolve()
    if checkout.resolve() in installed.parents:
        print(f"keras_stepcounter was imported from the checkout: {installed}")
        return 1
    print(f"keras_stepcounter {keras_stepcounter.__version__} from {installed.parent}")

    import tensorflow as tf

    keras = tf.keras
    rng = np.random.default_rng(0)
    x = rng.random((120, 8), dtype=np.float32)
    y = rng.random((120, 1), dtype=np.float32)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with tempfile.TemporaryDirectory() as logs:
        counter = keras_stepcounter.StepCounter(every_n_steps=10, output_dir=logs)
        model.fit(x, y, batch_size=4, verbose=0, callbacks=[counter])
        counter.close()
        steps = [r.step for r in read_scalars(logs)["global_step/sec"]]
        if steps != [11, 21]:
            print(f"records at steps {steps}, expected [11, 21]")
            return 1
        report = subprocess.run(
            [sys.executable, "-m", "keras_stepcounter", "report", logs],
            capture_output=True, text=True, timeout=120,
        )
        print(report.stdout, end="")
        if report.returncode != 0 or "global_step/sec" not in report.stdout:
            print(f"report failed ({report.returncode}): {report.stderr[-2000:]}")
            return 1
    print(f"fit with StepCounter: records at steps {steps}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python .ci/wheel_smoke.py CHECKOUT_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
