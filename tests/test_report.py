"""`python -m keras_stepcounter report`: summaries, low records, JSON, plot, errors.

Logs come from three writers: StepCounter in a tiny fit, v2 `tf.summary`
inside a `tf.function` (GraphStepCounter's format: tensor-valued scalars),
and a v1 `FileWriter` with `simple_value` (the v1 hook's format).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

import keras_stepcounter
from keras_stepcounter import __main__ as cli
from keras_stepcounter.tools import report
from keras_stepcounter.tools.events import event_files, read_scalars
from keras_stepcounter.tools.report import LowRecord
from keras_stepcounter.tools.throughput import fallback_notice
from conftest import counter_on

REPO_ROOT = Path(__file__).resolve().parents[1]

STEPS = [11, 21, 31, 41, 51, 61, 71, 81, 91, 101]
# Sorted: 2 3 8 8 8 8 8 8 10 12. Linear percentiles (position p/100 * 9):
# p10 at 0.9 -> 2 + 0.9 * (3 - 2) = 2.9; median at 4.5 -> 8;
# p90 at 8.1 -> 10 + 0.1 * (12 - 10) = 10.2. Low records: below 8 / 2 = 4.
RATES = [8.0, 8.0, 2.0, 8.0, 10.0, 3.0, 8.0, 8.0, 8.0, 12.0]


def write_v2(run_dir, tag, steps, values):
    """Tensor-valued scalars from inside a tf.function, as GraphStepCounter."""
    write_v2_records(run_dir, [(tag, s, v) for s, v in zip(steps, values)])


def write_v2_records(run_dir, records):
    """(tag, step, value) records, in order, through one writer."""
    writer = tf.summary.create_file_writer(str(run_dir))

    @tf.function
    def record(tag, step, value):
        with writer.as_default():
            tf.summary.scalar(tag, value, step=step)

    for tag, step, value in records:
        record(tag, tf.constant(step, tf.int64), tf.constant(value, tf.float32))
    writer.close()


def write_v1(run_dir, tag, steps, values):
    """`simple_value` summaries through a v1 FileWriter, as the v1 hook."""
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(str(run_dir))
        for step, value in zip(steps, values):
            summary = tf.compat.v1.Summary(
                value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=value)]
            )
            writer.add_summary(summary, step)
        writer.close()


@pytest.fixture
def v2_logdir(tmp_path):
    """One run's records in the order a GraphStepCounter writes them."""
    # epoch_loss is no rate: left out.
    records = [("epoch_loss", 0, 0.7), ("time_to_first_step", 1, 4.5)]
    mfu = {11: 0.25, 21: 0.5}
    for step, rate in zip(STEPS, RATES):
        records += [("global_step/sec", step, rate), ("examples/sec", step, 32 * rate)]
        if step in mfu:
            records.append(("mfu", step, mfu[step]))
    records.append(("epoch_loss", 1, 0.6))
    write_v2_records(tmp_path / "graph", records)
    return tmp_path


def _ticker(keras, clock, seconds_of_batch):
    class Ticker(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(seconds_of_batch(batch))

    return Ticker()


@pytest.fixture
def fit_logdir(keras, make_model, tiny_data, tmp_path, fake_clock):
    """StepCounter in a 30-step fit: records at 11 (8 steps/s), 21 (2 steps/s)."""
    x, y = tiny_data
    counter = counter_on(fake_clock, every_n_steps=10, output_dir=str(tmp_path / "fit")
    )
    # Batch i ends at step i + 1: batches 1-10 make the interval to step 11,
    # batches 11-20 the one to step 21.
    ticker = _ticker(keras, fake_clock, lambda b: 0.5 if 11 <= b <= 20 else 0.125)
    make_model().fit(
        x, y, batch_size=4, epochs=1, verbose=0, callbacks=[ticker, counter]
    )
    return tmp_path


def fit_throughput(logdir):
    """The fit's throughput and notices: 20 steps in 10 / 8 + 10 / 2 s
    where the counter writes `baseline_step` (at step 1), else only the
    second record's 10 steps in 10 / 2 s, with the fallback notice."""
    if "baseline_step" in read_scalars(str(logdir / "fit")):
        return 20 / (10 / 8 + 10 / 2), []
    return 2.0, [fallback_notice("fit")]


def _only(summaries, run, tag):
    [summary] = [s for s in summaries if s.run == run and s.tag == tag]
    return summary


def test_stepcounter_fit_summary_and_low_record(fit_logdir):
    loaded = report.load_report(str(fit_logdir))
    summaries = loaded.summaries
    assert [(s.run, s.tag) for s in summaries] == [("fit", "global_step/sec")]
    s = summaries[0]
    assert (s.records, s.first_step, s.last_step) == (2, 11, 21)
    # Values 8 and 2: median 5, p10 = 2 + 0.1 * 6, p90 = 2 + 0.9 * 6.
    assert s.median == 5.0
    assert s.p10 == pytest.approx(2.6)
    assert s.p90 == pytest.approx(7.4)
    assert s.min == 2.0
    assert s.low_threshold == 2.5
    assert s.low_records == [LowRecord(from_step=11, step=21, value=2.0)]
    throughput, notices = fit_throughput(fit_logdir)
    assert s.throughput == pytest.approx(throughput)
    assert loaded.notices == notices


def test_v2_graph_format_summary(v2_logdir):
    summaries = report.load_report(str(v2_logdir)).summaries
    assert [s.tag for s in summaries] == [
        "global_step/sec", "examples/sec", "mfu", "time_to_first_step"
    ]
    s = _only(summaries, "graph", "global_step/sec")
    assert (s.records, s.first_step, s.last_step) == (10, 11, 101)
    assert s.median == 8.0
    assert s.p10 == pytest.approx(2.9)
    assert s.p90 == pytest.approx(10.2)
    assert s.min == 2.0
    assert s.low_records == [LowRecord(21, 31, 2.0), LowRecord(51, 61, 3.0)]
    # No baseline_step: the first record is left out; 9 records of 10 steps.
    seconds = sum(10 / rate for rate in RATES[1:])
    assert s.throughput == pytest.approx(90 / seconds)
    examples = _only(summaries, "graph", "examples/sec")
    assert examples.median == 256.0
    assert [x.step for x in examples.low_records] == [31, 61]
    first = _only(summaries, "graph", "time_to_first_step")
    assert (first.records, first.median, first.low_records) == (1, 4.5, None)
    assert first.throughput is None
    mfu = _only(summaries, "graph", "mfu")
    assert (mfu.records, mfu.median, mfu.min, mfu.low_records) == (
        2, 0.375, 0.25, None
    )


def test_v1_filewriter_format_and_first_record_low(tmp_path):
    # The v1 hook's tag is the global step op's name + "/sec".
    write_v1(tmp_path / "hook", "bar/foo/sec", [5, 10, 15, 20], [1.0, 6.0, 6.0, 8.0])
    [s] = report.load_report(str(tmp_path)).summaries
    assert (s.run, s.tag, s.records, s.first_step, s.last_step) == (
        "hook", "bar/foo/sec", 4, 5, 20
    )
    assert (s.median, s.min) == (6.0, 1.0)
    assert s.p10 == pytest.approx(1.0 + 0.3 * 5.0)
    assert s.p90 == pytest.approx(6.0 + 0.7 * 2.0)
    # The first record's interval starts at an unrecorded baseline step.
    assert s.low_records == [LowRecord(from_step=None, step=5, value=1.0)]
    assert s.throughput == pytest.approx(15 / (5 / 6 + 5 / 6 + 5 / 8))


def test_runs_are_listed_by_name_and_logdir_itself_is_run_dot(tmp_path):
    write_v1(tmp_path / "b_hook", "global_step/sec", [5, 10], [2.0, 4.0])
    write_v2(tmp_path / "a_graph", "global_step/sec", [5, 10], [2.0, 4.0])
    write_v2(tmp_path, "global_step/sec", [7], [1.0])
    summaries = report.load_report(str(tmp_path)).summaries
    assert [s.run for s in summaries] == [".", "a_graph", "b_hook"]
    assert [s.median for s in summaries] == [1.0, 3.0, 3.0]


def test_text_table(fit_logdir, capsys):
    assert cli.main(["report", str(fit_logdir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run", "tag", "records", "steps", "throughput", "median", "p10", "p90",
        "min", "low",
    ]
    throughput, _ = fit_throughput(fit_logdir)
    assert lines[1].split() == [
        "fit", "global_step/sec", "2", "11-21", f"{throughput:.3g}", "5", "2.6",
        "7.4", "2", "1",
    ]
    assert lines[2:] == [
        "",
        "Low records (below 0.5 x the run's median; slow intervals, counted in "
        "the throughput; not stalls):",
        "  fit  global_step/sec  steps 11-21: 2 (median 5)",
    ]


def test_text_table_of_extras_shows_no_low_check(v2_logdir):
    rows = report.load_report(str(v2_logdir)).table().splitlines()
    assert rows[3].split() == [
        "graph", "mfu", "2", "11-21", "-", "0.375", "0.275", "0.475", "0.25", "-"
    ]
    assert "  graph  global_step/sec  steps 21-31: 2 (median 8)" in rows
    assert "  graph  examples/sec  steps 51-61: 96.0 (median 256.0)" in rows


def test_json_schema(fit_logdir, capsys):
    assert cli.main(["report", str(fit_logdir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    throughput, notices = fit_throughput(fit_logdir)
    assert data == {
        "logdir": str(fit_logdir),
        "percentile_method": "linear",
        "low_fraction": 0.5,
        "runs": {
            "fit": {
                "global_step/sec": {
                    "records": 2,
                    "first_step": 11,
                    "last_step": 21,
                    "throughput": pytest.approx(throughput),
                    "median": 5.0,
                    "p10": pytest.approx(2.6),
                    "p90": pytest.approx(7.4),
                    "min": 2.0,
                    "low_threshold": 2.5,
                    "low_records": [{"from_step": 11, "step": 21, "value": 2.0}],
                    "non_finite": [],
                }
            }
        },
        "sources": {
            "fit": {
                "directory": str(fit_logdir / "fit"),
                "event_files": [os.path.basename(p) for p in event_files(
                    str(fit_logdir / "fit"))],
            }
        },
        "reruns": {},
        "step_time": {},
        "watchdog_stalls": {},
        "goodput": {},
        "time_frac": {},
        "input_share": {},
        "from_step": None,
        "comparison": None,
        "slowdowns": {},
        "notices": notices,
    }
    assert len(data["sources"]["fit"]["event_files"]) == 1


def test_json_of_extras_has_null_low_records(v2_logdir, capsys):
    assert cli.main(["report", str(v2_logdir), "--json"]) == 0
    tags = json.loads(capsys.readouterr().out)["runs"]["graph"]
    assert list(tags) == [
        "global_step/sec", "examples/sec", "mfu", "time_to_first_step"
    ]
    assert tags["mfu"]["low_records"] is None
    assert tags["mfu"]["low_threshold"] is None
    assert tags["global_step/sec"]["low_records"] == [
        {"from_step": 21, "step": 31, "value": 2.0},
        {"from_step": 51, "step": 61, "value": 3.0},
    ]


def test_plot_writes_a_png(fit_logdir, tmp_path, capsys):
    path = tmp_path / "plots" / "rates.png"
    write_v1(fit_logdir / "hook", "bar/foo/sec", [5, 10], [1.0, 6.0])
    assert cli.main(["report", str(fit_logdir), "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000  # Axes, labels, two lines: not blank.
    captured = capsys.readouterr()
    assert "global_step/sec" in captured.out
    assert f"Plot written to {path}" in captured.err


def test_plot_without_matplotlib_is_a_clear_error(
    fit_logdir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # Import fails.
    path = tmp_path / "rates.png"
    assert cli.main(["report", str(fit_logdir), "--plot", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --plot needs matplotlib, which is not installed")
    assert "pip install 'keras_stepcounter[plot]'" in err
    assert not path.exists()


def test_missing_logdir_is_an_error(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert cli.main(["report", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: LOGDIR {str(missing)!r} does not exist.\n"
    assert captured.out == ""


def test_logdir_without_rate_records_is_an_error(tmp_path, capsys):
    write_v2(tmp_path / "train", "epoch_loss", [0, 1], [0.7, 0.6])
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no rate records under {str(tmp_path)!r}")
    assert "(scalars found: epoch_loss)" in err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "no rate records" in capsys.readouterr().err
    with pytest.raises(report.ReportError, match="does not exist"):
        report.load_report(str(tmp_path / "missing"))


def test_print_report_for_the_quickstart(fit_logdir, capsys):
    result = report.print_report(str(fit_logdir))
    assert [s.tag for s in result.summaries] == ["global_step/sec"]
    assert capsys.readouterr().out == result.table() + "\n"


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "keras_stepcounter", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


def test_module_entry_point(fit_logdir, tmp_path):
    done = _run_cli("report", str(fit_logdir), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"]["fit"]["global_step/sec"]["records"] == 2

    done = _run_cli("report", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert "error: LOGDIR" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_quickstart_prints_the_report(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "fit_quickstart.py"),
         "--logdir", str(tmp_path), "--epochs", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # 7373 training examples / 32 = 231 steps: records at 101 and 201.
    assert "Recorded 2 rates of global_step/sec" in out
    summary = out[out.index("Summary (python -m keras_stepcounter report "):]
    rows = [line.split() for line in summary.splitlines()]
    assert rows[1][:2] == ["run", "tag"]
    assert rows[2][:4] == ["train", "global_step/sec", "2", "101-201"]
    assert rows[3][:4] == ["train", "examples/sec", "2", "101-201"]
    assert f"tensorboard --logdir {tmp_path}" in out
