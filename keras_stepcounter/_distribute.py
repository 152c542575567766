"""Who writes in a job of several processes, and what each process is called.

One writer per job (docs/distributed.md, "Who writes"), decided once per
`fit` (or `track`) from what the process already knows: no collective call,
nothing on the per-batch path. Every process runs its own stall watchdog,
whose lines name the process (`process_label`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from keras_stepcounter._step_readers import keras
from keras_stepcounter.core.rates import tf_logger

# Task types that are the chief of their job: "master" is the Estimator-era
# name of the chief (tf.estimator.RunConfig: the chief is the "master" task
# when the cluster has one); an evaluator is a chief of its own
# (multi_worker_util.is_chief).
_CHIEF_TASK_TYPES = ("chief", "master", "evaluator")

_NOT_CHIEF_WARNING = (
    "keras_stepcounter: this process is not the chief of its job (%s), so "
    "the step counter records nothing here: no event file, no rate or "
    "goodput line (with stall_secs, its stall watchdog still warns here). "
    "The chief records the global steps/sec for the whole job."
)


@dataclass(frozen=True)
class ChiefDecision:
    """Whether this process writes and logs records (its truth), and why."""

    is_chief: bool
    reason: str

    def __bool__(self) -> bool:
        return self.is_chief


def is_chief(model: Any = None) -> bool:
    """Whether this process writes and logs records; if not, one WARNING
    through TensorFlow's logger says so and why. False only on a JAX
    process other than 0, a worker whose `tf.distribute` strategy (the
    model's, or the one in scope) should not save summaries, or a worker
    that `TF_CONFIG` names (custom loops outside `strategy.scope()`).
    """
    decision = chief_decision(model)
    if not decision:
        tf_logger.warning(_NOT_CHIEF_WARNING, decision.reason)
    return decision.is_chief


def chief_decision(model: Any = None) -> ChiefDecision:
    """`is_chief`'s decision and its reason, without logging."""
    jax_job = jax_process()
    if jax_job is not None:
        index, count = jax_job
        if index != 0:
            return ChiefDecision(
                False, f"it is JAX process {index} of {count}; process 0 writes"
            )
        return ChiefDecision(True, f"JAX process 0 of {count}")
    strategy = _strategy_of(model)
    if not _strategy_says_chief(strategy):
        return ChiefDecision(
            False,
            f"its tf.distribute strategy, {type(strategy).__name__}, says this "
            "worker should not save summaries (extended.should_save_summary "
            "is False)",
        )
    return tf_config_decision(os.environ.get("TF_CONFIG"))


def _strategy_of(model: Any) -> Optional[Any]:
    # tf_keras and Keras 3 on TensorFlow give the strategy the model was
    # built under; Keras 3 on JAX has none.
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None and tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
    return strategy


def _strategy_says_chief(strategy: Any) -> bool:
    try:
        return strategy is None or bool(strategy.extended.should_save_summary)
    except Exception:  # Not implemented by every strategy: assume a chief.
        return True


def tf_config_decision(tf_config: Optional[str]) -> ChiefDecision:
    """TensorFlow's rule for the chief (`multi_worker_util.is_chief`), read
    from a `TF_CONFIG` value: a "chief" or "master" task (see
    `_CHIEF_TASK_TYPES`), else worker 0. No TF_CONFIG (or one without a task,
    or one that cannot be read, which TensorFlow reports itself) means a
    single process: a chief.
    """
    if not tf_config:
        return ChiefDecision(True, "no TF_CONFIG: a single process")
    task = _tf_config_task(tf_config)
    if task is None:
        return ChiefDecision(True, "TF_CONFIG cannot be read: taken as a single process")
    task_type, task_id, cluster = task
    if task_type is None:
        return ChiefDecision(True, "TF_CONFIG names no task: a single process")
    if task_type in _CHIEF_TASK_TYPES:
        return ChiefDecision(True, f'TF_CONFIG names this task "{task_type}"')
    chief_types = [name for name in ("chief", "master") if name in cluster]
    named = f'TF_CONFIG names this task "{task_type}" {task_id}'
    if task_type != "worker":
        return ChiefDecision(False, f"{named}, which is never the chief")
    if chief_types:
        return ChiefDecision(
            False, f'{named}, and the cluster\'s chief is its "{chief_types[0]}" task'
        )
    if task_id != 0:
        return ChiefDecision(
            False, f'{named}; with no "chief" task in the cluster, worker 0 is the chief'
        )
    return ChiefDecision(True, f'{named}; with no "chief" task, worker 0 is the chief')


def _tf_config_task(tf_config: str) -> Optional[Tuple[Optional[str], int, Dict[str, Any]]]:
    """(task type, task index, cluster) from a `TF_CONFIG` value; None if
    it cannot be read."""
    try:
        config = json.loads(tf_config)
        task = config.get("task") or {}
        cluster = config.get("cluster") or {}
        return task.get("type"), int(task.get("index", 0)), dict(cluster)
    except (ValueError, TypeError, AttributeError):
        return None


def process_label() -> Optional[str]:
    """This process's name in a job of several processes, for the stall
    watchdog's lines: "JAX process 1 of 2", else the task `TF_CONFIG` names
    in a cluster of more than one task ("worker 1 (TF_CONFIG)"); None in
    one process.
    """
    jax_job = jax_process()
    if jax_job is not None:
        return f"JAX process {jax_job[0]} of {jax_job[1]}"
    task = _tf_config_task(os.environ.get("TF_CONFIG") or "")
    if task is None or task[0] is None:
        return None
    task_type, task_id, cluster = task
    tasks = sum(len(tasks) for tasks in cluster.values() if isinstance(tasks, (list, dict)))
    return f"{task_type} {task_id} (TF_CONFIG)" if tasks > 1 else None


def jax_process() -> Optional[Tuple[int, int]]:
    """(index, count) of this process in a JAX job of several processes.

    None when there is one process, or when JAX is not what trains. JAX is
    asked only when already imported and in use (Keras runs on JAX, or
    `jax.distributed` was initialized): asking would start its backends in
    a TensorFlow job (on a GPU, claiming most of its memory). Its process
    count and index are local facts, not collectives.
    """
    jax = sys.modules.get("jax")
    if jax is None or not (_keras_on_jax() or _jax_distributed_initialized(jax)):
        return None
    try:
        count, index = int(jax.process_count()), int(jax.process_index())
    except Exception:  # A JAX without backends: not a job to split.
        return None
    return (index, count) if count > 1 else None


def _keras_on_jax() -> bool:
    try:
        return bool(keras.backend.backend() == "jax")
    except Exception:  # tf_keras without backend(): TensorFlow.
        return False


def _jax_distributed_initialized(jax: Any) -> bool:
    try:
        return bool(jax.distributed.is_initialized())
    except Exception:  # A JAX without it: not initialized.
        return False
