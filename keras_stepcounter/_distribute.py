"""Who writes under `tf.distribute`: only the chief of a multi-worker job.

Decided once per `fit` (or `track`), from what the process already knows:
no collective call, nothing on the per-batch path. A process that is not
the chief says so, and why, in one warning each time it is decided.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

import tensorflow as tf

from keras_stepcounter.core.rates import tf_logger

# Task types that are the chief of their job: "master" is the Estimator-era
# name of the chief (tf.estimator.RunConfig: the chief is the "master" task
# when the cluster has one); an evaluator is a chief of its own
# (multi_worker_util.is_chief).
_CHIEF_TASK_TYPES = ("chief", "master", "evaluator")

_NOT_CHIEF_WARNING = (
    "keras_stepcounter: this process is not the chief of its job (%s), so "
    "the step counter records nothing here: no event file, no log line. "
    "The chief records the global steps/sec for the whole job."
)


@dataclass(frozen=True)
class ChiefDecision:
    """Whether this process writes and logs records, and why.

    Truthy when it does (`bool(decision)` is `decision.is_chief`).
    """

    is_chief: bool
    reason: str

    def __bool__(self) -> bool:
        return self.is_chief


def is_chief(model: Any = None) -> bool:
    """Whether this process writes and logs records; warns once if not.

    False only in a multi-worker job on a worker that is not the chief:
    when the model's `tf.distribute` strategy (or the strategy in scope)
    says it should not save summaries (`MultiWorkerMirroredStrategy` on a
    non-chief worker), or when `TF_CONFIG` names this task as such a worker
    (custom loops driven outside `strategy.scope()`). Everything else,
    `MirroredStrategy` and no strategy included, is a chief. When it is
    False, one WARNING through TensorFlow's logger says so and why
    (`chief_decision` gives the reason without logging).
    """
    decision = chief_decision(model)
    if not decision:
        tf_logger.warning(_NOT_CHIEF_WARNING, decision.reason)
    return decision.is_chief


def chief_decision(model: Any = None) -> ChiefDecision:
    """`is_chief`'s decision and its reason, without logging."""
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
    if strategy is None:
        return True
    try:
        return bool(strategy.extended.should_save_summary)
    except Exception:  # Not implemented by every strategy: assume a chief.
        return True


def _tf_config_says_chief(tf_config: Optional[str]) -> bool:
    return tf_config_decision(tf_config).is_chief


def tf_config_decision(tf_config: Optional[str]) -> ChiefDecision:
    """TensorFlow's rule for the chief, read from a `TF_CONFIG` value.

    As `multi_worker_util.is_chief` and `tf.estimator.RunConfig` decide:
    the task of type "chief" or "master" is the chief, and an "evaluator"
    is a chief of its own; worker 0 is the chief when the cluster has no
    "chief" (nor "master") task. No TF_CONFIG (or one without a task, or
    one that cannot be read, which TensorFlow reports itself) means a
    single process: a chief.
    """
    if not tf_config:
        return ChiefDecision(True, "no TF_CONFIG: a single process")
    try:
        config = json.loads(tf_config)
        task = config.get("task") or {}
        task_type = task.get("type")
        task_id = int(task.get("index", 0))
        cluster = config.get("cluster") or {}
    except (ValueError, TypeError, AttributeError):
        return ChiefDecision(True, "TF_CONFIG cannot be read: taken as a single process")
    if task_type is None:
        return ChiefDecision(True, "TF_CONFIG names no task: a single process")
    if task_type in _CHIEF_TASK_TYPES:
        return ChiefDecision(True, f'TF_CONFIG names this task "{task_type}"')
    chief_types = [name for name in ("chief", "master") if name in cluster]
    task = f'TF_CONFIG names this task "{task_type}" {task_id}'
    if task_type != "worker":
        return ChiefDecision(False, f"{task}, which is never the chief")
    if chief_types:
        return ChiefDecision(
            False, f'{task}, and the cluster\'s chief is its "{chief_types[0]}" task'
        )
    if task_id != 0:
        return ChiefDecision(
            False, f'{task}; with no "chief" task in the cluster, worker 0 is the chief'
        )
    return ChiefDecision(True, f'{task}; with no "chief" task, worker 0 is the chief')
