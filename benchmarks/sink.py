"""One record through each sink alone: µs from the scalars to a flushed file.

Interleaved rounds of timeit-style loops, each writing records of one
scalar (`global_step/sec`) at increasing steps:

* `EventFileSink.write` (the `output_dir=` sink): the prebuilt per-tag bytes
  plus packed wall time, step and value, `tf.io.TFRecordWriter.write`,
  `flush`;
* the same file writes, with the `Event` proto built and serialized for
  each record (what the prebuilt bytes save);
* `SummarySink.write` (a user's `summary_writer=`): `tf.summary.write`
  under `as_default()`, which flushes;
* the previous sink: `tf.summary.scalar` under `as_default()`, then a
  second flush;
* an `os.stat` of the event file: what checking for a removed directory at
  every record would add (the sink checks at most once a second);
* `EventFileSink.write` in a run (`begin_run` called): the same record,
  which also moves the run's last step on in the local lineage index, in
  place (`update_index`: one `pwrite`);
* one save of the lineage index (`save_latest_run`: a temporary file
  written and renamed over the index), paid at a run's start and end (and,
  for a remote directory, by a record at most once per 300 s).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import timeit
from typing import Callable, Dict, List

from benchmarks._common import Row, Settings, interleave, median, spread


def run(settings: Settings) -> List[Row]:
    import tensorflow as tf

    from keras_stepcounter.writer import EventFileSink, SummarySink
    from keras_stepcounter.writer.event_file import _file_name
    from keras_stepcounter.writer.lineage import save_latest_run

    number = 300 if settings.quick else 3_000
    steps = itertools.count(1)
    tag = "global_step/sec"

    with tempfile.TemporaryDirectory() as log_dir:
        def path(name: str) -> str:
            os.makedirs(os.path.join(log_dir, name))
            return os.path.join(log_dir, name)

        sink = EventFileSink(path("direct"))
        sink.open()
        in_run = EventFileSink(path("in_run"))
        in_run.begin_run(0)
        in_run.open()
        index_dir = path("index")
        proto_file = tf.io.TFRecordWriter(os.path.join(path("proto"), _file_name()))
        summary_sink = SummarySink(tf.summary.create_file_writer(path("summary")))
        old_writer = tf.summary.create_file_writer(path("old"))
        event_path = sink.path or ""

        def proto_write() -> None:
            event = tf.compat.v1.Event(wall_time=1.0, step=next(steps))
            value = event.summary.value.add(tag=tag)
            value.metadata.plugin_data.plugin_name = "scalars"
            value.tensor.CopyFrom(tf.make_tensor_proto(2.5, tf.float32))
            proto_file.write(event.SerializeToString())
            proto_file.flush()

        def old_write() -> None:
            with old_writer.as_default():
                tf.summary.scalar(tag, 2.5, step=next(steps))
            old_writer.flush()

        ways: Dict[str, Callable[[], object]] = {
            "direct": lambda: sink.write(next(steps), {tag: 2.5}),
            "proto": proto_write,
            "summary": lambda: summary_sink.write(next(steps), {tag: 2.5}),
            "old": old_write,
            "stat": lambda: os.stat(event_path),
            "in_run": lambda: in_run.write(next(steps), {tag: 2.5}),
            "index": lambda: save_latest_run(index_dir, 0, next(steps)),
        }
        results = interleave(
            {name: _timer(way, number) for name, way in ways.items()}, settings.rounds
        )
        sink.close()
        in_run.close()
        proto_file.close()
        old_writer.close()
    return _rows(results, number)


def _timer(way: Callable[[], object], number: int) -> Callable[[], Dict[str, float]]:
    return lambda: {"us": timeit.timeit(way, number=number) / number * 1e6}


_LABELS = {
    "direct": "`EventFileSink` (`output_dir=`): prebuilt bytes, write, flush",
    "proto": "the same file writes, `Event` proto built per record",
    "summary": "`SummarySink` (`summary_writer=`): `tf.summary.write`, flush",
    "old": "previous sink: `tf.summary.scalar` under `as_default()`, flush",
    "stat": "`os.stat` of the event file (a per-record removal check)",
    "in_run": "`EventFileSink` in a run (`begin_run`): the record, lineage step kept",
    "index": "one save of the lineage index (temporary file renamed over it)",
}


def _rows(results: Dict[str, List[Dict[str, float]]], number: int) -> List[Row]:
    direct = median([r["us"] for r in results["direct"]])
    rows = []
    for name, label in _LABELS.items():
        us = [r["us"] for r in results[name]]
        rows.append(Row(
            name=f"sink alone: {label}",
            measured=f"{spread(us, '{:.1f}')} µs per {'save' if name == 'index' else 'record'}",
            compared_with=f"{number:,} {'saves' if name == 'index' else 'records'} a round",
            result=("the sink of `output_dir=`" if name == "direct"
                    else f"{median(us) / direct:.1f}x the `EventFileSink` write"),
            target="(for comparison)",
            verdict="reference",
        ))
    return rows
