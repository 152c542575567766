"""The event reader leaves `sys.modules` alone outside the command line.

The reader (`tools/events.py`) imports TensorBoard's no-TensorFlow stub,
whose file layer imports `boto3`, `botocore` and `fsspec` when installed.
The command line (`python -m keras_stepcounter`), which trains nothing,
hides them for that import (about 0.9 s saved); any other process (a
notebook reading its scalars after `fit`, a training script) imports the
reader without touching `sys.modules`, so a thread importing boto3 at that
moment cannot fail. Stand-in modules on the path record their imports.
"""

import os
import subprocess
import sys
from pathlib import Path

from keras_stepcounter.writer import EventFileSink

REPO = Path(__file__).resolve().parents[1]
CLIENTS = ["botocore", "boto3", "fsspec"]


def stand_in_clients(directory, log):
    for name in CLIENTS:
        package = directory / name
        package.mkdir()
        (package / "__init__.py").write_text(
            f"with open({str(log)!r}, 'a') as f:\n    f.write({name + chr(10)!r})\n"
        )
    (directory / "botocore" / "exceptions.py").write_text("")


def run_python(args, tmp_path):
    log = tmp_path / "imported.txt"
    log.write_text("")
    clients = tmp_path / "clients"
    clients.mkdir()
    stand_in_clients(clients, log)
    result = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(clients), str(REPO)])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return log.read_text().split(), result.stdout


def test_importing_the_reader_hides_nothing(tmp_path):
    code = "import keras_stepcounter.tools.events; print('read')"
    imported, out = run_python(["-c", code], tmp_path)
    assert out.split() == ["read"]
    assert imported == CLIENTS  # The stub's own imports, none hidden.


def test_the_command_line_hides_the_remote_clients(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    sink = EventFileSink(str(logs))
    sink.write(7, {"global_step/sec": 2.0})
    sink.close()
    imported, out = run_python(["-m", "keras_stepcounter", "report", str(logs)], tmp_path)
    row = [line.split() for line in out.splitlines() if "global_step/sec" in line]
    # One record, its steps unknown (no baseline_step, no record before):
    # no throughput ("-"), the rate's statistics.
    assert row == [[".", "global_step/sec", "1", "7-7", "-", "2", "2", "2", "2", "0"]], out
    assert imported == []
