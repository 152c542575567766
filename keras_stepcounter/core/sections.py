"""Timed sections: the share of each record interval spent in named blocks.

`Sections` times named blocks (`with timed("eval"):`) and each `next()` of
an iterable (`timed_iter`, a custom loop's input wait); at a record,
`fractions` gives `time_frac/<name>`, the share of that interval. Blocks
are timed in the run's training time (the recorder's `training_now`), the
clock of the interval: pauses and the counter's own work inside a block
are left out.
"""

from __future__ import annotations

import time
from typing import (
    Any, Callable, ContextManager, Dict, Iterable, Iterator, Optional, TypeVar,
)

from keras_stepcounter.core.checks import check_tag
from keras_stepcounter.core.tags import TIME_FRAC_PREFIX

DEFAULT_ITER_NAME = "input"

T = TypeVar("T")


def check_section_name(name: Any) -> str:
    """A non-empty str without a leading or trailing slash (it ends a tag)."""
    check_tag(name, "name")
    if name.startswith("/") or name.endswith("/"):
        raise ValueError(
            f"name must not start or end with '/' (it becomes the tag "
            f"'{TIME_FRAC_PREFIX}{name}'), got {name!r}."
        )
    return name


class Sections:
    """Seconds spent inside named blocks, per record interval.

    A name's time is the time during which at least one block of that name
    is open (re-entering it counts once); nested names each count their
    own time, so shares can add up to more than 1. A block open at a
    record is split there. Meant for one thread (the training loop's).

    Args:
        clock: The clock blocks are timed in, in seconds (the recorder's
            training time).

    Example:

    ```python
    sections = Sections()
    for batch in sections.timed_iter(dataset):   # time_frac/input
        with sections.timed("step"):              # time_frac/step
            train_step(batch)
    sections.fractions(interval_secs=10.0)
    # {'time_frac/input': 0.25, 'time_frac/step': 0.7}
    sections.clear()
    ```
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._sections: Dict[str, _Section] = {}

    def timed(self, name: str) -> ContextManager[None]:
        """A context manager adding the seconds spent inside it to `name`."""
        return self._section(name)

    def timed_iter(
        self, iterable: Iterable[T], name: str = DEFAULT_ITER_NAME
    ) -> Iterator[T]:
        """Yields the items of `iterable`, timing each `next()` as `name`."""
        section = self._section(name)  # Checked now, not at the first next().
        return _timed_items(iter(iterable), section)

    def fractions(
        self, interval_secs: float, now: Optional[float] = None
    ) -> Dict[str, float]:
        """`{"time_frac/<name>": seconds in name / interval_secs}`.

        For each name entered (or still open) since the last `clear()`;
        open blocks count up to `now` (default: the clock). Empty when
        `interval_secs` is not positive.
        """
        if interval_secs <= 0:
            return {}
        now = self._clock() if now is None else now
        return {
            TIME_FRAC_PREFIX + name: section.seconds(now) / interval_secs
            for name, section in self._sections.items()
            if section.seen
        }

    def _section(self, name: str) -> "_Section":
        try:
            return self._sections[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name.
            section = _Section(self._clock)
            self._sections[check_section_name(name)] = section
            return section

    def clear(self, now: Optional[float] = None) -> None:
        """Starts a new interval at `now` (default: the clock).

        Time between the `now` of `fractions` and this one (the recorder's
        own work) counts in neither interval.
        """
        now = self._clock() if now is None else now
        for section in self._sections.values():
            section.restart(now)


class _Section:
    """One name's state, and its context manager (reused: no allocation)."""

    __slots__ = ("_clock", "depth", "start", "secs", "seen")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.depth = 0
        self.start: Optional[float] = None  # None: closed.
        self.secs = 0.0
        self.seen = False

    def __enter__(self) -> None:
        self.depth += 1
        if self.depth == 1:
            self.seen = True
            self.start = self._clock()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.depth -= 1
        if self.depth == 0 and self.start is not None:
            self.secs += self._clock() - self.start
            self.start = None

    def seconds(self, now: float) -> float:
        return self.secs if self.start is None else self.secs + now - self.start

    def restart(self, now: float) -> None:
        self.secs = 0.0
        self.seen = self.depth > 0
        if self.start is not None:
            self.start = now


def _timed_items(iterator: Iterator[T], section: _Section) -> Iterator[T]:
    while True:
        with section:
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item
