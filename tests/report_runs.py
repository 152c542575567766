"""Real short training runs for the report's tests: a `StepCounter` in a
custom loop whose steps sleep, so the event files are the recorder's own
and the rates are set by the sleeps.

Each step's time is its planned length times seeded noise (lognormal,
`NOISE`), and the loop sleeps to a deadline (the sum of the planned times
so far) rather than for a length: a busy machine's late wake-ups then delay
one record, not every later one, so the planned rates hold on a loaded
machine and a steady run stays steady.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, Sequence

import numpy as np

EVERY_N_STEPS = 5
STEPS = 400  # 79 records after the first (at steps 6, 11, ..., 396).
BATCH_SIZE = 32
STEP_SECS = 0.004
NOISE = 0.1  # Each record (5 steps) then varies by about 4.5%.


def steady(secs: float = STEP_SECS, steps: int = STEPS) -> np.ndarray:
    return np.full(steps, secs)


def run_steps(
    output_dir: str, step_secs: Sequence[float], seed: int, fake_clock=None
) -> None:
    """One run: `len(step_secs)` steps of a custom loop, recorded in `output_dir`.

    With `fake_clock` (a `conftest.FakeClock`), steps advance it instead of
    sleeping: exact rates, for tests of logic.
    """
    import time as clocks

    from conftest import counter_on

    counter = counter_on(
        clocks.perf_counter if fake_clock is None else fake_clock,
        every_n_steps=EVERY_N_STEPS, output_dir=output_dir, batch_size=BATCH_SIZE,
    )
    noise = np.random.default_rng(seed).lognormal(0.0, NOISE, len(step_secs))
    done = [0]
    with counter.track(lambda: done[0]):
        deadline = time.perf_counter()
        for secs in np.asarray(step_secs) * noise:
            if fake_clock is not None:
                fake_clock.advance(secs)
            else:
                deadline += secs
                time.sleep(max(0.0, deadline - time.perf_counter()))
            done[0] += 1
            counter.step_done()
    counter.close()


def run_at_once(plans: Dict[str, tuple]) -> None:
    """Runs `{output_dir: (step_secs, seed)}` at the same time, one thread each,
    so the machine's load is the same for all."""
    errors = []

    def run(output_dir: str, step_secs: Sequence[float], seed: int) -> None:
        try:
            run_steps(output_dir, step_secs, seed)
        except BaseException as error:  # Re-raised below, in the test.
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(output_dir, *plan))
        for output_dir, plan in plans.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
