"""The report's step-time, watchdog-stall, goodput and time_frac sections.

The records are written here with `tf.summary`, under the tags the
recorders use (`keras_stepcounter.core.tags`), at the steps they write
them: step-time and time_frac records with each rate record, `stall_secs`
at the step where training resumed, one goodput set per fit at its last
step.
"""

import json
import math
import struct

import pytest
import tensorflow as tf

from keras_stepcounter.tools import cli, plot, report

# Values exact in float32 (summaries hold float32).
GOODPUT_FIT_1 = {"total_secs": 8.0, "startup_secs": 1.0, "step_secs": 6.0,
                 "epoch_boundary_secs": 0.5, "recorder_secs": 0.25, "other_secs": 0.25,
                 "fraction": 0.75}
GOODPUT_FIT_2 = {"total_secs": 4.0, "startup_secs": 0.5, "step_secs": 3.0,
                 "epoch_boundary_secs": 0.25, "recorder_secs": 0.125,
                 "other_secs": 0.125, "fraction": 0.75}
STEPS = [10, 20, 30, 40, 50, 60]
RATES = [10.0, 10.0, 2.0, 10.0, 10.0, 10.0]
# The step at 30 holds a 4.25 s stall: its p99 and max show it.
P50 = [0.10, 0.12, 0.11, 0.09, 0.10, 0.10]  # Sorted .09 .10 .10 .10 .11 .12: median .10
P90 = [0.2, 0.2, 0.3, 0.2, 0.2, 0.2]
P99 = [0.25, 0.25, 4.0, 0.25, 0.25, 0.25]
MAX = [0.3, 0.3, 4.5, 0.3, 0.3, 0.3]
INPUT = [0.1, 0.2, 0.3, 0.4, 0.2, 0.2]  # Median .2; p90 at 4.5: .3 + .5 * .1
# Each record's training seconds: 9, 10, 10, 10, 9 and 10 steps at its rate.
SECONDS = [0.9, 1.0, 5.0, 1.0, 0.9, 1.0]
SECONDS_TOTAL = sum(SECONDS)
INPUT_WEIGHTED = sum(f * s for f, s in zip(INPUT, SECONDS))


def write(run_dir, records):
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        for tag, step, value in records:
            tf.summary.scalar(tag, value, step=step)
    writer.close()


def goodput(step, ledger):
    return [(f"goodput/{name}", step, value) for name, value in ledger.items()]


def two_fits():
    """A StepCounter's records over two fits, the second going on at step 41
    (each fit's rate takes its baseline at its first step end: 1 and 41)."""
    records = [("time_to_first_step", 1, 2.0), ("baseline_step", 1, 1.0)]
    for i, step in enumerate(STEPS):
        if step == 50:
            records.append(("baseline_step", 41, 41.0))
        if step == 30:
            records.append(("stall_secs", 25, 4.25))
        records += [("global_step/sec", step, RATES[i]),
                    ("step_time/p50", step, P50[i]), ("step_time/p90", step, P90[i]),
                    ("step_time/p99", step, P99[i]), ("step_time/max", step, MAX[i]),
                    ("time_frac/input", step, INPUT[i])]
        if step == 40:
            records += goodput(40, GOODPUT_FIT_1)
    return records + goodput(60, GOODPUT_FIT_2)


@pytest.fixture
def logdir(tmp_path):
    write(tmp_path / "fit", two_fits())
    return tmp_path


def reject_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def report_json(capsys, logdir):
    assert cli.main(["report", str(logdir), "--json"]) == 0
    return json.loads(capsys.readouterr().out, parse_constant=reject_constant)


def f32(value):
    return pytest.approx(value, rel=1e-6)  # Summaries hold float32.


def test_sections_in_json(logdir, capsys):
    data = report_json(capsys, logdir)
    assert data["step_time"] == {"fit": {
        "records": 6, "first_step": 10, "last_step": 60,
        "p50": f32(0.10), "p90": f32(0.2), "p99": f32(0.25), "max": 4.5, "max_step": 30,
    }}
    assert data["watchdog_stalls"] == {"fit": [{"step": 25, "secs": 4.25}]}
    assert data["goodput"] == {"fit": {
        "fits": [{"step": 40, **GOODPUT_FIT_1}, {"step": 60, **GOODPUT_FIT_2}],
        "total": {"total_secs": 12.0, "startup_secs": 1.5, "step_secs": 9.0,
                  "epoch_boundary_secs": 0.75, "recorder_secs": 0.375,
                  "other_secs": 0.375, "fraction": 0.75},
        "rerun_steps": [],
    }}
    assert list(data["goodput"]["fit"]["total"]) == [
        "total_secs", "startup_secs", "step_secs", "epoch_boundary_secs",
        "recorder_secs", "other_secs", "fraction",
    ]
    assert data["time_frac"] == {"fit": {"input": {
        "records": 6, "median": f32(0.2), "p90": f32(0.35)
    }}}
    # The low record is listed, beside the watchdog's stall.
    assert data["runs"]["fit"]["global_step/sec"]["low_records"] == [
        {"from_step": 20, "step": 30, "value": 2.0}
    ]
    # Steps 1-40 and 41-60 at the rates recorded: 9.8 s, and each input
    # share weighted by its record's seconds.
    assert data["runs"]["fit"]["global_step/sec"]["throughput"] == f32(
        58 / SECONDS_TOTAL
    )
    assert data["input_share"] == {"fit": {
        "share": f32(INPUT_WEIGHTED / SECONDS_TOTAL), "records": 6
    }}
    assert data["notices"] == []


def test_sections_in_the_text_report(logdir):
    text = report.load_report(str(logdir)).table()
    lines = text.splitlines()
    assert [line.split()[:2] for line in lines[1:3]] == [
        ["fit", "global_step/sec"], ["fit", "time_to_first_step"]
    ]
    assert lines[3:] == [
        "",
        "Low records (below 0.5 x the run's median; slow intervals, counted in "
        "the throughput; not stalls):",
        "  fit  global_step/sec  steps 20-30: 2 (median 10.0)",
        "",
        "Stalls seen by the watchdog (stall_secs):",
        "  fit  resumed at step 25 after 4.25 s without a step",
        "",
        "Input (time_frac/input, weighted by each record's training time):",
        "  fit  26% of training time waiting for input",
        "",
        "Step time (seconds; p50/p90/p99: median over records; max: the largest):",
        "run  records  steps  p50  p90   p99  max  max at step",
        "fit        6  10-60  0.1  0.2  0.25  4.5           30",
        "",
        "Goodput (where the wall clock of each fit went):",
        "  fit: 2 fits, ending at step 40 (8 s, fraction 0.75), "
        "step 60 (4 s, fraction 0.75)",
        "    bucket          seconds   share",
        "    startup            1.50   12.5%",
        "    step               9.00   75.0%",
        "    epoch_boundary     0.75    6.2%",
        "    recorder           0.38    3.1%",
        "    other              0.38    3.1%",
        "    total             12.00  100.0%",
        "",
        "Time in named blocks (time_frac/<name>: share of each record's interval):",
        "run  block  records  median   p90",
        "fit  input        6     0.2  0.35",
    ]


def test_restart_from_an_older_checkpoint_stays_one_run(tmp_path, capsys):
    first = [("global_step/sec", s, 5.0) for s in (100, 200, 300)]
    first += goodput(300, {"total_secs": 30.0, "step_secs": 24.0})
    write(tmp_path / "train", first)
    # The job resumes from the checkpoint at step 100: steps 101-300 again.
    second = [("goodput/rerun_steps", 100, 200.0)]
    second += [("global_step/sec", s, 4.0) for s in (200, 300, 400)]
    second += goodput(400, {"total_secs": 40.0, "step_secs": 32.0})
    write(tmp_path / "train", second)
    data = report_json(capsys, tmp_path)
    # One run, as TensorBoard draws it, with the steps run again marked.
    assert list(data["runs"]) == ["train"]
    assert data["reruns"] == {"train": [{"from_step": 100, "to_step": 300}]}
    assert data["goodput"]["train"]["rerun_steps"] == [{"step": 100, "steps": 200}]
    assert data["goodput"]["train"]["total"] == {
        "total_secs": 70.0, "step_secs": 56.0, "fraction": 0.8
    }
    assert data["runs"]["train"]["global_step/sec"]["records"] == 6
    assert data["notices"][-1].startswith("train: no baseline_step records")
    write(tmp_path / "rerun_only", [("goodput/rerun_steps", 5, 7.0)])
    lines = report.load_report(str(tmp_path)).table().splitlines()
    at = lines.index("  rerun_only:")  # Only re-run steps: no fit line.
    assert lines[at + 1] == "    re-run steps: 7 (recorded at step 5)"
    assert "  train: 2 fits, ending at step 300 (30.0 s, fraction -), step 400 " \
        "(40.0 s, fraction -)" in lines
    assert "    re-run steps: 200 (recorded at step 100)" in lines
    assert lines[lines.index(
        "Resumed from a checkpoint (one run, as TensorBoard draws it):") + 1] == (
        "  train  went back to step 100 after step 300: steps 100-300 run again"
    )


def test_a_restore_above_the_first_baseline_is_a_resume_a_start_at_0_a_new_run(
    tmp_path, capsys
):
    def fit(first_step, last_step):
        return [("baseline_step", first_step, float(first_step))] + [
            ("global_step/sec", s, 5.0)
            for s in range(first_step + 100, last_step + 1, 100)
        ]

    write(tmp_path / "resumed", fit(1, 301))
    write(tmp_path / "resumed", fit(101, 401))  # Restored at step 100.
    write(tmp_path / "again", fit(1, 301))
    write(tmp_path / "again", fit(1, 201))  # A new training from step 0.
    data = report_json(capsys, tmp_path)
    assert list(data["runs"]) == ["again#1", "again#2", "resumed"]
    assert data["reruns"] == {"resumed": [{"from_step": 101, "to_step": 301}]}
    # Throughput of the resumed run: each record from its own fit's baseline.
    resumed = data["runs"]["resumed"]["global_step/sec"]
    assert (resumed["records"], resumed["throughput"]) == (6, 5.0)


def test_sections_only_and_non_finite_values(tmp_path, capsys):
    write(tmp_path / "ledger", goodput(8, {"total_secs": 0.0, "step_secs": 0.0,
                                           "fraction": math.nan}))
    write(tmp_path / "timed", [("step_time/p50", 10, math.nan),
                               ("step_time/p50", 20, 0.5),
                               ("step_time/max", 20, math.inf)])
    data = report_json(capsys, tmp_path)
    assert data["runs"] == {"ledger": {}, "timed": {}}
    assert data["goodput"]["ledger"] == {
        "fits": [{"step": 8, "total_secs": 0.0, "step_secs": 0.0, "fraction": "nan"}],
        "total": {"total_secs": 0.0, "step_secs": 0.0, "fraction": None},
        "rerun_steps": [],
    }
    assert data["step_time"]["timed"] == {
        "records": 2, "first_step": 10, "last_step": 20,
        "p50": 0.5, "p90": None, "p99": None, "max": None, "max_step": None,
    }
    text = report.load_report(str(tmp_path)).table()
    assert text.startswith("Step time (seconds;")
    assert "timed        2  10-20  0.5    -    -    -            -" in text
    assert "    step       0.00      -" in text
    assert "  ledger: 1 fit, ending at step 8 (0 s, fraction nan)" in text


def png_size(path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_plot_draws_step_time_below_the_rates(logdir, tmp_path):
    result = report.load_report(str(logdir))
    figure = plot.rate_figure(result)
    rate_axes, time_axes = figure.axes
    [rate_line] = [l for l in rate_axes.get_lines() if l.get_label() == "fit"]
    assert list(rate_line.get_xdata()) == STEPS
    [p50_line] = time_axes.get_lines()
    assert list(p50_line.get_xdata()) == STEPS
    assert list(p50_line.get_ydata()) == [f32(v) for v in P50]
    [band] = time_axes.collections
    assert band.get_label() == "fit p50 to p99"
    # The band's outline runs along p50 and back along p99.
    ys = sorted({round(float(y), 4) for _, y in band.get_paths()[0].vertices})
    assert ys == sorted({round(v, 4) for v in P50 + P99})
    assert time_axes.get_ylabel() == "step time (s)"

    path = tmp_path / "rates.png"
    assert cli.main(["report", str(logdir), "--plot", str(path)]) == 0
    assert png_size(path) == (800, 700)


def test_plot_without_step_times_has_one_panel(tmp_path):
    write(tmp_path / "fit", [("global_step/sec", s, 4.0) for s in (10, 20)])
    result = report.load_report(str(tmp_path))
    assert len(plot.rate_figure(result).axes) == 1
    path = plot.plot_rates(result, str(tmp_path / "rates.png"))
    assert png_size(tmp_path / "rates.png") == (800, 450) and path.endswith("rates.png")


def test_plot_gives_a_run_one_colour_in_both_panels(logdir):
    write(logdir / "a_untimed", [("global_step/sec", s, 4.0) for s in (10, 20)])
    rate_axes, time_axes = plot.rate_figure(report.load_report(str(logdir))).axes
    untimed, timed = [
        l for l in rate_axes.get_lines() if "low record" not in l.get_label()
    ]
    assert (untimed.get_label(), timed.get_label()) == ("a_untimed", "fit")
    [p50_line] = time_axes.get_lines()
    assert p50_line.get_color() == timed.get_color() != untimed.get_color()


def test_ledger_buckets_in_fit_order_then_others(tmp_path, capsys):
    scrambled = {"other_secs": 1.0, "checkpoint_secs": 0.5, "fraction": 0.5,
                 "step_secs": 4.0, "total_secs": 8.0, "startup_secs": 2.5}
    write(tmp_path / "fit", goodput(30, scrambled))
    ledger = report_json(capsys, tmp_path)["goodput"]["fit"]
    assert list(ledger["fits"][0]) == [
        "step", "total_secs", "startup_secs", "step_secs", "other_secs",
        "checkpoint_secs", "fraction",
    ]
    assert list(ledger["total"]) == list(ledger["fits"][0])[1:]
    text = report.load_report(str(tmp_path)).table()
    assert [line.split()[0] for line in text.splitlines()[-5:]] == [
        "startup", "step", "other", "checkpoint", "total"
    ]
