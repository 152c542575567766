"""KerasTuner: one run directory per trial, with a real tuner.

KerasTuner deep-copies the `callbacks=` of `search()` for every trial and
gives per-trial directories only to its own `TensorBoard` callback, so a
`StepCounter(output_dir=...)` passed to `search()` writes every trial into
one directory (TensorBoard draws one line that jumps back to step 0 at each
trial). The guide's pattern (docs/how-it-measures.md, "KerasTuner: one run
per trial") adds the counter in the tuner's public `run_trial`, with the
trial's id in `output_dir`. Both are run here: a RandomSearch of 2 trials,
each 2 epochs of 20 steps, records every 5 steps; and the guide's word on
`executions_per_trial=2`.
"""

import os
from typing import Dict, List

import keras_tuner
import numpy as np
import tensorflow as tf

import keras_stepcounter
from keras_stepcounter.tools.events import event_files, read_event_file, read_scalars
from keras_stepcounter.tools.report import load_report

keras = tf.keras
rng = np.random.default_rng(0)
X = rng.random((80, 8), dtype=np.float32)  # 20 batches of 4
Y = rng.random((80, 1), dtype=np.float32)
# Per trial: a baseline at step 1, records at 6, 11, ..., 36 (the second
# epoch's steps continue the first's), the ledger at the run's last step.
RECORD_STEPS = [6, 11, 16, 21, 26, 31, 36]


def build_model(hp: keras_tuner.HyperParameters) -> keras.Model:
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(hp.Int("units", 1, 64)),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer="sgd", loss="mse")
    return model


class CountedRandomSearch(keras_tuner.RandomSearch):
    """The guide's pattern: each trial's counter writes into its own run."""

    def __init__(self, *args, counter_root: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.counter_root = counter_root

    def run_trial(self, trial, *args, **kwargs):
        counter = keras_stepcounter.StepCounter(
            every_n_steps=5, goodput=True,
            output_dir=os.path.join(self.counter_root, trial.trial_id),
        )
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), counter]
        return super().run_trial(trial, *args, **kwargs)


def search(tuner: keras_tuner.Tuner, callbacks: List[keras.callbacks.Callback]) -> None:
    tuner.search(X, Y, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)


def steps_by_tag(run_dir: str) -> Dict[str, List[int]]:
    return {tag: [record.step for record in records]
            for tag, records in read_scalars(run_dir).items()}


def test_the_guides_pattern_gives_each_trial_its_own_run(tmp_path):
    root = tmp_path / "logs" / "tuning"
    tuner = CountedRandomSearch(
        build_model, objective="loss", max_trials=2, seed=0,
        directory=str(tmp_path / "tuner"), project_name="search", counter_root=str(root),
    )
    search(tuner, callbacks=[])
    trial_ids = sorted(trial.trial_id for trial in tuner.oracle.trials.values())
    assert len(trial_ids) == 2
    assert sorted(os.listdir(root)) == trial_ids
    for trial_id in trial_ids:
        run_dir = str(root / trial_id)
        assert len(event_files(run_dir)) == 1
        steps = steps_by_tag(run_dir)
        assert steps["global_step/sec"] == RECORD_STEPS
        assert steps["goodput/total_secs"] == [40]
    # The two trials really trained two models (not one run written twice).
    units = sorted(trial.hyperparameters.get("units") for trial in tuner.oracle.trials.values())
    assert units[0] != units[1]


def test_a_counter_passed_to_search_writes_every_trial_into_one_directory(tmp_path):
    # What the guide warns of: the deep copies share output_dir, one event
    # file per trial, each trial's steps from 1 again (TensorBoard's zig-zag).
    log_dir = tmp_path / "logs" / "shared"
    tuner = keras_tuner.RandomSearch(
        build_model, objective="loss", max_trials=2, seed=0,
        directory=str(tmp_path / "tuner"), project_name="search",
    )
    search(tuner, callbacks=[keras_stepcounter.StepCounter(every_n_steps=5, output_dir=str(log_dir))])
    files = event_files(str(log_dir))
    assert len(files) == 2
    per_file = [[record.step for tag, record in read_event_file(path).scalars
                 if tag == "global_step/sec"] for path in files]
    assert per_file == [RECORD_STEPS, RECORD_STEPS]



def test_executions_of_a_trial_share_its_directory_and_the_report_splits_them(tmp_path):
    # run_trial runs once per trial; its executions are fresh models, each
    # from step 0 (the guide says so, and that the report reads them apart).
    root = tmp_path / "logs" / "tuning"
    tuner = CountedRandomSearch(
        build_model, objective="loss", max_trials=1, executions_per_trial=2, seed=0,
        directory=str(tmp_path / "tuner"), project_name="search", counter_root=str(root),
    )
    search(tuner, callbacks=[])
    (trial_id,) = [trial.trial_id for trial in tuner.oracle.trials.values()]
    assert os.listdir(root) == [trial_id]
    assert len(event_files(str(root / trial_id))) == 2
    runs = load_report(str(root)).to_json_dict()["runs"]
    assert sorted(runs) == [f"{trial_id}#1", f"{trial_id}#2"]
    for run in runs.values():
        assert run["global_step/sec"]["records"] == len(RECORD_STEPS)
