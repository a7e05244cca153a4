"""The server process's edge: what it does to the process once the app is loaded."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from census_salary.server import YOUNG_GENERATION_THRESHOLD, settle


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
