"""InputWaitMeter on real slow inputs in one Keras flavour; prints JSON.

Not a test module: `test_input_wait_flavours.py` and
`benchmarks/input_wait.py` run it in a fresh process per flavour (Keras 3
on TensorFlow, tf_keras via `TF_USE_LEGACY_KERAS=1`, Keras 3 on JAX via
`KERAS_BACKEND=jax`), since the flavour is fixed when Keras is first
imported.

    python3 tests/input_wait_checks.py [--steps N] [--sleep SECS] [--window-calls N] [--hidden N]
    python3 tests/input_wait_checks.py --cost --steps N [--rounds R]

For each input kind it fits a one-Dense-layer model (on JAX after two
hidden layers of 1024, for a ~1 ms step as on TensorFlow) with a meter attached
by a callback (as the counter attaches it) and reports the meter's share
over the fit next to two truths, from batch-end clock reads: `1 - c / s`,
where `s` is the median step time with this input and `c` the median step
time on in-memory arrays (what a step costs without waiting), and, for the
slow inputs, `sleep / s`, the known sleep's share of a step. The first
assumes a step's own work takes as long as without the slow input; where
the input's Python threads slow it (the GIL, two shared cores) the true
share is lower. The second is the true share where the batch is fetched
in the step (JAX, one worker), a bound from above where it is prefetched
while the step runs (tf.data on TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

ON_JAX = os.environ.get("KERAS_BACKEND") == "jax"
ON_TORCH = os.environ.get("KERAS_BACKEND") == "torch"
if ON_TORCH:
    # PyTorch before TensorFlow: the other order crashes at torch's import.
    import keras  # noqa: E402, F401

import tensorflow as tf  # noqa: E402

from keras_stepcounter.input_wait import InputWaitMeter  # noqa: E402

keras = tf.keras
BATCH = 4
IN_MEMORY = ("numpy", "tf.data")
# JAX: two hidden layers of 1024 bring its step to about 1 ms, the
# issue's step (Keras 3 and tf_keras on TensorFlow: the bare layer's).
HIDDEN = 1024 if ON_JAX else 0


class MeterCallback(keras.callbacks.Callback):
    """Attaches a meter for the fit and keeps the batch-end clock reads."""

    def __init__(self, meter: InputWaitMeter) -> None:
        super().__init__()
        self.meter = meter
        self.attached = False
        self.batch_ends: List[float] = []
        self.began = self.ended = 0.0

    def on_train_begin(self, logs: Any = None) -> None:
        self.attached = self.meter.attach(self.model, self)
        self.began = self.meter.clock()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batch_ends.append(self.meter.clock())

    def on_train_end(self, logs: Any = None) -> None:
        self.ended = self.meter.clock()
        self.meter.detach()


def make_inputs(steps: int, sleep: float) -> Dict[str, Callable[[], Dict[str, Any]]]:
    """Each input kind: a function giving `fit`'s keyword arguments."""
    rng = np.random.default_rng(0)
    x = rng.random((steps * BATCH, 8), dtype=np.float32)
    y = rng.random((steps * BATCH, 1), dtype=np.float32)

    def slow_numpy(xb: Any, yb: Any) -> Any:
        time.sleep(sleep)
        return xb, yb

    # tf_keras has no PyDataset: its Sequence is the same idea, with the
    # workers given to fit().
    base = getattr(keras.utils, "PyDataset", None) or keras.utils.Sequence

    class SlowPyDataset(base):  # type: ignore[misc, valid-type]
        # `workers` threads each sleep `workers` times longer: one batch
        # every `sleep` seconds, whatever the number of workers.
        def __init__(self, threads: int = 1, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.sleep = sleep * threads

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> Any:
            time.sleep(self.sleep)
            rows = slice(index * BATCH, (index + 1) * BATCH)
            return x[rows], y[rows]

    def generator() -> Any:
        while True:
            for index in range(steps):
                time.sleep(sleep)
                rows = slice(index * BATCH, (index + 1) * BATCH)
                yield x[rows], y[rows]

    def sliced() -> Any:
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)

    def py_function_map() -> Any:
        def slow(xb: Any, yb: Any) -> Any:
            out = tf.py_function(slow_numpy, [xb, yb], [tf.float32, tf.float32])
            return tf.ensure_shape(out[0], [None, 8]), tf.ensure_shape(out[1], [None, 1])

        return sliced().map(slow)

    def numpy_function_map() -> Any:
        def slow(xb: Any, yb: Any) -> Any:
            out = tf.numpy_function(slow_numpy, [xb, yb], [tf.float32, tf.float32])
            return tf.ensure_shape(out[0], [None, 8]), tf.ensure_shape(out[1], [None, 1])

        return sliced().map(slow)

    def pydataset(workers: int) -> Dict[str, Any]:
        if base is not getattr(keras.utils, "PyDataset", None):  # tf_keras: workers >= 1
            return {"x": SlowPyDataset(max(workers, 1)), "workers": max(workers, 1), "use_multiprocessing": False}
        if workers == 0:  # Keras 3's default
            return {"x": SlowPyDataset()}
        return {"x": SlowPyDataset(workers, workers=workers, use_multiprocessing=False)}

    return {
        "numpy": lambda: {"x": x, "y": y, "batch_size": BATCH},
        "tf.data": lambda: {"x": sliced()},
        "tf.data+py_function": lambda: {"x": py_function_map()},
        "tf.data+numpy_function": lambda: {"x": numpy_function_map()},
        "PyDataset": lambda: pydataset(0),
        "PyDataset(workers=2)": lambda: pydataset(2),
        "generator": lambda: {"x": generator(), "steps_per_epoch": steps},
    }


def make_model(hidden: int) -> Any:
    """One Dense layer, after two hidden ones of `hidden` units: on JAX the
    bare layer's step is about 40 µs, where iterating even in-memory
    arrays is a large share of it; the hidden layers give every backend a
    step closer to the issue's ~1 ms."""
    layers = [keras.Input((8,))]
    if hidden:
        layers.append(keras.layers.Dense(hidden, activation="relu"))
        layers.append(keras.layers.Dense(hidden, activation="relu"))
    model = keras.Sequential([*layers, keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    return model


class IdleAtBatchBegin(keras.callbacks.Callback):
    """Sleeps `sleep` seconds at each batch's begin: the training thread
    idles as long as a slow input makes it wait, with no input at all."""

    def __init__(self, sleep: float) -> None:
        super().__init__()
        self.sleep = sleep
        self.slept: List[float] = []
        self.batch_ends: List[float] = []

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        began = time.perf_counter()
        time.sleep(self.sleep)
        self.slept.append(time.perf_counter() - began)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batch_ends.append(time.perf_counter())


def idle_step_secs(model: Any, kwargs: Dict[str, Any], sleep: float) -> Optional[float]:
    """A step's own time on in-memory arrays when the training thread idles
    `sleep` seconds before each step: the mean step less the mean sleep,
    after the fit's first quarter. Longer than the step run back to back
    (thread pools park, caches cool, other jobs take the cores), and a
    slow input's step pays it as well, waiting or not."""
    idle = IdleAtBatchBegin(sleep)
    model.fit(**kwargs, epochs=1, verbose=0, callbacks=[idle])
    quarter = len(idle.batch_ends) // 4
    step = _mean_step(idle.batch_ends[quarter:])
    slept = idle.slept[quarter + 1:]
    return step - sum(slept) / len(slept) if step is not None and slept else None


def fit_once(model: Any, kwargs: Dict[str, Any], meter: InputWaitMeter) -> Dict[str, Any]:
    """One fit with the meter attached; the meter's share and the step
    times over the same span (like with like).

    The compared span is what the meter measured: on TensorFlow its
    profiler window(s) (the first from call 10, past tracing); on JAX and
    PyTorch, where every batch is measured, the fit from its first
    quarter's end (the start holds the iterator's creation and the first
    calls, which no truth below sees).
    `step_secs` is the mean step time (span over its steps, not a median: two workers deliver batches in pairs, one long wait
    and one short) and `calm_step_secs` the mean step time outside the
    span's windows, after the fit's first quarter (unprofiled: the step
    time a user sees).
    """
    callback = MeterCallback(meter)
    started = time.perf_counter()
    model.fit(**kwargs, epochs=1, verbose=0, callbacks=[callback])
    fit_secs = time.perf_counter() - started
    ends = callback.batch_ends
    whole = meter.waits_between(callback.began, callback.ended)
    steady = ends[len(ends) // 4] if ends else callback.began
    spans = list(whole.measured) if whole else []  # TensorFlow: the windows.
    if (ON_JAX or ON_TORCH) and ends:  # Every batch measured.
        spans = [(steady, ends[-1])]
    compared = [meter.waits_between(a, b) for a, b in spans]
    measured = sum(w.measured_secs for w in compared if w is not None)
    waited = sum(w.wait_secs for w in compared if w is not None)
    # One wait a step (one IteratorGetNext a call; one next() a batch).
    stepped = sum(len(w.waits) for w in compared if w is not None)
    outside = [t for t in ends[len(ends) // 4:] if not any(a < t <= b for a, b in spans)]
    return {
        "attached": callback.attached,
        "steps": len(ends),
        "step_secs": measured / stepped if stepped else None,
        "calm_step_secs": _mean_step(outside if len(outside) > 4 else ends[len(ends) // 4:]),
        "share": waited / measured if measured else None,
        "fit_share": None if whole is None else whole.share,
        "measured_secs": measured,
        "wait_secs": waited,
        "waits": None if whole is None else len(whole.waits),
        "fit_secs": fit_secs,
        "restored": not type(model.train_function).__name__.startswith("_TrainFunction"),
    }


def _mean_step(ends: List[float]) -> Optional[float]:
    """The mean step time over consecutive batch ends (None for too few)."""
    if len(ends) < 5:
        return None
    return (ends[-1] - ends[0]) / (len(ends) - 1)


class CostMeter(InputWaitMeter):
    """A meter at its defaults that also times itself: the time it spends
    around each `train_function` call (wrapper, window start, stop and
    parse) and each call's own length, flagged when inside a window."""

    def __init__(self) -> None:
        super().__init__(time.perf_counter)
        self.own_secs = 0.0
        self.calls: List[Any] = []  # (call secs, inside a window)

    def attach(self, model: Any, callback: Any = None) -> bool:
        attached = super().attach(model, callback)
        if self._wrapper is not None:
            self._wrapper.call = self._timed(self._wrapper.call)
        return attached

    def _timed(self, call: Any) -> Any:
        clock = self.clock

        def timed_call(original: Any, args: Any, kwargs: Any) -> Any:
            entered = clock()
            inner = 0.0

            def timed(*a: Any, **k: Any) -> Any:
                nonlocal inner
                began = clock()
                try:
                    return original(*a, **k)
                finally:
                    inner = clock() - began
                    self.calls.append((inner, self._window is not None))

            try:
                return call(timed, args, kwargs)
            finally:
                self.own_secs += clock() - entered - inner

        return timed_call


def jax_us_per_batch(number: int = 200_000) -> float:
    """µs the JAX path adds to each batch: `train_function(state, iterator)`
    through the meter's wrapper and timing proxy, against the bare function
    on the bare iterator (pure Python, the same on every backend; timed
    apart from fit, where a few µs are lost in a step's noise)."""
    import timeit

    from keras_stepcounter.input_wait import _TrainFunctionWrapper

    def train_function(state: Any, iterator: Any) -> Any:
        return next(iterator), state

    meter = InputWaitMeter(time.perf_counter)
    meter._wrapper = wrapper = _TrainFunctionWrapper(train_function, meter._call_jax)
    iterator = iter(range(10**9))
    bare = min(timeit.repeat(lambda: train_function(0, iterator), number=number, repeat=5))
    wrapped = min(timeit.repeat(lambda: wrapper(0, iterator), number=number, repeat=5))
    return (wrapped - bare) / number * 1e6


def torch_us_per_batch(number: int = 100_000) -> float:
    """µs the PyTorch path adds to each batch: a callback's batch-begin and
    batch-end hooks through the meter's gap timer, against the bare hooks
    (pure Python, timed apart from fit as on JAX)."""
    import timeit

    from keras_stepcounter.input_wait import _BatchGapTimer, _SpanList

    class Hooks:
        def on_train_batch_begin(self, batch: Any, logs: Any = None) -> None:
            pass

        def on_train_batch_end(self, batch: Any = None, logs: Any = None) -> None:
            pass

        def on_epoch_end(self, epoch: Any, logs: Any = None) -> None:
            pass

    def batch(hooks: Any) -> None:
        hooks.on_train_batch_begin(0)
        hooks.on_train_batch_end(0)

    bare, timed = Hooks(), Hooks()
    _BatchGapTimer(timed, time.perf_counter, _SpanList())
    bare_secs = min(timeit.repeat(lambda: batch(bare), number=number, repeat=5))
    timed_secs = min(timeit.repeat(lambda: batch(timed), number=number, repeat=5))
    return (timed_secs - bare_secs) / number * 1e6


def cost(steps: int, rounds: int, hidden: int = 0) -> Dict[str, Any]:
    """The meter's cost at its defaults in a fit of `steps` steps on
    in-memory arrays, `rounds` times: with `hidden` 0 the bare layer (the
    cheapest step: the worst case), else `make_model(hidden)`."""
    model = make_model(hidden)
    rng = np.random.default_rng(0)
    x = rng.random((steps * BATCH, 8), dtype=np.float32)
    y = rng.random((steps * BATCH, 1), dtype=np.float32)
    model.fit(x[:BATCH * 20], y[:BATCH * 20], batch_size=BATCH, verbose=0)  # tracing
    figures: List[Dict[str, float]] = []
    for _ in range(rounds):
        meter = CostMeter()
        callback = MeterCallback(meter)
        started = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback])
        fit_secs = time.perf_counter() - started
        outside = [secs for secs, inside in meter.calls if not inside]
        baseline = float(np.median(outside)) if outside else 0.0
        # The profiler's slowdown: each windowed call's excess over a call outside.
        excess = sum(max(0.0, secs - baseline) for secs, inside in meter.calls if inside)
        windows = sum(
            1 for (_, inside), (_, before) in zip(meter.calls, [(0.0, False)] + meter.calls)
            if inside and not before
        )
        figures.append({
            "fit_secs": fit_secs,
            "own_secs": meter.own_secs,
            "window_excess_secs": excess,
            "windows": windows,
            "cost_frac": (meter.own_secs + excess) / (fit_secs - meter.own_secs - excess),
            "call_secs": baseline,
        })
    return {
        "rounds": figures,
        "jax_us_per_batch": jax_us_per_batch() if ON_JAX else None,
        "torch_us_per_batch": torch_us_per_batch() if ON_TORCH else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--sleep", type=float, default=0.005)
    parser.add_argument("--window-calls", type=int, default=30)
    parser.add_argument("--only", action="append")
    parser.add_argument(
        "--hidden", type=int, default=HIDDEN, help="width of the two hidden layers (0: none)"
    )
    parser.add_argument("--cost", action="store_true", help="measure the meter's cost instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--cost-hidden", type=int, default=0, help="--cost: width of the hidden layers (0: none)"
    )
    args = parser.parse_args()
    if args.cost:
        print("RESULTS " + json.dumps(cost(args.steps, args.rounds, args.cost_hidden)))
        return
    model = make_model(args.hidden)
    inputs = make_inputs(args.steps, args.sleep)
    results: Dict[str, Any] = {"keras": keras.__version__ if hasattr(keras, "__version__") else ""}
    names = args.only or list(inputs)
    if "numpy" not in names:
        names = ["numpy"] + names
    computes: Dict[str, Optional[float]] = {}
    idles: Dict[str, Optional[float]] = {}
    for name in names:
        meter = InputWaitMeter(time.perf_counter, window_calls=args.window_calls)
        fit_once(model, inputs[name](), meter)  # Warm-up: tracing, thread pools.
        # What a step costs when it never waits (on arrays, unprofiled),
        # back to back and after idling as long as the slow inputs make it
        # wait, measured just before: the shared machine's load drifts.
        idles[name] = idle_step_secs(model, inputs["numpy"](), args.sleep)
        if name != "numpy":
            meter = InputWaitMeter(time.perf_counter, window_calls=args.window_calls)
            computes[name] = fit_once(model, inputs["numpy"](), meter)["calm_step_secs"]
        meter = InputWaitMeter(time.perf_counter, window_calls=args.window_calls)
        results[name] = fit_once(model, inputs[name](), meter)
    computes["numpy"] = reference = results["numpy"]["calm_step_secs"]
    for name in names:
        # Load from other jobs only ever slows a step: the faster of two
        # reference fits is the nearer to a step's own cost.
        computes[name] = min(filter(None, (computes[name], reference)), default=None)
        idles[name] = min(filter(None, (idles[name], idles["numpy"])), default=None)
    for name in names:
        step, compute, share = results[name]["step_secs"], computes[name], results[name]["share"]
        results[name]["compute_secs"] = compute
        idle = idles[name]
        results[name]["idle_compute_secs"] = idle
        # The wait's truth: the step's time less what the step costs after
        # idling as long (for the slow inputs; the in-memory ones do not idle).
        slow = name not in IN_MEMORY
        results[name]["wait_truth"] = (
            max(0.0, 1.0 - idle / step) if slow and step and idle else None
        )
        # The step's own work (its time less its wait), to set against
        # `compute`: where it is longer, the input slowed the step itself.
        results[name]["own_secs"] = step * (1 - share) if step and share is not None else None
        results[name]["truth"] = max(0.0, 1.0 - compute / step) if step and compute else None
        # The known sleep's share of a step (a batch every `sleep` seconds);
        # none for two workers, whose queue fills before the first step.
        slow = name not in IN_MEMORY and name != "PyDataset(workers=2)"
        results[name]["sleep_share"] = min(1.0, args.sleep / step) if slow and step else None
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main()
