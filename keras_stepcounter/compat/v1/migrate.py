"""From a v1 `StepCounterHook` (or its arguments) to a `StepCounter` callback."""

from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf

from keras_stepcounter.callback import StepCounter
from keras_stepcounter.compat.v1.step_counter_hook import StepCounterHook

_V1_ARGS = ("every_n_steps", "every_n_secs", "output_dir", "summary_writer")


def to_step_counter(hook: Any = None, /, **kwargs: Any) -> StepCounter:
    """The `StepCounter` callback that records what `hook` recorded.

    Takes the hook's `every_n_steps`, `every_n_secs`, `output_dir` and
    `summary_writer`; `kwargs` override them and may add any `StepCounter`
    keyword (`tag=`, `batch_size=`, ...). Without a hook, `kwargs` are the
    v1 constructor's arguments (and the same keywords).

    A v1 `FileWriter` as `summary_writer` (which a Keras callback cannot
    write through) becomes `output_dir=<its logdir>`, so records land in
    the same TensorBoard run. The tag is `StepCounter`'s `global_step/sec`,
    v1's tag for the default global step; pass `tag=` to keep another.
    Steps per run (v1's `_set_steps_per_run`) become the model's
    `steps_per_execution`, which the callback reads itself.

    Args:
        hook: A `keras_stepcounter.compat.v1.StepCounterHook` or TensorFlow's
            `tf.compat.v1.train.StepCounterHook`, or None.
        **kwargs: Arguments of `StepCounter`, taking precedence.

    Example:

    ```python
    hook = StepCounterHook(every_n_steps=100, output_dir="logs/train")
    model.fit(x, y, callbacks=[to_step_counter(hook)])
    ```
    """
    settings = _hook_settings(hook) if hook is not None else {}
    settings.update(kwargs)
    writer = settings.get("summary_writer")
    if writer is not None and not isinstance(writer, tf.summary.SummaryWriter):
        settings["summary_writer"] = None
        if "output_dir" not in kwargs:
            settings["output_dir"] = _logdir_of(writer)
    return StepCounter(**settings)


def _hook_settings(hook: Any) -> Dict[str, Any]:
    if isinstance(hook, StepCounterHook):
        return {name: getattr(hook, name) for name in _V1_ARGS}
    if isinstance(hook, tf.compat.v1.train.StepCounterHook):
        # TensorFlow's hook keeps its settings in private attributes.
        return {
            "every_n_steps": hook._timer._every_steps,
            "every_n_secs": hook._timer._every_secs,
            "output_dir": hook._output_dir,
            "summary_writer": hook._summary_writer,
        }
    raise TypeError(
        "hook must be a StepCounterHook (keras_stepcounter.compat.v1 or "
        f"tf.compat.v1.train), got {hook!r} of type {type(hook).__name__}."
    )


def _logdir_of(writer: Any) -> str:
    get_logdir = getattr(writer, "get_logdir", None)
    if not callable(get_logdir):
        raise TypeError(
            "summary_writer must be a tf.compat.v1.summary.FileWriter (with "
            f"get_logdir) or a tf.summary.SummaryWriter, got {writer!r} of "
            f"type {type(writer).__name__}; pass output_dir= instead."
        )
    return get_logdir()
