"""A run left open across notebook cells is paused while no cell runs.

A custom loop can go on in the next cell; a person reading or editing in
between is not training, and never a stall. The run is paused from
IPython's `post_run_cell` to its next `pre_run_cell`, like a `paused()`
block.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Optional

Unregister = Callable[[], None]


def pause_between_cells(
    pause: Callable[[], object], resume: Callable[[], None]
) -> Optional[Unregister]:
    """Calls `pause` at each cell's end and `resume` at the next cell's
    start, while the run lasts; returns what unregisters them, or None
    outside IPython (or off its main thread, where cells do not run the
    training loop)."""
    ipython_module = sys.modules.get("IPython")  # Never imported here.
    if ipython_module is None or threading.current_thread() is not threading.main_thread():
        return None
    shell: Any = getattr(ipython_module, "get_ipython", lambda: None)()
    events = getattr(shell, "events", None)
    if events is None:
        return None

    def post_run_cell(*_: Any) -> None:
        pause()

    def pre_run_cell(*_: Any) -> None:
        resume()

    try:
        events.register("post_run_cell", post_run_cell)
        events.register("pre_run_cell", pre_run_cell)
    except Exception:  # An IPython without these events: no pauses.
        return None

    def unregister() -> None:
        for name, callback in (("post_run_cell", post_run_cell), ("pre_run_cell", pre_run_cell)):
            try:
                events.unregister(name, callback)
            except Exception:  # Already gone (IPython cleared its events).
                pass

    return unregister
