"""`report` on the log directories real training leaves behind (issue 15).

Every input is built for real: event files written through `tf.summary`
(the writer users have), truncated or damaged on disk, real dangling links,
FIFOs, and directories a user cannot read. Tests run as root here, and
`chmod 000` does not stop root, so the unreadable cases drop to the
`nobody` user (an effective uid, restored after) when run as root.
"""

import contextlib
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import counter_on

from keras_stepcounter.tools import cli, formatting, plot, report  # noqa: F401
from keras_stepcounter.tools.events import event_files

REPO_ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534


def write_scalars(run_dir, records):
    """(tag, step, value) records, in order, into a new event file; its path."""
    before = set(event_files(str(run_dir)))
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        for tag, step, value in records:
            tf.summary.scalar(tag, value, step=step)
    writer.close()
    [path] = set(event_files(str(run_dir))) - before
    return path


def rates(steps, values, tag="global_step/sec"):
    return [(tag, step, value) for step, value in zip(steps, values)]


def reject_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def strict_json(text):
    return json.loads(text, parse_constant=reject_constant)


def run_report(capsys, *args):
    """Exit code, stdout and stderr, without the notices that files written
    with `tf.summary` (no `baseline_step`) always get: these tests are about
    what cannot be read (test_report_throughput.py checks that notice)."""
    code = cli.main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, without_fallback(captured.err)


def without_fallback(err):
    return "".join(
        line for line in err.splitlines(keepends=True)
        if "no baseline_step records" not in line
    )


def record_spans(path):
    """(start, length) of each record: 8-byte length, 4 CRC, data, 4 CRC."""
    data = Path(path).read_bytes()
    spans, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        spans.append((offset, 16 + length))
        offset += 16 + length
    return spans


# --plot paths: checked before anything is read, one line, exit 2.

@pytest.fixture
def small_logdir(tmp_path):
    write_scalars(tmp_path / "train", rates([10, 20, 30], [4.0, 5.0, 6.0]))
    return tmp_path


@pytest.mark.parametrize("name, expected", [
    ("out.xyz", "unknown format '.xyz' (matplotlib writes: "),
    ("rates",
     "has no extension to tell the format; e.g. {path}.png (matplotlib writes: "),
])
def test_plot_path_without_a_known_format(
    small_logdir, tmp_path, capsys, name, expected
):
    path = tmp_path / name
    code, out, err = run_report(capsys, small_logdir, "--plot", path)
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: --plot {str(path)!r}")
    assert expected.format(path=path) in err and "png" in err and "svg" in err
    assert err.count("\n") == 1
    assert not path.exists()


def test_plot_path_that_is_a_directory(small_logdir, tmp_path, capsys):
    code, out, err = run_report(capsys, small_logdir, "--plot", tmp_path)
    assert (code, out) == (2, "")
    assert err == (
        f"error: --plot {str(tmp_path)!r} is a directory; name a file, e.g. rates.png\n"
    )


def test_plot_in_another_format(small_logdir, tmp_path, capsys):
    path = tmp_path / "rates.svg"
    code, out, err = run_report(capsys, small_logdir, "--plot", path)
    assert code == 0
    assert path.read_text().lstrip().startswith("<?xml")
    assert err == f"Plot written to {path}\n"


def test_plot_that_cannot_be_written(small_logdir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = blocker / "rates.png"  # Its "directory" is a file: a real OS error.
    code, out, err = run_report(capsys, small_logdir, "--plot", path)
    assert code == 2
    assert "train" in out  # The report itself was printed first.
    assert err.startswith(f"error: cannot write the plot to {str(path)!r}: ")
    assert err.count("\n") == 1


# Files and directories that cannot be read: a notice each, the rest reported.

@contextlib.contextmanager
def as_user_without_root():
    """Runs the block as `nobody` if running as root (else as is)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_dir():
    """A directory `nobody` can enter (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="report_inputs_"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_unreadable_run_dir_and_event_file(shared_dir, capsys):
    write_scalars(shared_dir / "good", rates([10, 20], [4.0, 6.0]))
    write_scalars(shared_dir / "locked_dir", rates([10, 20], [1.0, 1.0]))
    locked_file = write_scalars(shared_dir / "locked_file", rates([10], [1.0]))
    (shared_dir / "locked_dir").chmod(0)
    Path(locked_file).chmod(0)
    with as_user_without_root():
        # The failures are real OS errors for this user.
        with pytest.raises(PermissionError):
            os.listdir(shared_dir / "locked_dir")
        with pytest.raises(PermissionError):
            open(locked_file, "rb")
        code, out, err = run_report(capsys, shared_dir)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["good"]
    assert err.splitlines() == [
        f"notice: {shared_dir / 'locked_dir'}: cannot list: Permission denied",
        f"notice: {locked_file}: cannot read: Permission denied",
    ]


def test_unreadable_logdir_is_an_error(shared_dir, capsys):
    write_scalars(shared_dir / "run", rates([10], [1.0]))
    shared_dir.chmod(0)
    try:
        with as_user_without_root():
            code, out, err = run_report(capsys, shared_dir)
    finally:
        shared_dir.chmod(0o755)
    assert (code, out) == (2, "")
    assert err == f"error: cannot read LOGDIR {str(shared_dir)!r}: Permission denied.\n"


def test_dangling_link_fifo_and_directory_named_as_event_files(tmp_path, capsys):
    write_scalars(tmp_path / "good", rates([10, 20], [4.0, 6.0]))
    odd = tmp_path / "odd"
    odd.mkdir()
    dangling = odd / "events.out.tfevents.1.host.1.0.v2"
    dangling.symlink_to(tmp_path / "removed")
    fifo = odd / "events.out.tfevents.2.host.1.0.v2"
    os.mkfifo(fifo)  # Opening it would wait for a writer forever.
    directory = odd / "events.out.tfevents.3.host.1.0.v2"
    directory.mkdir()
    code, out, err = run_report(capsys, tmp_path)
    assert code == 0
    assert out.splitlines()[1].split()[:3] == ["good", "global_step/sec", "2"]
    assert err.splitlines() == [
        f"notice: {dangling}: dangling link (to {str(tmp_path / 'removed')!r})",
        f"notice: {fifo}: not a regular file (a FIFO, socket or device), not read",
        f"notice: {directory}: is a directory, not an event file",
    ]


def test_dangling_link_as_logdir(tmp_path, capsys):
    link = tmp_path / "logs"
    link.symlink_to(tmp_path / "gone")
    assert run_report(capsys, link) == (
        2, "", f"error: LOGDIR {str(link)!r} is a dangling link.\n"
    )


def test_linked_run_dirs_are_followed_once(tmp_path, capsys):
    logs = tmp_path / "logs"
    write_scalars(logs / "run", rates([10], [4.0]))
    (logs / "latest").symlink_to(logs / "run")
    (logs / "run" / "loop").symlink_to(logs)  # A cycle.
    write_scalars(tmp_path / "elsewhere", rates([10], [2.0]))
    (logs / "borrowed").symlink_to(tmp_path / "elsewhere")
    code, out, err = run_report(capsys, logs)
    assert (code, err) == (0, "")
    # "run" once, under its own name (not as "latest"); a run only behind a
    # link is read through it.
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["run", "borrowed"]


def test_file_as_logdir(tmp_path, capsys):
    path = write_scalars(tmp_path, rates([10, 20], [4.0, 6.0]))
    code, out, err = run_report(capsys, path)
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split()[:4] == [
        os.path.basename(path), "global_step/sec", "2", "10-20"
    ]
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert run_report(capsys, other)[2] == (
        f"error: LOGDIR {str(other)!r} is not a directory (nor an event file: "
        "their names hold 'tfevents').\n"
    )


# Truncated and damaged files: what was read is reported, and a notice says how much.

def test_truncated_event_file(tmp_path, capsys):
    path = write_scalars(tmp_path / "run", rates([10, 20, 30, 40, 50], [4, 4, 2, 4, 4]))
    spans = record_spans(path)
    assert len(spans) == 6  # The file-version event, then one per scalar.
    start, length = spans[-1]
    os.truncate(path, start + length - 3)  # Killed while writing the last one.
    code, out, err = run_report(capsys, tmp_path)
    assert code == 0
    assert out.splitlines()[1].split()[:4] == ["run", "global_step/sec", "4", "10-40"]
    assert err == (
        f"notice: {path}: truncated (its last record is incomplete: still being "
        "written, or its writer was killed); read 5 records before it\n"
    )


def test_damaged_event_file(tmp_path, capsys):
    path = write_scalars(tmp_path / "run", rates([10, 20, 30, 40], [4, 4, 4, 4]))
    start, length = record_spans(path)[3]  # The third scalar (step 30).
    data = bytearray(Path(path).read_bytes())
    data[start + 12 + 5] ^= 0xFF  # One flipped byte in its data.
    Path(path).write_bytes(bytes(data))
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert code == 0
    summary = strict_json(out)["runs"]["run"]["global_step/sec"]
    assert (summary["records"], summary["last_step"]) == (2, 20)
    assert err == (
        f"notice: {path}: damaged (a record failed its CRC check), the rest of "
        "it not read; read 3 records before it\n"
    )
    assert strict_json(out)["notices"][0] == err[len("notice: "):-1]


# NaN and inf: counted and shown, left out of the statistics; strict JSON.

def test_nan_and_inf_records(tmp_path, capsys):
    values = [8.0, math.nan, 8.0, math.inf, 2.0, 10.0, 6.0]
    write_scalars(tmp_path / "run", rates([10, 20, 30, 40, 50, 60, 70], values))
    write_scalars(tmp_path / "diverged", rates([10, 20], [math.nan, math.nan]))
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert (code, err) == (0, "")
    data = strict_json(out)
    run = data["runs"]["run"]["global_step/sec"]
    # Finite: 2 6 8 8 10. Median 8, p10 at 0.4 -> 2 + 0.4 * 4, threshold 4.
    assert (run["records"], run["median"], run["min"], run["p90"]) == (7, 8.0, 2.0, 9.2)
    assert run["p10"] == pytest.approx(3.6)
    assert run["low_threshold"] == 4.0
    assert run["low_records"] == [{"from_step": 40, "step": 50, "value": 2.0}]
    assert run["non_finite"] == [
        {"step": 20, "value": "nan"}, {"step": 40, "value": "inf"}
    ]
    diverged = data["runs"]["diverged"]["global_step/sec"]
    assert [diverged[k] for k in ("records", "median", "p10", "p90", "min")] == [
        2, None, None, None, None
    ]
    assert (diverged["low_records"], diverged["low_threshold"]) == (None, None)

    code, out, _ = run_report(capsys, tmp_path)
    lines = out.splitlines()
    assert lines[1].split() == [
        "diverged", "global_step/sec", "2", "10-20", "-", "-", "-", "-", "-", "-"
    ]
    # Throughput: the records at 30, 50, 60 and 70 (10 steps each; the
    # first's start is unknown, NaN and inf hold no seconds).
    throughput = 40 / (10 / 8 + 10 / 2 + 10 / 10 + 10 / 6)
    assert lines[2].split()[4:] == [
        f"{throughput:.3g}", "8", "3.6", "9.2", "2", "1"
    ]
    assert lines[-3:] == [
        "Non-finite records (counted in records, left out of the statistics):",
        "  diverged  global_step/sec  2: nan at step 10, nan at step 20",
        "  run  global_step/sec  2: nan at step 20, inf at step 40",
    ]


def test_strict_json_turns_every_non_finite_number_into_text():
    assert formatting.strict({"a": [1.0, math.nan, {"b": -math.inf}], "c": None}) == {
        "a": [1.0, "nan", {"b": "-inf"}], "c": None
    }


# One directory, two runs whose steps start over: never averaged as one.

def test_two_runs_in_one_directory_are_reported_apart(tmp_path, capsys):
    first = write_scalars(tmp_path / "train", rates([100, 200, 300], [10.0] * 3))
    second = write_scalars(tmp_path / "train", rates([100, 200], [2.0, 2.0]))
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert code == 0
    data = strict_json(out)
    assert list(data["runs"]) == ["train#1", "train#2"]
    assert data["runs"]["train#1"]["global_step/sec"]["median"] == 10.0
    assert data["runs"]["train#2"]["global_step/sec"]["median"] == 2.0
    assert data["runs"]["train#2"]["global_step/sec"]["low_records"] == []
    assert data["sources"]["train#2"] == {
        "directory": str(tmp_path / "train"), "event_files": [os.path.basename(second)]
    }
    assert err == (
        f"notice: {tmp_path / 'train'}: holds 2 runs, its steps start over "
        f"(step 100 of global_step/sec in {os.path.basename(second)} after step "
        "300); reported apart as train#1, train#2, never averaged as one\n"
    )
    assert data["sources"]["train#1"]["event_files"] == [os.path.basename(first)]


def test_steps_that_go_on_in_a_new_event_file_stay_one_run(tmp_path, capsys):
    write_scalars(tmp_path / "train", rates([100, 200], [10.0, 10.0]))
    write_scalars(tmp_path / "train", rates([300, 400], [2.0, 10.0]))
    code, out, err = run_report(capsys, tmp_path)
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split()[:4] == [
        "train", "global_step/sec", "4", "100-400"
    ]


def test_steps_that_start_over_within_one_file(tmp_path, capsys):
    # One writer kept across two trainings (a summary_writer given twice).
    write_scalars(tmp_path / "train", [
        ("time_to_first_step", 1, 3.0), *rates([100, 200], [10.0, 10.0]),
        ("time_to_first_step", 1, 5.0), *rates([100], [2.0]),
    ])
    code, out, err = run_report(capsys, tmp_path)
    assert code == 0
    rows = [line.split()[:3] for line in out.splitlines()[1:]]
    assert rows == [
        ["train#1", "global_step/sec", "2"], ["train#1", "time_to_first_step", "1"],
        ["train#2", "global_step/sec", "1"], ["train#2", "time_to_first_step", "1"],
    ]
    assert "(step 1 of time_to_first_step in events.out.tfevents." in err


# Usage errors: one line, exit 2.

@pytest.mark.parametrize("argv, message", [
    ([], "error: the following arguments are required: COMMAND"),
    (["report"], "error: the following arguments are required: LOGDIR"),
    (["report", ".", "--bogus"], "error: unrecognized arguments: --bogus"),
    (["plot"], "error: argument COMMAND: invalid choice: 'plot'"),
])
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_an_unexpected_error_is_one_line(small_logdir, monkeypatch, capsys):
    def broken(logdir, **options):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report, "load_report", broken)
    # 4, never 1: a CI gate reads 1 as "slower".
    assert run_report(capsys, small_logdir) == (
        4, "", "error: unexpected RuntimeError: disk on fire\n"
    )


# No TensorFlow, no traceback: checked in fresh processes.

def _python(code, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True, text=True, env=env, timeout=120, **kwargs,
    )


AS_MAIN = """
import runpy, sys
sys.argv = ["keras_stepcounter", *sys.argv[1:]]
try:
    runpy.run_module("keras_stepcounter", run_name="__main__")
except SystemExit as done:
    code = done.code
heavy = sorted(
    m for m in ("tensorflow", "keras", "tf_keras", "jax") if m in sys.modules
)
print("exit", code, "imported", heavy, file=sys.stderr)
"""


def test_help_and_a_small_report_import_no_tensorflow(small_logdir):
    done = _python(AS_MAIN, "report", "--help")
    assert done.stderr.splitlines()[-1] == "exit 0 imported []"
    assert "usage: python -m keras_stepcounter report" in done.stdout
    done = _python(AS_MAIN, "report", small_logdir, "--json")
    assert without_fallback(done.stderr) == "exit 0 imported []\n"
    assert strict_json(done.stdout)["runs"]["train"]["global_step/sec"]["records"] == 3


def test_a_closed_pipe_ends_quietly(small_logdir):
    read_end, write_end = os.pipe()
    os.close(read_end)  # The reader (`| head`) is gone before the report.
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "keras_stepcounter", "report", str(small_logdir)],
        stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=120,
    )
    os.close(write_end)
    assert (done.returncode, without_fallback(done.stderr)) == (4, "")


def test_two_writers_of_other_tags_at_the_same_time_stay_one_run(tmp_path, capsys):
    # E.g. a GraphStepCounter and a StepCounter with another tag, one
    # directory: nothing in them would be averaged.
    writers = [tf.summary.create_file_writer(str(tmp_path / "train")) for _ in range(2)]
    for step in (100, 200, 300):
        for writer, tag in zip(writers, ("global_step/sec", "examples/sec")):
            with writer.as_default():
                tf.summary.scalar(tag, 4.0, step=step)
            writer.flush()
    for writer in writers:
        writer.close()
    assert len(event_files(str(tmp_path / "train"))) == 2
    code, out, err = run_report(capsys, tmp_path)
    assert (code, err) == (0, "")
    assert [line.split()[:4] for line in out.splitlines()[1:]] == [
        ["train", "global_step/sec", "3", "100-300"],
        ["train", "examples/sec", "3", "100-300"],
    ]


# The same with the real recorder: StepCounter's own writes.

def _fit(keras, make_model, tiny_data, output_dir, clock, model=None, epochs=1):
    """30 steps an epoch of 0.125 fake seconds each: records every 10 steps."""
    import keras_stepcounter

    class Ticker(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.advance(0.125)

    counter = counter_on(clock, every_n_steps=10, output_dir=str(output_dir),
        time_to_first_step=True,
    )
    x, y = tiny_data
    model = model or make_model()
    model.fit(
        x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=[Ticker(), counter]
    )
    return model


def test_stepcounter_output_dir_used_by_two_trainings(
    keras, make_model, tiny_data, tmp_path, fake_clock, capsys
):
    _fit(keras, make_model, tiny_data, tmp_path / "train", fake_clock)
    # A fresh model: its steps start at 0 again.
    _fit(keras, make_model, tiny_data, tmp_path / "train", fake_clock)
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert code == 0
    runs = strict_json(out)["runs"]
    assert list(runs) == ["train#1", "train#2"]
    assert [runs[r]["global_step/sec"]["records"] for r in runs] == [2, 2]
    assert "holds 2 runs, its steps start over" in err


def test_stepcounter_fits_that_go_on_stay_one_run(
    keras, make_model, tiny_data, tmp_path, fake_clock, capsys
):
    model = _fit(keras, make_model, tiny_data, tmp_path / "train", fake_clock, epochs=2)
    _fit(keras, make_model, tiny_data, tmp_path / "train", fake_clock, model=model)
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert (code, err) == (0, "")
    runs = strict_json(out)["runs"]
    assert list(runs) == ["train"]
    assert runs["train"]["time_to_first_step"]["records"] == 2
    assert runs["train"]["global_step/sec"]["last_step"] == 81


def test_nothing_readable_names_each_file_then_fails(tmp_path, capsys):
    path = write_scalars(tmp_path / "run", rates([10, 20], [4.0, 4.0]))
    os.truncate(path, record_spans(path)[0][1] + 4)  # Cut inside the first scalar.
    dangling = tmp_path / "run" / "events.out.tfevents.9.host.1.0.v2"
    dangling.symlink_to(tmp_path / "removed")
    code, out, err = run_report(capsys, tmp_path)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"notice: {path}: truncated (its last record is incomplete: still being "
        "written, or its writer was killed); read 1 record before it",
        f"notice: {dangling}: dangling link (to {str(tmp_path / 'removed')!r})",
        f"error: no rate records under {str(tmp_path)!r}: no event file has a tag "
        "of keras_stepcounter's (ending in '/sec', or time_to_first_step, mfu, "
        "step_time/*, stall_secs, goodput/*, time_frac/*); 2 notices above.",
    ]


# Two writers of one directory at the same time (two processes, or two runs
# started at once): never averaged as one run.

def _stepcounters_at_once(output_dir, clocks, step_secs, steps=30):
    """StepCounters tracking at the same time into one directory, their steps
    interleaved; counter i's steps take `step_secs[i]` (fake) seconds."""
    counters = [
        counter_on(clock, every_n_steps=10, output_dir=str(output_dir)) for clock in clocks
    ]
    done = [0] * len(counters)
    with contextlib.ExitStack() as stack:
        for i, counter in enumerate(counters):
            stack.enter_context(counter.track(lambda i=i: done[i]))
        for _ in range(steps):
            for i, counter in enumerate(counters):
                clocks[i].advance(step_secs[i])
                done[i] += 1
                counter.step_done()
    for counter in counters:
        counter.close()


def test_two_stepcounters_writing_at_once_are_reported_apart(tmp_path, capsys):
    from conftest import FakeClock

    _stepcounters_at_once(tmp_path / "train", [FakeClock(), FakeClock()], [0.1, 0.2])
    first, second = event_files(str(tmp_path / "train"))
    names = [
        f"train#{os.path.basename(p).split('tfevents.')[1]}" for p in (first, second)
    ]
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert code == 0
    data = strict_json(out)
    assert list(data["runs"]) == names
    assert [data["runs"][n]["global_step/sec"]["median"] for n in names] == [10.0, 5.0]
    assert [data["runs"][n]["global_step/sec"]["records"] for n in names] == [2, 2]
    assert [data["sources"][n]["event_files"] for n in names] == [
        [os.path.basename(first)], [os.path.basename(second)]
    ]
    assert err == (
        f"notice: {tmp_path / 'train'}: holds 2 runs, 2 writers recorded at the "
        f"same time (global_step/sec at steps 11-21 in both "
        f"{os.path.basename(first)} and {os.path.basename(second)}); reported "
        f"apart as {names[0]}, {names[1]}, never averaged as one\n"
    )


def test_a_run_resumed_in_a_second_event_file_stays_one_run(tmp_path, capsys):
    from conftest import FakeClock

    clock, done = FakeClock(), [0]
    for _ in range(2):  # A second counter (process) goes on from step 30.
        counter = counter_on(clock, every_n_steps=10, output_dir=str(tmp_path / "train"))
        with counter.track(lambda: done[0]):
            for _ in range(30):
                clock.advance(0.25)
                done[0] += 1
                counter.step_done()
        counter.close()
    assert len(event_files(str(tmp_path / "train"))) == 2
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert (code, err) == (0, "")
    rates = strict_json(out)["runs"]["train"]["global_step/sec"]
    assert (rates["records"], rates["first_step"], rates["last_step"]) == (4, 11, 51)
    assert rates["median"] == 4.0


def test_writers_at_once_then_a_new_run_are_three(tmp_path, capsys):
    writers = [tf.summary.create_file_writer(str(tmp_path / "train")) for _ in range(2)]
    for step in (100, 200, 300):
        for writer, value in zip(writers, (4.0, 8.0)):
            with writer.as_default():
                tf.summary.scalar("global_step/sec", value, step=step)
            writer.flush()
    for writer in writers:
        writer.close()
    later = write_scalars(tmp_path / "train", rates([100, 200], [2.0, 2.0]))
    paths = event_files(str(tmp_path / "train"))
    assert later in paths and len(paths) == 3
    code, out, err = run_report(capsys, tmp_path, "--json")
    assert code == 0
    runs = strict_json(out)["runs"]
    assert [r["global_step/sec"]["median"] for r in runs.values()] == [4.0, 8.0, 2.0]
    assert list(runs)[2] == f"train#{os.path.basename(later).split('tfevents.')[1]}"
    assert "holds 3 runs, 2 writers recorded at the same time (global_step/sec at " \
        "steps 100-300 in both" in err
    assert f"; its steps start over (step 100 of global_step/sec in " \
        f"{os.path.basename(later)} after step 300); reported apart as" in err
