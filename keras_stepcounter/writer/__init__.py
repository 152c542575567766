"""The one place that writes records to TensorBoard event files.

Every writer flushes each record, so it is on disk before training
resumes, and never lets a write failure escape into training (one
`RuntimeWarning` per outage; docs/guarantees.md):

* `make_sink` (`StepCounter`): an `EventFileSink` for `output_dir`, else a
  `SummarySink` for a `tf.summary` writer (writer/summary.py).
* `writer/in_graph.py`: summary ops inside a `tf.function` (`GraphStepCounter`).
* `V1ScalarWriter`: v1 `Summary` protos (`compat.v1.StepCounterHook`).
"""

from keras_stepcounter.writer.checks import check_writer_arguments, opens_own_writer
from keras_stepcounter.writer.event_file import EventFileSink
from keras_stepcounter.writer.summary import SummarySink, make_sink
from keras_stepcounter.writer.v1 import V1ScalarWriter

__all__ = [
    "EventFileSink",
    "SummarySink",
    "V1ScalarWriter",
    "check_writer_arguments",
    "make_sink",
    "opens_own_writer",
]
