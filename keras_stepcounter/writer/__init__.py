"""The one place that writes records to TensorBoard event files.

Every recorder hands its scalars to a writer from here, which flushes them
at once so a record is on disk before training resumes, and never lets a
write failure escape into training (one `RuntimeWarning` per outage):

* `make_sink` (`StepCounter`): for `output_dir`, an `EventFileSink`
  writing event records itself (microseconds a record), keeping the
  directory's lineage index (`writer/lineage.py`, re-run steps); for a
  caller's `tf.summary` writer or the default writer, a `SummarySink`.
* `write_scalars_in_graph`: summary ops inside a `tf.function`
  (`GraphStepCounter`).
* `V1ScalarWriter`: v1 `Summary` protos through a v1 `FileWriter`
  (`compat.v1.StepCounterHook`).
"""

from keras_stepcounter.writer.checks import (
    check_output_dir,
    check_summary_writer,
    check_v1_summary_writer,
    check_writer_arguments,
    opens_own_writer,
)
from keras_stepcounter.writer.event_file import EventFileSink
from keras_stepcounter.writer.in_graph import graph_ops, write_scalars_in_graph
from keras_stepcounter.writer.summary import SummarySink, make_sink
from keras_stepcounter.writer.v1 import V1ScalarWriter

__all__ = [
    "EventFileSink",
    "SummarySink",
    "V1ScalarWriter",
    "check_output_dir",
    "check_summary_writer",
    "check_v1_summary_writer",
    "check_writer_arguments",
    "graph_ops",
    "make_sink",
    "opens_own_writer",
    "write_scalars_in_graph",
]
