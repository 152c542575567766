"""Who writes under `tf.distribute`: only the chief of a multi-worker job.

Decided once per `fit` (or `track`), from what the process already knows:
no collective call, nothing on the per-batch path.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import tensorflow as tf


def is_chief(model: Any = None) -> bool:
    """Whether this process writes and logs records.

    False only in a multi-worker job on a worker that is not the chief:
    when the model's `tf.distribute` strategy (or the strategy in scope)
    says it should not save summaries (`MultiWorkerMirroredStrategy` on a
    non-chief worker), or when `TF_CONFIG` names this task as such a worker
    (custom loops driven outside `strategy.scope()`). Everything else,
    `MirroredStrategy` and no strategy included, is a chief.
    """
    return _strategy_says_chief(_strategy_of(model)) and _tf_config_says_chief(
        os.environ.get("TF_CONFIG")
    )


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
    """TensorFlow's rule (`multi_worker_util.is_chief`), read from TF_CONFIG.

    The chief is the task of type "chief", or worker 0 when the cluster has
    no "chief"; an evaluator is a chief of its own. No TF_CONFIG (or one
    without a task) means a single process: a chief.
    """
    if not tf_config:
        return True
    try:
        config = json.loads(tf_config)
        task = config.get("task") or {}
        task_type = task.get("type")
        task_id = int(task.get("index", 0))
        cluster = config.get("cluster") or {}
    except (ValueError, TypeError, AttributeError):
        return True  # Unreadable: TensorFlow itself reports that, not us.
    if task_type in (None, "chief", "evaluator"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster
