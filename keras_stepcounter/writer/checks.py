"""Checks of `output_dir` and `summary_writer`, run in the recorders'
constructors. A given `summary_writer` wins, else the recorder writes
through a writer of its own for `output_dir` (`opens_own_writer`)."""

from __future__ import annotations

import os
from typing import Any, Optional, TypeGuard

import tensorflow as tf


def check_writer_arguments(
    output_dir: Any, summary_writer: Any, *, v1: bool = False
) -> Optional[str]:
    """Checks `summary_writer` (a v2 `tf.summary` writer; with `v1`, a v1
    writer), then `output_dir`, which it creates; returns `output_dir` as a
    path, or None. Call it after every other check of the constructor, so
    that a failed check leaves no new directory behind.
    """
    if v1:
        check_v1_summary_writer(summary_writer)
    else:
        check_summary_writer(summary_writer)
    return check_output_dir(output_dir)


def opens_own_writer(output_dir: Optional[str], summary_writer: Any) -> TypeGuard[str]:
    """Whether a recorder writes through a writer of its own for
    `output_dir`: only when given no `summary_writer`, which wins."""
    return bool(output_dir) and summary_writer is None


def check_output_dir(output_dir: Any) -> Optional[str]:
    """Validates `output_dir` and creates it, so errors surface at construction."""
    if output_dir is None:
        return None
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(
            "output_dir must be a str or os.PathLike, got "
            f"{output_dir!r} of type {type(output_dir).__name__}."
        )
    path = os.fspath(output_dir)
    if not path:
        raise ValueError("output_dir must be a non-empty path, got ''.")
    if "://" in path:
        return path  # A remote filesystem (gs://, s3://): tf.io creates it.
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"output_dir {path!r} exists and is not a directory.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ValueError(f"output_dir {path!r} cannot be created: {error}") from error
    return path


def check_summary_writer(summary_writer: Any) -> None:
    if summary_writer is not None and not isinstance(
        summary_writer, tf.summary.SummaryWriter
    ):
        raise TypeError(
            "summary_writer must be a tf.summary.SummaryWriter (from "
            "tf.summary.create_file_writer), got "
            f"{summary_writer!r} of type {type(summary_writer).__name__}."
        )


def check_v1_summary_writer(summary_writer: Any) -> None:
    """A v1 writer (anything with `add_summary`, as v1 hooks accepted), or None.

    A v2 `tf.summary.SummaryWriter` is refused by name: it writes through
    eager ops, which a graph-mode session hook cannot run cleanly.
    """
    if summary_writer is None:
        return
    if isinstance(summary_writer, tf.summary.SummaryWriter):
        raise TypeError(
            "summary_writer must be a v1 writer such as "
            "tf.compat.v1.summary.FileWriter, got a v2 tf.summary.SummaryWriter, "
            "which cannot write from a graph-mode session hook. Pass "
            "output_dir=... instead, or use keras_stepcounter.StepCounter "
            "in TF2 code."
        )
    if not callable(getattr(summary_writer, "add_summary", None)):
        raise TypeError(
            "summary_writer must be a v1 writer with an add_summary method "
            "(tf.compat.v1.summary.FileWriter), got "
            f"{summary_writer!r} of type {type(summary_writer).__name__}."
        )
