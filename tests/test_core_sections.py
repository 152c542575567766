"""Sections: timed blocks and iterables on a fake clock, split at records."""

import pytest

from keras_stepcounter.core.sections import Sections, check_section_name


@pytest.fixture
def sections(fake_clock):
    return Sections(fake_clock)


def test_a_block_covering_a_known_share_of_each_step(sections, fake_clock):
    start = fake_clock()
    for _ in range(10):
        with sections.timed("forward"):
            fake_clock.advance(0.25)
        fake_clock.advance(0.75)
    assert sections.fractions(fake_clock() - start) == {"time_frac/forward": 0.25}


def test_nested_different_names_each_count(sections, fake_clock):
    with sections.timed("step"):
        fake_clock.advance(1.0)
        with sections.timed("loss"):
            fake_clock.advance(0.5)
        fake_clock.advance(0.5)
    assert sections.fractions(2.0) == {"time_frac/step": 1.0, "time_frac/loss": 0.25}


def test_reentering_the_same_name_counts_once(sections, fake_clock):
    with sections.timed("io"):
        fake_clock.advance(1.0)
        with sections.timed("io"):
            fake_clock.advance(1.0)
        fake_clock.advance(1.0)
    assert sections.fractions(4.0) == {"time_frac/io": 0.75}


def test_time_counts_when_the_block_raises(sections, fake_clock):
    with pytest.raises(KeyError):
        with sections.timed("lookup"):
            fake_clock.advance(2.0)
            raise KeyError("x")
    assert sections.fractions(4.0) == {"time_frac/lookup": 0.5}


def test_an_open_block_is_split_at_the_record(sections, fake_clock):
    block = sections.timed("eval")
    block.__enter__()
    fake_clock.advance(3.0)
    record_time = fake_clock()
    assert sections.fractions(4.0, now=record_time) == {"time_frac/eval": 0.75}
    fake_clock.advance(0.5)  # The recorder's own work: in neither interval.
    sections.clear(now=fake_clock())
    fake_clock.advance(1.0)
    block.__exit__(None, None, None)
    fake_clock.advance(1.0)
    assert sections.fractions(2.0) == {"time_frac/eval": 0.5}


def test_fractions_do_not_close_or_reset(sections, fake_clock):
    with sections.timed("a"):
        fake_clock.advance(1.0)
    assert sections.fractions(2.0) == sections.fractions(2.0) == {"time_frac/a": 0.5}


def test_clear_forgets_names_not_seen_again(sections, fake_clock):
    with sections.timed("once"):
        fake_clock.advance(1.0)
    sections.clear()
    with sections.timed("later"):
        fake_clock.advance(1.0)
    assert sections.fractions(1.0) == {"time_frac/later": 1.0}


def test_a_name_seen_with_no_time_is_zero(sections):
    with sections.timed("instant"):
        pass
    assert sections.fractions(1.0) == {"time_frac/instant": 0.0}


def test_non_positive_interval_gives_nothing(sections, fake_clock):
    with sections.timed("a"):
        fake_clock.advance(1.0)
    assert sections.fractions(0.0) == {}


def test_timed_iter_times_each_next(sections, fake_clock):
    def slow_items():
        for item in range(4):
            fake_clock.advance(0.5)  # Waiting for input.
            yield item

    start = fake_clock()
    seen = []
    for item in sections.timed_iter(slow_items()):
        seen.append(item)
        fake_clock.advance(1.5)  # The step.
    assert seen == [0, 1, 2, 3]
    # Four waits of 0.5 s in 8 s; the final, empty next() took no time.
    assert sections.fractions(fake_clock() - start) == {"time_frac/input": 0.25}


def test_timed_iter_leaves_no_block_open_after_break(sections, fake_clock):
    for _ in sections.timed_iter(range(10), name="data"):
        break
    fake_clock.advance(5.0)
    assert sections.fractions(5.0) == {"time_frac/data": 0.0}


def test_timed_iter_checks_at_the_call(sections):
    with pytest.raises(TypeError):
        sections.timed_iter(5)
    with pytest.raises(ValueError, match="name"):
        sections.timed_iter([], name="/bad")


@pytest.mark.parametrize("pause_between_epochs", [True, False])
def test_blocks_count_in_training_time_whatever_pauses(fake_clock, pause_between_epochs):
    # Sections read the timeline's clock: a pause (from the last batch end,
    # learnt later) and the counter's own work are left out of a block
    # open across them, and a block inside a pause counts nothing.
    from keras_stepcounter.core.timeline import Timeline

    timeline = Timeline(pause_between_epochs)
    sections = Sections(lambda: timeline.training_time(fake_clock()))
    timeline.begin_run(fake_clock())
    timeline.begin_steps(fake_clock())
    block = sections.timed("checkpoint")
    block.__enter__()
    fake_clock.advance(1.0)
    last_end = fake_clock()
    fake_clock.advance(0.5)  # Keras's work after the epoch's last batch.
    timeline.pause(last_end)  # The epoch's end: a pause from `last_end`.
    fake_clock.advance(10.0)
    with sections.timed("eval"):
        fake_clock.advance(1.0)
    timeline.begin_steps(fake_clock())
    fake_clock.advance(1.0)
    timeline.work(fake_clock(), fake_clock() + 0.25)  # A record's write.
    fake_clock.advance(0.25)
    fake_clock.advance(1.0)
    block.__exit__(None, None, None)
    if pause_between_epochs:  # 1 + 1 + 1 s of steps, the rest left out.
        assert sections.fractions(3.0) == {"time_frac/checkpoint": 1.0, "time_frac/eval": 0.0}
    else:  # The boundary is steps: 1 + 0.5 + 10 + 1 + 1 + 1 s.
        assert sections.fractions(14.5) == {
            "time_frac/checkpoint": 1.0, "time_frac/eval": 1.0 / 14.5}


def test_blocks_are_reused_not_allocated(sections):
    assert sections.timed("a") is sections.timed("a")


@pytest.mark.parametrize("name", ["input", "eval/loss", "a b"])
def test_good_names(name):
    assert check_section_name(name) == name


@pytest.mark.parametrize(
    "name, error",
    [(5, TypeError), (None, TypeError), (["x"], TypeError), ("", ValueError),
     ("  ", ValueError), ("/x", ValueError), ("x/", ValueError)],
)
def test_bad_names_are_named(sections, name, error):
    with pytest.raises(error, match="name"):
        sections.timed(name)
