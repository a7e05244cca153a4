"""The garbage collector's settings for processes that load large libraries and then
work on many rows."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from census_salary.collector import (
    YOUNG_GENERATION_THRESHOLD,
    freeze_at_exit,
    paused,
    settle,
    settled,
)


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the garbage collector back as it was, whatever the test did to it."""
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector")
def test_settle_freezes_what_exists_and_lets_the_young_generation_grow() -> None:
    before = gc.get_threshold()
    settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *before[1:])


@pytest.mark.usefixtures("collector")
def test_settle_turns_paused_collections_on_for_good() -> None:
    with paused():
        assert not gc.isenabled()
        settle()
        assert gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_paused_turns_collections_off_inside_and_back_on_after() -> None:
    gc.enable()
    with paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_paused_turns_collections_back_on_when_the_block_fails() -> None:
    gc.enable()
    with pytest.raises(KeyError), paused():
        raise KeyError("a failed import")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_paused_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    with paused():
        pass
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_freeze_at_exit_moves_every_object_out_of_the_collectors_view() -> None:
    freeze_at_exit()
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("collector")
def test_settled_puts_the_collector_back_as_it_was() -> None:
    gc.set_threshold(123, 4, 5)
    gc.disable()
    with settled():
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()
    assert gc.get_threshold() == (123, 4, 5)
    assert gc.get_freeze_count() == 0
    assert not gc.isenabled()
