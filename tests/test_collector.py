"""The garbage collector's settings for processes that score many rows."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from census_salary.collector import YOUNG_GENERATION_THRESHOLD, settle, settled


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the garbage collector back as it was, whatever the test did to it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_settle_freezes_what_exists_and_lets_the_young_generation_grow() -> None:
    before = gc.get_threshold()
    settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *before[1:])


@pytest.mark.usefixtures("collector")
def test_settled_puts_the_collector_back_as_it_was() -> None:
    gc.set_threshold(123, 4, 5)
    with settled():
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (123, 4, 5)
    assert gc.get_freeze_count() == 0
