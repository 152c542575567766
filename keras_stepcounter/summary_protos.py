"""The `Summary` protos TensorBoard's plugins read, built without TensorFlow.

TensorBoard ships the `Summary` and `Event` protos it reads
(`tensorboard.compat.proto`): TensorFlow's messages, the same bytes on
disk. Every summary the counter writes besides its scalar values is built
here, once, with those: the metadata that makes a tensor a scalar (the
scalars plugin), a Markdown text (the text plugin) and a Custom Scalars
layout. The writers in `writer/` put them into event files, directly or
through `tf.summary`.
"""

from __future__ import annotations

from tensorboard.compat.proto import summary_pb2, types_pb2
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.scalar import metadata as scalar_plugin
from tensorboard.plugins.text import metadata as text_metadata

from keras_stepcounter.core.tags import BASELINE_STEP_TAG

# What makes TensorBoard show a float32 tensor summary as a scalar: the
# metadata `tf.summary.scalar` writes, serialized (`tf.summary.write`
# takes it so).
SCALAR_METADATA: bytes = scalar_plugin.create_summary_metadata(
    display_name=None, description=None
).SerializeToString()

# The same float32 scalar under a plugin name of the package's own, which
# no TensorBoard plugin claims: the value is in the event file for the
# report, and TensorBoard's dashboards leave it out (a bookkeeping value,
# not a chart: `baseline_step`).
HIDDEN_SCALAR_METADATA: bytes = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="keras_stepcounter")
).SerializeToString()


def scalar_metadata(tag: str) -> bytes:
    """The metadata a scalar of `tag` is written with: hidden for the
    report's bookkeeping tags, else the scalars plugin's."""
    return HIDDEN_SCALAR_METADATA if tag == BASELINE_STEP_TAG else SCALAR_METADATA


def text_summary(tag: str, markdown: str) -> summary_pb2.Summary:
    """What `tf.summary.text(tag, markdown)` writes: a scalar string tensor
    with the text plugin's metadata (TensorBoard renders it as Markdown)."""
    metadata = text_metadata.create_summary_metadata(display_name=None, description=None)
    return _string_summary(tag, metadata, markdown.encode("utf-8"))


def layout_summary(layout: layout_pb2.Layout) -> summary_pb2.Summary:
    """A Custom Scalars `layout`, as that plugin reads it: the serialized
    layout in a scalar string tensor, under the plugin's own tag."""
    return _string_summary(
        custom_scalar_metadata.CONFIG_SUMMARY_TAG,
        custom_scalar_metadata.create_summary_metadata(),
        layout.SerializeToString(),
    )


def _string_summary(
    tag: str, metadata: summary_pb2.SummaryMetadata, content: bytes
) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    value = summary.value.add(tag=tag, metadata=metadata)
    value.tensor.dtype = types_pb2.DT_STRING
    value.tensor.tensor_shape.SetInParent()  # Present and empty: a scalar.
    value.tensor.string_val.append(content)
    return summary
