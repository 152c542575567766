"""The records StepCounter writes, as the real TensorBoard server shows them.

Starts `tensorboard.main` on a free loopback port over a log dir written by
a tiny fit, and reads the scalars back through its HTTP API, the one its
web page uses.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import keras_stepcounter
from keras_stepcounter.dashboard import DashboardTags, layout
from keras_stepcounter.tools.events import read_scalars

REPO_ROOT = Path(__file__).resolve().parents[1]
START_DEADLINE_S = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keras_version():
    import keras

    return tuple(int(part) for part in keras.__version__.split(".")[:2])


def _get_json(base_url, path, **params):
    url = f"{base_url}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


def _wait_for_tag(server, base_url, run, tag):
    """Polls the tags endpoint until `run` has `tag` (TensorBoard loads logs
    in a background thread after it starts serving)."""
    deadline = time.monotonic() + START_DEADLINE_S
    last = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"TensorBoard exited with code {server.returncode}")
        try:
            last = _get_json(base_url, "/data/plugin/scalars/tags")
            if tag in last.get(run, {}):
                return last
        except (urllib.error.URLError, ConnectionError, OSError):
            pass  # Not listening yet.
        time.sleep(0.5)
    pytest.fail(f"TensorBoard did not show {run}/{tag} in time; last tags: {last}")


@pytest.fixture
def tensorboard_server(tmp_path):
    """Starts TensorBoard on `tmp_path`; yields (process, base URL); stops it."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    log = open(tmp_path / "tensorboard.log", "wb")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "tensorboard.main",
            "--logdir", str(tmp_path / "logs"),
            "--host", "127.0.0.1",
            "--port", str(port),
            # The Python loader: one process to stop, no data-server child.
            "--load_fast", "false",
            "--reload_interval", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.parametrize("update_freq", ["epoch", 7])
def test_keras_tensorboard_callback_in_the_same_run(
    keras, make_model, tiny_data, tmp_path, update_freq
):
    """Steps/sec beside Keras's loss; an integer update_freq (whose
    `record_if` is active around every batch) must not drop records."""
    x, y = tiny_data
    counter = keras_stepcounter.StepCounter(
        every_n_steps=10, output_dir=str(tmp_path / "train")
    )
    tensorboard = keras.callbacks.TensorBoard(
        log_dir=str(tmp_path), update_freq=update_freq
    )
    make_model().fit(
        x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter, tensorboard]
    )
    scalars = read_scalars(str(tmp_path / "train"))
    assert [r.step for r in scalars["global_step/sec"]] == [11, 21]
    if update_freq == 7:
        batch_steps = [r.step for r in scalars["batch_loss"]]
        if _keras_version() >= (3, 15):
            assert batch_steps == [7, 14, 21, 28]
        else:
            # Older Keras evaluates its update_freq condition once, at step
            # 0, so it holds at every batch: one summary a batch.
            assert len(batch_steps) == 30
    else:
        assert [r.step for r in scalars["epoch_loss"]] == [0]


@pytest.mark.slow
def test_tensorboard_shows_the_records(
    make_model, tiny_data, tmp_path, tensorboard_server
):
    """Both sinks: run1 written directly (`output_dir=`), run2 through a
    user's `tf.summary` writer; both inside a `tf.name_scope`, which must
    not reach the tag."""
    import tensorflow as tf

    x, y = tiny_data
    runs = {
        "run1/train": lambda d: {"output_dir": d},
        "run2/train": lambda d: {"summary_writer": tf.summary.create_file_writer(d)},
    }
    written = {}
    for run, writer_args in runs.items():
        run_dir = str(tmp_path / "logs" / run)
        counter = keras_stepcounter.StepCounter(every_n_steps=10, **writer_args(run_dir))
        with tf.name_scope("experiment_1"):
            make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[counter])
        written[run] = read_scalars(run_dir)["global_step/sec"]
        assert [r.step for r in written[run]] == [11, 21]

    server, base_url = tensorboard_server
    for run in runs:
        tags = _wait_for_tag(server, base_url, run, "global_step/sec")
        assert list(tags[run]) == ["global_step/sec"]
    assert sorted(tags) == sorted(runs)

    for run in runs:
        points = _get_json(
            base_url, "/data/plugin/scalars/scalars", run=run, tag="global_step/sec"
        )
        # Each point is [wall_time, step, value]; values are float32 on disk.
        assert [step for _, step, _ in points] == [11, 21]
        assert [np.float32(value) for _, _, value in points] == [
            np.float32(r.value) for r in written[run]
        ]
        assert [value for _, _, value in points] == [r.value for r in written[run]]
        assert [wall for wall, _, _ in points] == pytest.approx(
            [r.wall_time for r in written[run]]
        )


def _wait_until(server, base_url, path, ready):
    """Polls `path` until `ready(json)` (TensorBoard loads logs in a
    background thread, possibly while they are written); returns the json."""
    deadline = time.monotonic() + START_DEADLINE_S
    last = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"TensorBoard exited with code {server.returncode}")
        try:
            last = _get_json(base_url, path)
            if ready(last):
                return last
        except (urllib.error.URLError, ConnectionError, OSError):
            pass  # Not listening yet.
        time.sleep(0.5)
    pytest.fail(f"TensorBoard did not serve what {path} should in time; last: {last}")


def _table_cells(text):
    """The cells of the one table in an HTML text, row by row."""
    rows = re.findall(r"<tr>(.*?)</tr>", text, flags=re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip()
             for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)]
            for row in rows]


@pytest.mark.slow
def test_tensorboard_serves_the_dashboard_and_the_ledger_table(
    make_model, tiny_data, tmp_path, tensorboard_server
):
    """Custom Scalars: the layouts of two runs (one per sink), merged by the
    server; every tag a run's layout charts resolves to that run's data.
    Text: each fit's ledger table, rendered from Markdown."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorboard.plugins.custom_scalar import layout_pb2

    x, y = tiny_data
    settings = {
        "run1/train": dict(batch_size=4, flops_per_step=1e6, peak_flops_per_sec=1e12,
                           step_time_stats=True, goodput=True),
        "run2/train": dict(tag="custom/sec", step_time_stats=True, goodput=True),
    }
    tags = {
        "run1/train": DashboardTags(examples=True, mfu=True, step_time_stats=True,
                                    goodput=True),
        "run2/train": DashboardTags(tag="custom/sec", step_time_stats=True, goodput=True),
    }
    for run, kwargs in settings.items():
        run_dir = str(tmp_path / "logs" / run)
        where = (
            {"output_dir": run_dir} if run == "run1/train"
            else {"summary_writer": tf.summary.create_file_writer(run_dir)}
        )
        counter = keras_stepcounter.StepCounter(every_n_steps=10, **where, **kwargs)
        make_model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[counter])
        counter.close()

    server, base_url = tensorboard_server
    # The ledger table is the last record of each run: all of it is loaded.
    _wait_until(server, base_url, "/data/plugin/text/tags",
                lambda found: found == {run: ["goodput/ledger"] for run in settings})

    served = json_format.ParseDict(
        _get_json(base_url, "/data/plugin/custom_scalars/layout"), layout_pb2.Layout()
    )
    run1, run2 = layout(tags["run1/train"]), layout(tags["run2/train"])
    merged = layout_pb2.Layout()
    merged.CopyFrom(run1)
    merged.category[0].chart.extend(c for c in run2.category[0].chart if c not in run1.category[0].chart)
    assert served == merged
    assert [c.title for c in served.category[0].chart] == [
        "steps per second", "examples per second", "mfu (model FLOPs utilization)",
        "step time (s): p50 within p10-p90", "step time tail (s): p99, max",
        "goodput (seconds per fit)", "steps per second",
    ]

    for run, run_tags in tags.items():
        for chart in layout(run_tags).category[0].chart:
            if chart.HasField("multiline"):
                for regex in chart.multiline.tag:
                    found = _get_json(base_url, "/data/plugin/custom_scalars/scalars",
                                      run=run, tag=regex)
                    assert found["regex_valid"], regex
                    (tag,) = found["tag_to_events"]
                    assert re.fullmatch(regex, tag)
                    assert found["tag_to_events"][tag], (run, tag)
            else:
                (series,) = chart.margin.series
                band = [series.value, series.lower, series.upper]
                # The regex the dashboard's margin chart asks for.
                regex = "|".join(f"({re.escape(t)})" for t in band)
                found = _get_json(base_url, "/data/plugin/custom_scalars/scalars",
                                  run=run, tag=regex)
                assert sorted(found["tag_to_events"]) == sorted(band)
                steps = [[s for _, s, _ in found["tag_to_events"][t]] for t in band]
                written = read_scalars(str(tmp_path / "logs" / run))[series.value]
                assert steps[0] == steps[1] == steps[2] == [r.step for r in written]
                assert len(written) == 5  # Every 10 steps, of 60.
                for _, _, p50 in found["tag_to_events"][series.value]:
                    assert p50 > 0

    for run in settings:
        tables = _get_json(base_url, "/data/plugin/text/text", run=run, tag="goodput/ledger")
        ledger_steps = [r.step for r in read_scalars(str(tmp_path / "logs" / run))
                        ["goodput/total_secs"]]
        assert [t["step"] for t in tables] == ledger_steps == [60]
        cells = _table_cells(tables[0]["text"])
        assert cells[0] == ["bucket", "seconds", "share"]
        assert [row[0] for row in cells[1:]] == [
            "startup", "step", "epoch_boundary", "stall", "recorder", "other", "total"
        ]
        assert cells[-1][2] == "100.0%"
