"""The lineage index: the latest run that wrote to an `output_dir`.

`stepcounter.lineage.json`, beside the event files, holds the step that
run started at and the last step it read: a later run starting between
them computes the difference again (`goodput/rerun_steps`;
docs/beyond-steps-per-sec.md, "Re-run steps"). One small file, whatever
else the directory holds.

A save writes a temporary file and renames it over the index, so a reader
sees the old index or the new one: with `os` locally, with `tf.io.gfile`
for a remote directory (`gs://`, where a rename copies the object whole;
`ram://`, whose files opened for writing are not emptied first). Between
saves, `update_index` moves a local index's last step on in place (one
`pwrite` of a fixed-size text, a few microseconds: every record can), where
an object store would take a whole upload. Nothing here raises: an index
that cannot be read is no index, one that cannot be written is saved again
at the next chance.

Example:

```python
save_latest_run(tmp, start_step=0, last_step=50)  # experiment A, yesterday
assert latest_run(tmp) == (0, 50)
assert rerun_steps(8, last_step=10) == 2  # B read step 10, restored at 8
assert rerun_steps(0, last_step=50) is None  # a start at 0 is a new run
```
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Optional, Tuple

import tensorflow as tf

INDEX_NAME = "stepcounter.lineage.json"
FORMAT = "keras_stepcounter lineage 1"
# Every in-place update writes this many bytes from the start (the JSON
# text, padded with spaces): a shorter text never leaves a longer one's tail.
INDEX_BYTES = 128
_temp_numbers = itertools.count()


def rerun_steps(start_step: int, last_step: Optional[int]) -> Optional[int]:
    """Steps computed again by a run starting at `start_step` after a run
    that read `last_step`; None when nothing is redone (a start at 0 is a
    new run, a start at or above `last_step` redoes nothing)."""
    if start_step <= 0 or last_step is None or last_step <= start_step:
        return None
    return last_step - start_step


def latest_run(output_dir: str) -> Optional[Tuple[int, int]]:
    """`(start_step, last_step)` of the latest run in `output_dir`'s index,
    or None (no index, or one that cannot be read). Never raises."""
    try:
        text = _read(_index_path(output_dir), local=_is_local(output_dir))
        run = json.loads(text)
        start, last = run["start_step"], run["last_step"]
        if run.get("format") == FORMAT and type(start) is int and type(last) is int:
            return start, last
    except Exception:  # Missing, damaged, unreadable: no index.
        pass
    return None


def save_latest_run(output_dir: str, start_step: int, last_step: int) -> bool:
    """Makes the run `(start_step, last_step)` the latest in `output_dir`'s
    index; True if saved. Never raises."""
    text = _index_text(start_step, last_step)
    path = _index_path(output_dir)
    # Named per process and call: two counters (or processes) saving at
    # once never share a temporary file.
    temp = f"{path}.{os.getpid()}.{next(_temp_numbers)}.tmp"
    replace = _replace_local if _is_local(output_dir) else _replace_remote
    try:
        replace(temp, path, text)
    except Exception:  # Disk full, directory gone: saved at the next chance.
        return False
    return True


def open_index(output_dir: str) -> Optional[int]:
    """A file descriptor of a local directory's index, for `update_index`;
    None for a remote directory, or when it cannot be opened."""
    if not _is_local(output_dir):
        return None
    try:
        return os.open(_index_path(output_dir), os.O_WRONLY)
    except OSError:
        return None


def update_index(descriptor: int, start_step: int, last_step: int) -> None:
    """Moves the run in the index open as `descriptor` to `last_step`, in
    place (one `pwrite`: a reader sees the old text or the new). Never raises."""
    try:
        os.pwrite(descriptor, _index_text(start_step, last_step).encode(), 0)
    except OSError:  # Disk full: the next save or update tries again.
        pass


def _index_text(start_step: int, last_step: int) -> str:
    # The JSON `json.dumps` would give, formatted directly: a record pays
    # for it.
    return _INDEX_TEMPLATE.format(start_step, last_step).ljust(INDEX_BYTES)


_INDEX_TEMPLATE = (
    '{{"format": "' + FORMAT + '", "start_step": {:d}, "last_step": {:d}}}'
)


def _replace_local(temp: str, path: str, text: str) -> None:
    try:
        with open(temp, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def _replace_remote(temp: str, path: str, text: str) -> None:
    try:
        with tf.io.gfile.GFile(temp, "w") as file:
            file.write(text)
        tf.io.gfile.rename(temp, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temp):
            tf.io.gfile.remove(temp)
        raise


def _read(path: str, *, local: bool) -> str:
    if local:
        with open(path, encoding="utf-8") as file:
            return file.read(4096)  # An index is under 100 bytes.
    with tf.io.gfile.GFile(path, "r") as file:
        return str(file.read(4096))


def _index_path(output_dir: str) -> str:
    return os.path.join(output_dir, INDEX_NAME)


def _is_local(output_dir: str) -> bool:
    return "://" not in output_dir
