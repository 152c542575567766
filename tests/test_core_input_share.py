"""InputShare: a meter's waits as shares of training time, booked once."""

from dataclasses import dataclass
from typing import Tuple

import pytest

from keras_stepcounter.core.input_share import InputShare


@dataclass(frozen=True)
class Waits:
    measured: Tuple[Tuple[float, float], ...]
    waits: Tuple[Tuple[float, float], ...]


class Meter:
    """Measures [0, 100] in full (JAX-like) or only `windows` (sampling)."""

    def __init__(self, waits, windows=((0.0, 100.0),)):
        self.waits, self.windows = waits, windows
        self.discarded, self.detached = [], False

    def waits_between(self, start, end):
        measured = tuple((max(a, start), min(b, end)) for a, b in self.windows
                         if min(b, end) > max(a, start))
        if not measured:
            return None
        waits = tuple((max(a, start), min(b, end)) for a, b in self.waits
                      if min(b, end) > max(a, start))
        return Waits(measured, waits)

    def discard_before(self, time_point):
        self.discarded.append(time_point)

    def detach(self):
        self.detached = True


def test_shares_per_interval_and_for_the_run():
    # Ten 1 s steps from 0 to 10, each waiting 0.25 s for its batch.
    share = InputShare(Meter([(i + 0.0, i + 0.25) for i in range(10)]))
    assert share.interval_share(4.0, training_secs=4.0, threshold=60.0) == 0.25
    assert share.interval_share(10.0, training_secs=6.0, threshold=60.0) == 0.25
    assert share.run_share() == 0.25
    assert share.meter.discarded == [0.0, 4.0, 4.0, 10.0, 10.0]


def test_an_interval_booked_in_parts_gives_the_same_share_and_forgets_each_part():
    # Reads between records (every few calls) book the interval in parts:
    # the meter keeps only a part's spans, and the share is the same.
    waits = [(i + 0.0, i + 0.25) for i in range(10)] + [(5.5, 5.75)]
    whole = InputShare(Meter(sorted(waits)))
    in_parts = InputShare(Meter(sorted(waits)))
    for read in (2.0, 5.0, 7.0):
        in_parts.fold(read, threshold=60.0)
    assert in_parts.meter.discarded == [0.0, 2.0, 5.0, 7.0]
    expected = whole.interval_share(10.0, training_secs=10.0, threshold=60.0)
    assert in_parts.interval_share(10.0, training_secs=10.0, threshold=60.0) == expected
    assert expected == pytest.approx(2.75 / 10.0)


def test_a_paused_interval_measures_only_its_training_time():
    # A 5 s epoch boundary inside [0, 10]: 5 s of training, 1 s of waits.
    share = InputShare(Meter([(1.0, 1.5), (7.0, 7.5)]))
    assert share.interval_share(10.0, training_secs=5.0, threshold=60.0) == 0.2


def test_a_stalls_waits_are_the_stalls_and_its_time_is_not_measured():
    # A 3 s wait (over the 2 s threshold) is a stall; so is a 0.5 s wait
    # inside another stall; the 0.25 s wait stays input. A read at 5.0
    # books the first part, with the stall that ended there.
    share = InputShare(Meter([(0.0, 0.25), (2.0, 5.0), (6.0, 6.5)]))
    share.stalled(2.0, 5.0)
    share.fold(5.0, threshold=2.0)
    share.stalled(5.5, 7.0)
    found = share.interval_share(10.0, training_secs=10.0, threshold=2.0)
    assert found == pytest.approx(0.25 / (10.0 - 3.0 - 1.5))


def test_an_unmeasured_interval_is_none_and_never_zero():
    # Sampling: a window over [2, 3] only, with 0.5 s of waits in it.
    share = InputShare(Meter([(2.0, 2.5)], windows=((2.0, 3.0),)))
    assert share.interval_share(1.9, training_secs=1.9, threshold=60.0) is None
    assert share.interval_share(10.0, training_secs=8.1, threshold=60.0) == 0.5
    assert share.run_share() == 0.5
    share.begin_run(10.0)
    assert share.run_share() is None
