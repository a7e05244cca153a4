"""Writing scored rows out (census_salary.writers)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from census_salary.errors import InputError
from census_salary.writers import ScoredChunk, write_predictions


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def chunk_of(records: list[dict]) -> ScoredChunk:
    names = list(dict.fromkeys(name for record in records for name in record))
    n = len(records)
    return ScoredChunk(records, names, np.array([">50K"] * n), np.full(n, 0.75))


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_a_field_nested_past_the_stack_is_refused_naming_its_row_and_field(fmt: str) -> None:
    first = chunk_of([{"age": 39, "note": 1}, {"age": 40, "note": 1}])
    second = chunk_of([{"age": 41, "note": 1}, {"age": 42, "note": nested(5000)}])
    with pytest.raises(InputError, match=r"row 4, field 'note': it is nested too deeply"):
        write_predictions([first, second], fmt, io.BytesIO())  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_field_nested_past_orjsons_limit_is_still_written(fmt: str) -> None:
    out = io.BytesIO()
    write_predictions([chunk_of([{"note": nested(300)}])], fmt, out)  # type: ignore[arg-type]
    assert out.getvalue().count(b"[") == 301 + (fmt == "json")
