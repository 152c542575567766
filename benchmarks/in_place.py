"""The headline: what the counter costs inside a real `fit`, timed in place.

A tiny model (one Dense layer on 8 features, batch 4: about a millisecond a
step) is fitted with three callbacks: an empty one, the one measured, and
another empty one, each with a clock around every training hook
(`timed_hooks`). The measured callback's cost is its time inside its hooks
minus the mean of the empty ones' (what Keras's call of a hook and the
clock pair cost; one on each side, as the first callback after a step and
the last before the next meet different caches). Every variant runs once a
round, the order alternating (interleaved rounds), and each figure is the
median over rounds. Inside one fit the two callbacks see the same batches,
so this is far less noisy than comparing two whole fits (about ±15% a pair
on a shared machine).

Rows:
* `StepCounter(every_n_steps=100, output_dir=...)`, as % of the fit's time
  (all hooks, over the fit without the counter's own time) and µs per
  record: step read, rate, write, flush, log line. At every_n_steps=100,
  the batch hooks' time beyond their median call (a quiet batch), less the
  empty callback's, over the records; at every_n_steps=1 (every call
  records), the batch hooks' time less the empty callback's and the hot
  path, over the records.
* `StepCounter(every_n_steps=1)`: a record every step.
* Keras's `TensorBoard(update_freq=100, write_steps_per_second=True)`.
* The floor: a bare record every 100 steps, with none of the counter's
  logic (the raw step read, the rate, the prebuilt `Event` bytes,
  `tf.io.TFRecordWriter` write and flush), per record as for the counter.
  No record of the counter's can cost less than this on the machine.
* One event write and flush to local disk, in place: the floor's
  `write` + `flush` alone (median over its records), the part of every
  record that the disk decides (a slow disk makes it the counter's own
  work, never a stall).
* The step read alone, in place: a callback reading `iterations.numpy()`
  on every batch, and one reading it through `tf.raw_ops.ReadVariableOp`
  (median call, less the empty callback's).
* The hot path: µs per quiet batch (no record can be due) above the empty
  callback: the median call of each batch hook of a counter whose trigger
  never comes, less the empty callback's.
* What a fit pays per batch end: the median `on_train_batch_end` call of
  such a counter (default options, and with `step_time_stats`, `goodput`
  and `stall_secs` on), beside the empty callback's median timed the same
  way, as absolute figures.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Dict, List

from benchmarks._common import (
    Row,
    Settings,
    interleave,
    median,
    spread,
    timed_hooks,
    tiny_data,
    tiny_model,
    verdict,
)

BATCH_SIZE = 4
TARGET_EVERY_100_PERCENT = 0.5
TARGET_EVERY_1_PERCENT = 9.0
TARGET_RECORD_US = 110.0
BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end")
# A batch hook's median call is a quiet batch (no record, no read) for the
# counters measured here, except every_n_steps=1, whose every call records.
NEVER = 10**12  # every_n_steps for a counter that only runs its hot path.


def run(settings: Settings) -> List[Row]:
    import tensorflow as tf

    import keras_stepcounter
    from keras_stepcounter.tools.events import read_scalars
    from keras_stepcounter.writer.event_file import _file_name
    from keras_stepcounter.writer.event_records import file_version_record, scalar_record

    keras: Any = tf.keras
    steps = 300 if settings.quick else 1_500
    x, y = tiny_data(steps * BATCH_SIZE)
    model = tiny_model(keras)
    model.fit(x, y, batch_size=BATCH_SIZE, verbose=0)  # Trace and warm up.

    class Empty(keras.callbacks.Callback):
        pass

    def counter(every: int, **options: Any) -> Callable[[str], Any]:
        return lambda d: keras_stepcounter.StepCounter(
            every_n_steps=every, output_dir=d, **options)

    def tensorboard(d: str) -> Any:
        return keras.callbacks.TensorBoard(d, update_freq=100, write_steps_per_second=True)

    iterations = model.optimizer.iterations
    variable = iterations if isinstance(iterations, tf.Variable) else iterations.value
    handle, read_op = variable.handle, tf.raw_ops.ReadVariableOp

    class ReadNumpy(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step = int(iterations.numpy())

    class ReadRaw(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step = int(read_op(resource=handle, dtype=tf.int64).numpy())

    class BareRecord(keras.callbacks.Callback):
        """The floor: what any record costs, with no logic around it."""

        def __init__(self, directory: str) -> None:
            super().__init__()
            os.makedirs(directory)
            self.file = tf.io.TFRecordWriter(os.path.join(directory, _file_name()))
            self.file.write(file_version_record(time.time()))
            self.batches, self.last_step, self.last_time = 0, 0, time.perf_counter()
            self.write_secs: List[float] = []

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.batches += 1
            if self.batches % 100:
                return
            step = int(read_op(resource=handle, dtype=tf.int64))
            now = time.perf_counter()
            rate = (step - self.last_step) / (now - self.last_time)
            record = scalar_record(time.time(), step, "global_step/sec", rate)
            began = time.perf_counter()
            self.file.write(record)
            self.file.flush()
            self.write_secs.append(time.perf_counter() - began)
            self.last_step, self.last_time = step, time.perf_counter()

        def close(self) -> None:
            self.file.close()

    def records(directory: str) -> int:
        return sum(len(r) for r in read_scalars(directory).values())

    with tempfile.TemporaryDirectory() as log_dir:
        runs = iter(range(10**9))

        def variant(make: Callable[[str], Any]) -> Callable[[], Dict[str, float]]:
            def measure() -> Dict[str, float]:
                directory = os.path.join(log_dir, str(next(runs)))
                # Empty callbacks on both sides: the first after the step
                # and the last before the next one meet different caches.
                before, measured, after = (
                    timed_hooks(Empty()), timed_hooks(make(directory)), timed_hooks(Empty())
                )
                start = time.perf_counter()
                model.fit(x, y, batch_size=BATCH_SIZE, verbose=0,
                          callbacks=[before, measured, after])
                wall = time.perf_counter() - start
                close = getattr(measured, "close", None)
                if callable(close):
                    close()

                def above_empty(stat: Callable[[Any], float]) -> float:
                    return stat(measured) - (stat(before) + stat(after)) / 2

                own = above_empty(lambda c: c.seconds_inside)
                return {
                    "batch_end": median(measured.calls["on_train_batch_end"]),
                    "empty_batch_end": (median(before.calls["on_train_batch_end"])
                                        + median(after.calls["on_train_batch_end"])) / 2,
                    "own": own,
                    "rest": wall - own,
                    "quiet_batch": above_empty(
                        lambda c: sum(median(c.calls[h]) for h in BATCH_HOOKS)
                    ),
                    "batch_own": above_empty(
                        lambda c: sum(c.seconds_by_hook[h] for h in BATCH_HOOKS)
                    ),
                    "beyond_quiet": above_empty(_beyond_median),
                    "records": records(directory),
                    "write_us": median(getattr(measured, "write_secs", None) or [0.0]) * 1e6,
                }

            return measure

        results = interleave(
            {
                "every100": variant(counter(100)),
                "every1": variant(counter(1)),
                "quiet": variant(counter(NEVER)),
                "quiet_all": variant(counter(
                    NEVER, step_time_stats=True, goodput=True, stall_secs=60.0)),
                "tb100": variant(tensorboard),
                "floor": variant(BareRecord),
                "read_numpy": variant(lambda d: ReadNumpy()),
                "read_raw": variant(lambda d: ReadRaw()),
            },
            settings.rounds,
        )
    return _rows(results, steps, settings.rounds)


def _beyond_median(callback: Any) -> float:
    """Seconds in the batch hooks beyond their median call, summed: the
    extra work of the calls that did more than a quiet batch (the records,
    and the step reads of batches where a record could be due)."""
    total = 0.0
    for hook in BATCH_HOOKS:
        calls = callback.calls[hook]
        typical = median(calls)
        total += sum(calls) - typical * len(calls)
    return total


def _rows(results: Dict[str, List[Dict[str, float]]], steps: int, rounds: int) -> List[Row]:
    hot_us = [r["quiet_batch"] * 1e6 for r in results["quiet"]]

    def percent(name: str) -> List[float]:
        return [100 * r["own"] / r["rest"] for r in results[name]]

    hot = median(hot_us)

    def per_record_us(name: str) -> List[float]:
        if name == "every1":  # Every call records: all of it, less the hot path.
            return [r["batch_own"] * 1e6 / r["records"] - hot for r in results[name]]
        return [r["beyond_quiet"] * 1e6 / r["records"] for r in results[name] if r["records"]]

    fit_ms = median([r["rest"] for r in results["quiet"]]) / steps * 1e3
    context = f"fit {steps:,} steps, {fit_ms:.2f} ms/step; {rounds} interleaved rounds"
    rows = []
    for name, label, target in [
        ("every100", "`StepCounter(every_n_steps=100, output_dir=...)`",
         TARGET_EVERY_100_PERCENT),
        ("every1", "`StepCounter(every_n_steps=1, output_dir=...)`",
         TARGET_EVERY_1_PERCENT),
    ]:
        share, record = percent(name), per_record_us(name)
        records = median([r["records"] for r in results[name]])
        rows.append(Row(
            name=f"in place: {label}",
            measured=f"{spread(share, '{:.2f}')} % of fit time",
            compared_with=context,
            result=f"{spread(record, '{:.0f}')} µs per record ({records:.0f} records a fit)",
            target=f"≤ {target} % of fit; ≤ {TARGET_RECORD_US:.0f} µs a record",
            verdict=verdict(median(share) <= target and median(record) <= TARGET_RECORD_US),
        ))
    floor, record = per_record_us("floor"), median(per_record_us("every100"))
    rows.append(Row(
        name="in place: the floor, a bare record every 100 steps (raw step read, rate, "
             "prebuilt `Event`, `tf.io.TFRecordWriter` write and flush; no other logic)",
        measured=f"{spread(floor, '{:.0f}')} µs per record",
        compared_with=context,
        result=f"the counter's record at every_n_steps=100: {record:.0f} µs, "
               f"{record / median(floor):.1f}x the floor",
        target="(for comparison)",
        verdict="reference",
    ))
    write_us = [r["write_us"] for r in results["floor"]]
    rows.append(Row(
        name="in place: one event write + flush to local disk (the floor's record, "
             "`tf.io.TFRecordWriter` write and flush alone)",
        measured=f"{spread(write_us, '{:.1f}')} µs per record",
        compared_with=context,
        result=f"{median(write_us) / record:.0%} of the counter's record at every_n_steps=100",
        target="(for comparison)",
        verdict="reference",
    ))
    tb_share = percent("tb100")
    rows.append(Row(
        name="in place: Keras `TensorBoard(update_freq=100, write_steps_per_second=True)`",
        measured=f"{spread(tb_share, '{:.2f}')} % of fit time",
        compared_with=context,
        result=f"{spread([r['own'] / steps * 1e6 for r in results['tb100']], '{:.1f}')} "
               "µs per batch, all its hooks",
        target="(for comparison)",
        verdict="reference",
    ))
    rows.append(Row(
        name="in place: hot path, µs per quiet batch above an empty callback",
        measured=f"{spread(hot_us, '{:.2f}')} µs per batch",
        compared_with=context,
        result=f"{spread(percent('quiet'), '{:.3f}')} % of fit time",
        target="(for comparison)",
        verdict="reference",
    ))
    for name, label in [("quiet", "default options"),
                        ("quiet_all", "`step_time_stats`, `goodput`, `stall_secs` on")]:
        ours = [r["batch_end"] * 1e6 for r in results[name]]
        empty = [r["empty_batch_end"] * 1e6 for r in results[name]]
        rows.append(Row(
            name=f"in place: median `on_train_batch_end` in a real fit, {label}",
            measured=f"{spread(ours, '{:.2f}')} µs per call",
            compared_with=f"an empty callback timed the same way: {spread(empty, '{:.2f}')} µs",
            result=f"+{median(ours) - median(empty):.2f} µs per batch end",
            target="≤ +1 µs (issue 27)",
            verdict=verdict(median(ours) - median(empty) <= 1.0),
        ))
    numpy_us, raw_us = [
        [r["quiet_batch"] * 1e6 for r in results[name]]
        for name in ("read_numpy", "read_raw")
    ]
    rows.append(Row(
        name="in place: step read, `iterations.numpy()` every batch",
        measured=f"{spread(numpy_us, '{:.1f}')} µs per read",
        compared_with="`tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.int64)` + numpy",
        result=f"{spread(raw_us, '{:.1f}')} µs per read",
        target="(for comparison)",
        verdict="reference",
    ))
    return rows
