"""A full disk, on real failing writes: nothing written after it is lost.

No root needed: a subprocess lowers its own `RLIMIT_FSIZE` (the largest
file it may write), so the kernel fails a write part-way with `EFBIG`
(SIGXFSZ ignored), leaving a torn record at the end of the event file, as
a full disk does; raising the limit again stands in for freed space. The
directory is then read back with the package's reader and with
TensorBoard's `EventAccumulator`, both a fresh one and one that was
already reading the first file while it was written (a live TensorBoard).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from keras_stepcounter.tools.events import event_files, read_event_file, read_scalars

REPO = Path(__file__).resolve().parents[1]

# Steps 1-5 written; outage 1 tears the record of step 6 and fails step 7
# (a new file cannot take even its header); steps 8-12 written in a new
# file; outage 2 tears 13 and fails 14; steps 15-20 in a third file.
WRITTEN = [1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16, 17, 18, 19, 20]

SCRIPT = textwrap.dedent(
    """
    import json, logging, os, resource, signal, sys, warnings
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill.
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator
    from keras_stepcounter.writer import EventFileSink

    directory = sys.argv[1]
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resumed = []
    handler = logging.Handler()
    handler.emit = lambda record: resumed.append(record.getMessage())
    logging.getLogger("tensorflow").addHandler(handler)

    def limit(size):
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))

    sink = EventFileSink(directory)
    sink.open()
    live = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.TENSORS: 0}
    )
    written, files = {}, []

    def write(step):
        written[step] = sink.write(step, {"a": step * 1.5})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: once per text and place.
        for step in range(1, 6):
            write(step)
        live.Reload()  # A TensorBoard reading the first file meanwhile.
        for torn, failed, back in [(6, 7, range(8, 13)), (13, 14, range(15, 21))]:
            files.append(sink.path)
            limit(os.path.getsize(sink.path) + 30)  # Mid-record.
            write(torn)
            limit(20)  # Not even a new file's header fits.
            write(failed)
            limit(hard)  # Space is back.
            for step in back:
                write(step)
        files.append(sink.path)
    sink.close()
    live.Reload()
    print(json.dumps({
        "written": written,
        "files": [os.path.basename(f) for f in files],
        "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning],
        "resumed": [m for m in resumed if "resumed" in m],
        "live": [[e.step, tf.make_ndarray(e.tensor_proto).item()]
                 for e in live.Tensors("a")],
    }))
    """
)


def run_outages(directory):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(directory)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_records_after_each_outage_are_all_read_back(tmp_path):
    out = run_outages(tmp_path)
    assert [int(s) for s, ok in out["written"].items() if ok] == WRITTEN
    assert [int(s) for s, ok in out["written"].items() if not ok] == [6, 7, 13, 14]

    # Two outages, two warnings, though the error text is the same: none is
    # swallowed by the "default" filter. Each says where records go next.
    assert len(out["warnings"]) == 2, out["warnings"]
    for number, message in enumerate(out["warnings"], 1):
        assert "File too large" in message
        assert "the next records go to a new event file" in message
        assert f"(write outage {number} in this process)" in message  # A fresh process.
    # Each resumption names the new file.
    files = out["files"]
    assert len(set(files)) == 3
    assert out["resumed"] == [
        f"keras_stepcounter: writing records resumed, in a new event file "
        f"{os.path.join(str(tmp_path), name)}."
        for name in files[1:]
    ]

    # On disk: the three files, no empty ones from the failed opens.
    assert [os.path.basename(p) for p in event_files(str(tmp_path))] == files
    reads = [read_event_file(p) for p in event_files(str(tmp_path))]
    assert [r.problem is not None and "truncated" in r.problem for r in reads] == [
        True, True, False
    ]

    # Every record written is read back, exactly, by both readers.
    expected = [(step, step * 1.5) for step in WRITTEN]
    ours = read_scalars(str(tmp_path))["a"]
    assert [(r.step, r.value) for r in ours] == expected
    fresh = event_accumulator.EventAccumulator(
        str(tmp_path), size_guidance={event_accumulator.TENSORS: 0}
    )
    fresh.Reload()
    assert [
        (e.step, tf.make_ndarray(e.tensor_proto).item()) for e in fresh.Tensors("a")
    ] == expected
    assert [tuple(pair) for pair in out["live"]] == expected
