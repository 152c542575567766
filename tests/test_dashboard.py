"""The counter's TensorBoard dashboard: the Custom Scalars layout and the
goodput ledger's Markdown table, built without TensorFlow, and written by
each sink (the real TensorBoard server reads them in test_tensorboard.py)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import FakeClock
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary

import keras_stepcounter
from keras_stepcounter.core import tags as T
from keras_stepcounter.core.ledger_table import ledger_table, share_text
from keras_stepcounter.core.options import RecorderOptions
from keras_stepcounter.dashboard import CATEGORY, DashboardTags, layout
from keras_stepcounter.summary_protos import layout_summary, text_summary
from keras_stepcounter.tools.events import read_scalars
from keras_stepcounter.writer import EventFileSink, SummarySink, make_sink

REPO = Path(__file__).resolve().parents[1]
CONFIG_TAG = "custom_scalars__config__"
RATES = "steps per second"
EXAMPLES = "examples per second"
MFU = "mfu (model FLOPs utilization)"
BAND = "step time (s): p50 within p10-p90"
TAIL = "step time tail (s): p99, max"
GOODPUT = "goodput (seconds per fit)"
INPUT = "input wait (share of each interval)"
# The ledger's buckets without input: written only with input_stats=True.
WITHOUT_INPUT = tuple(tag for tag in T.BUCKET_TAGS if tag != T.INPUT_TAG)


def charts(built):
    """`(title, kind, tags)` per chart of the one category of a layout; a
    margin chart's tags are `(value, lower, upper)`."""
    (category,) = built.category
    assert category.title == CATEGORY == "keras_stepcounter"
    out = []
    for chart in category.chart:
        kind = chart.WhichOneof("content")
        if kind == "multiline":
            out.append((chart.title, kind, list(chart.multiline.tag)))
        else:
            (series,) = chart.margin.series
            out.append((chart.title, kind, [series.value, series.lower, series.upper]))
    return out


def exact(*tags):
    return [f"^{re.escape(tag)}$" for tag in tags]


def tensors(log_dir, tag):
    """`(step, bytes)` of each string summary under `tag` in `log_dir`."""
    loader = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={event_accumulator.TENSORS: 0}
    )
    loader.Reload()
    if tag not in loader.Tags()["tensors"]:
        return []
    return [(e.step, e.tensor_proto.string_val[0]) for e in loader.Tensors(tag)]


def layouts(log_dir):
    out = []
    for step, content in tensors(log_dir, CONFIG_TAG):
        out.append((step, layout_pb2.Layout.FromString(content)))
    return out


def records_of(path):
    return [tf.compat.v1.Event.FromString(bytes(r.numpy()))
            for r in tf.data.TFRecordDataset(path)]


def event_files(directory):
    return sorted(
        os.path.join(directory, n) for n in os.listdir(directory) if "tfevents" in n
    )


# The builders: plain Python and TensorBoard's protos. ---------------------------


def test_builders_import_no_tensorflow():
    code = (
        "import sys\n"
        "import keras_stepcounter.dashboard, keras_stepcounter.summary_protos\n"
        "import keras_stepcounter.core.ledger_table\n"
        "print('HEAVY', sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'jax')\n"
        "                      if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


@pytest.mark.parametrize(
    "tags, expected",
    [
        (DashboardTags(), [(RATES, "multiline", exact("global_step/sec"))]),
        (
            DashboardTags(tag="my_step/sec", examples=True),
            [(RATES, "multiline", exact("my_step/sec")),
             (EXAMPLES, "multiline", exact("examples/sec"))],
        ),
        (
            DashboardTags(mfu=True),
            [(RATES, "multiline", exact("global_step/sec")),
             (MFU, "multiline", exact("mfu"))],
        ),
        (
            DashboardTags(step_time_stats=True),
            [(RATES, "multiline", exact("global_step/sec")),
             (BAND, "margin", ["step_time/p50", "step_time/p10", "step_time/p90"]),
             (TAIL, "multiline", exact("step_time/p99", "step_time/max"))],
        ),
        (
            DashboardTags(goodput=True),
            [(RATES, "multiline", exact("global_step/sec")),
             (GOODPUT, "multiline", exact(
                 "goodput/startup_secs", "goodput/step_secs",
                 "goodput/epoch_boundary_secs", "goodput/stall_secs",
                 "goodput/recorder_secs", "goodput/other_secs"))],
        ),
        (
            DashboardTags(examples=True, mfu=True, step_time_stats=True, goodput=True),
            [(RATES, "multiline", exact("global_step/sec")),
             (EXAMPLES, "multiline", exact("examples/sec")),
             (MFU, "multiline", exact("mfu")),
             (BAND, "margin", ["step_time/p50", "step_time/p10", "step_time/p90"]),
             (TAIL, "multiline", exact("step_time/p99", "step_time/max")),
             (GOODPUT, "multiline", exact(*WITHOUT_INPUT))],
        ),
        (
            DashboardTags(goodput=True, input_stats=True),
            [(RATES, "multiline", exact("global_step/sec")),
             (INPUT, "multiline", exact("time_frac/input")),
             (GOODPUT, "multiline", exact(*T.BUCKET_TAGS))],
        ),
    ],
)
def test_layout_charts_only_the_tags_written(tags, expected):
    assert charts(layout(tags)) == expected


def test_charted_tags_are_the_recorders_tags():
    built = layout(DashboardTags(examples=True, mfu=True, step_time_stats=True, goodput=True))
    charted = set()
    for _, kind, tags in charts(built):
        charted |= {t[1:-1].replace("\\", "") if kind == "multiline" else t for t in tags}
    assert charted == {T.DEFAULT_TAG, T.EXAMPLES_TAG, T.MFU_TAG, *T.STEP_TIME_TAGS,
                       *WITHOUT_INPUT}
    assert all(T.is_recorder_tag(tag) for tag in charted)


def test_a_chart_regex_matches_its_tag_only():
    tag = "a.b+/sec (x)"
    ((_, _, (regex,)),) = charts(layout(DashboardTags(tag=tag)))
    # TensorBoard's server matches chart regexes with re.match.
    assert re.match(regex, tag)
    for other in ("aXb+/sec (x)", "a.bb/sec (x)", tag + "/more", "x" + tag):
        assert not re.match(regex, other), other


def test_dashboard_tags_of_a_recorders_settings():
    options = RecorderOptions(tag="s/sec", batch_size=4, flops_per_step=1.0,
                              peak_flops_per_sec=2.0)
    assert DashboardTags.of(options, step_time_stats=True, goodput=True) == DashboardTags(
        tag="s/sec", examples=True, mfu=True, step_time_stats=True, goodput=True
    )
    assert DashboardTags.of(RecorderOptions(count_fn=len)) == DashboardTags(examples=True)
    assert DashboardTags.of(RecorderOptions()) == DashboardTags()


def test_ledger_table_rows_in_ledger_order_then_the_total():
    scalars = {
        "goodput/total_secs": 8.0, "goodput/fraction": 0.625,
        "goodput/other_secs": 0.0, "goodput/step_secs": 5.0,
        "goodput/startup_secs": 2.0, "goodput/epoch_boundary_secs": 0.75,
        "goodput/stall_secs": 0.0, "goodput/recorder_secs": 0.25,
    }
    assert ledger_table(scalars) == "\n".join([
        "| bucket | seconds | share |",
        "|:--|--:|--:|",
        "| startup | 2.00 | 25.0% |",
        "| step | 5.00 | 62.5% |",
        "| epoch_boundary | 0.75 | 9.4% |",
        "| stall | 0.00 | 0.0% |",
        "| recorder | 0.25 | 3.1% |",
        "| other | 0.00 | 0.0% |",
        "| **total** | 8.00 | 100.0% |",
    ])


def test_ledger_table_without_a_total_has_no_shares():
    assert ledger_table({"goodput/step_secs": 1.5, "global_step/sec": 9.0}) == (
        "| bucket | seconds | share |\n|:--|--:|--:|\n| step | 1.50 | - |"
    )
    assert share_text(1.0, 0.0) == "-" and share_text(1.0, 3.0) == "33.3%"


def test_text_summary_is_what_tf_summary_text_writes(tmp_path):
    markdown = "| a | b |\n|--|--|\n| é | 1 |"
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        tf.summary.text("goodput/ledger", markdown, step=3)
    writer.close()
    (_, event) = records_of(event_files(tmp_path)[0])
    assert event.summary.SerializeToString() == (
        text_summary("goodput/ledger", markdown).SerializeToString()
    )


def test_layout_summary_is_what_tensorboards_own_builder_gives():
    built = layout(DashboardTags(examples=True, step_time_stats=True, goodput=True))
    assert layout_summary(built).SerializeToString() == (
        custom_scalar_summary.pb(built).SerializeToString()
    )


# The sinks write them. ------------------------------------------------------------


def test_each_event_file_starts_with_the_layout_reopened_ones_too(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    tags = DashboardTags(goodput=True)
    clock = FakeClock()
    sink = EventFileSink(str(run), recheck_secs=1.0, clock=clock, dashboard=tags)
    sink.open()
    assert sink.write(5, {"global_step/sec": 2.0})
    first = sink.path
    shutil.move(str(run), str(tmp_path / "moved"))  # The file loses its name.
    run.mkdir()
    clock.advance(1.5)
    assert sink.write(9, {"global_step/sec": 3.0})  # Checked: a new file.
    sink.close()
    expected = layout_summary(layout(tags)).SerializeToString()
    for path in [str(tmp_path / "moved" / os.path.basename(first))] + event_files(run):
        header, config, *scalars = records_of(path)
        assert header.file_version == "brain.Event:2"
        assert (config.step, config.summary.SerializeToString()) == (0, expected)
        assert [e.summary.value[0].tag for e in scalars] == ["global_step/sec"]
    assert len(event_files(run)) == 1


def test_a_sink_without_dashboard_writes_no_layout(tmp_path):
    sink = EventFileSink(str(tmp_path))
    assert sink.write(5, {"global_step/sec": 2.0})
    sink.close()
    assert [len(e.summary.value) for e in records_of(event_files(tmp_path)[0])] == [0, 1]


@pytest.mark.parametrize("how", ["output_dir", "summary_writer"])
def test_write_text_reaches_tensorboards_text_plugin(tmp_path, how):
    user_writer = tf.summary.create_file_writer(str(tmp_path)) if how == "summary_writer" else None
    writer = make_sink(str(tmp_path) if how == "output_dir" else None, user_writer)
    with tf.summary.record_if(False):  # Keras's TensorBoard callback may leave one on.
        assert writer.write_text(12, "goodput/ledger", "| a |\n|--|\n| 1 |")
    loader = event_accumulator.EventAccumulator(
        str(tmp_path), size_guidance={event_accumulator.TENSORS: 0}
    )
    loader.Reload()
    assert loader.PluginTagToContent("text") == {"goodput/ledger": b""}  # TextPluginData, version 0
    assert tensors(tmp_path, "goodput/ledger") == [(12, b"| a |\n|--|\n| 1 |")]
    writer.close()


def test_summary_sink_writes_the_layout_once_to_the_users_writer(tmp_path):
    tags = DashboardTags(step_time_stats=True)
    sink = SummarySink(tf.summary.create_file_writer(str(tmp_path)), tags)
    with tf.summary.record_if(False):
        sink.open()
    sink.open()  # A second fit.
    assert layouts(tmp_path) == [(0, layout(tags))]


def test_summary_sink_writes_the_layout_to_the_first_default_writer(tmp_path):
    sink = SummarySink(None, DashboardTags())
    sink.open()  # No default writer: nothing written, nothing lost.
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        sink.open()
        sink.open()
    assert layouts(tmp_path) == [(0, layout(DashboardTags()))]


# The recorders. -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["output_dir", "summary_writer"])
def test_step_counter_writes_its_layout_and_each_fits_ledger_table(
    make_model, tiny_data, tmp_path, how
):
    x, y = tiny_data
    run_dir = str(tmp_path / "train")
    where = (
        {"output_dir": run_dir} if how == "output_dir"
        else {"summary_writer": tf.summary.create_file_writer(run_dir)}
    )
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, batch_size=4, step_time_stats=True, goodput=True, **where
    )
    model = make_model()
    for _ in range(2):  # Two fits: one layout, two tables.
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
    counter.close()

    expected = DashboardTags(examples=True, step_time_stats=True, goodput=True)
    assert layouts(run_dir) == [(0, layout(expected))]
    scalars = read_scalars(run_dir)
    tables = tensors(run_dir, "goodput/ledger")
    assert [step for step, _ in tables] == [r.step for r in scalars[T.TOTAL_TAG]] == [30, 60]
    for fit, (_, table) in enumerate(tables):
        lines = table.decode("utf-8").split("\n")
        assert lines[:2] == ["| bucket | seconds | share |", "|:--|--:|--:|"]
        cells = [line.strip("|").split(" | ") for line in lines[2:]]
        names = [T.bucket_name(tag) for tag in WITHOUT_INPUT] + ["**total**"]
        assert [c[0].strip() for c in cells] == names
        for tag, cell in zip(WITHOUT_INPUT + (T.TOTAL_TAG,), cells):
            # Written from the float64 ledger; read back as float32.
            assert float(cell[1]) == pytest.approx(scalars[tag][fit].value, abs=0.0051)


@pytest.mark.parametrize("how", ["output_dir", "summary_writer", "default_writer"])
def test_graph_step_counter_writes_its_layout_once_with_a_writer(tmp_path, how):
    run_dir = str(tmp_path)
    user = tf.summary.create_file_writer(run_dir) if how != "output_dir" else None
    where = {"output_dir": run_dir} if how == "output_dir" else {}
    if how == "summary_writer":
        where = {"summary_writer": user}
    counter = keras_stepcounter.GraphStepCounter(every_n_steps=1, batch_size=8, **where)
    if how == "default_writer":
        with user.as_default():
            counter(tf.constant(1, tf.int64))
            counter(tf.constant(2, tf.int64))
    else:
        counter(tf.constant(1, tf.int64))
        counter(tf.constant(2, tf.int64))
    counter.close()
    if user is not None:
        user.flush()
    expected = [] if how == "default_writer" else [(0, layout(DashboardTags(examples=True)))]
    assert layouts(run_dir) == expected
    assert [r.step for r in read_scalars(run_dir)["global_step/sec"]] == [2]
