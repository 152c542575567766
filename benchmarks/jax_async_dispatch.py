"""What the counter's `async_safe = False` costs a Keras `fit` on JAX (CPU).

Keras 3 (from 3.6) on JAX runs `on_train_batch_end` on a thread pool when
every callback in `callbacks=` declares `async_safe = True` (or does not
override the batch-end hooks); one callback that does not turns it off for
the whole list, and batch ends then run on the training thread, which waits
for each step's logs. The counter is such a callback. Three variants of the
same `fit` are timed in interleaved rounds (after an untimed warm-up round):

* `async-safe`: one callback declaring `async_safe = True` (Keras dispatches
  batch ends on its thread pool);
* `+ empty sync callback`: the same and a callback that overrides
  `on_train_batch_end` with nothing (what turning the pool off costs alone);
* `+ StepCounter`: the same and `StepCounter(every_n_steps=100,
  output_dir=...)` (the pool off, and the counter's own work).

Each figure is microseconds of wall time per step, median [min–max] over the
rounds, and the median per-round ratio to `async-safe`. Run it alone (it
sets `KERAS_BACKEND=jax` before Keras is imported):

    python3 benchmarks/jax_async_dispatch.py [--rounds 9] [--steps 1000]
        [--batch 4] [--hidden 0]

The default model is the test suite's (one Dense layer on 8 features, batch
4: a step as cheap as Keras makes it); `--hidden N --batch B` adds a hidden
layer of N units and a larger batch, for a step with work to overlap.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import interleave, median, ratios, spread, tiny_data  # noqa: E402

def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=0,
                        help="units of a hidden Dense layer (0: the tiny model)")
    args = parser.parse_args(argv)

    import keras

    import keras_stepcounter

    class AsyncSafe(keras.callbacks.Callback):
        async_safe = True

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            pass

    class EmptySync(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            pass

    x, y = tiny_data(args.steps * args.batch)
    log_dir = tempfile.mkdtemp()
    variants: Dict[str, List[Any]] = {
        "async-safe": [AsyncSafe()],
        "+ empty sync callback": [AsyncSafe(), EmptySync()],
        "+ StepCounter": [
            AsyncSafe(),
            keras_stepcounter.StepCounter(every_n_steps=100, output_dir=log_dir),
        ],
    }
    for name, callbacks in variants.items():
        dispatch = keras.callbacks.CallbackList(callbacks)._async_train
        print(f"{name}: Keras dispatches batch ends asynchronously: {dispatch}",
              file=sys.stderr)

    def timed_fit(callbacks: List[Any]) -> Callable[[], Dict[str, float]]:
        hidden = [keras.layers.Dense(args.hidden, activation="relu")] if args.hidden else []
        model = keras.Sequential([keras.Input((8,)), *hidden, keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")

        def fit() -> Dict[str, float]:
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0,
                      shuffle=False, callbacks=callbacks)
            return {"us_per_step": (time.perf_counter() - start) / args.steps * 1e6}

        return fit

    results = interleave(
        {name: timed_fit(callbacks) for name, callbacks in variants.items()}, args.rounds
    )
    model = f"Dense({args.hidden}) and Dense(1)" if args.hidden else "Dense(1)"
    print(f"Keras {keras.__version__}, JAX backend, CPU; {model} on 8 features, "
          f"batch {args.batch}, {args.steps} steps a fit, {args.rounds} rounds")
    print("| variant | µs per step, median [min–max] | ratio to async-safe, median [min–max] |")
    print("| --- | --- | --- |")
    for name in variants:
        per_step = [r["us_per_step"] for r in results[name]]
        ratio = ratios(results, name, "async-safe", "us_per_step")
        print(f"| {name} | {spread(per_step, '{:.1f}')} | {spread(ratio, '{:.3f}')} |")
    return 0 if median([r["us_per_step"] for r in results["async-safe"]]) > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
