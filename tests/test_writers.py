"""Writing scored rows out (census_salary.writers)."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from census_salary.errors import InputError
from census_salary.writers import JSON_TEXT, ScoredChunk, write_predictions


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def chunk_of(records: list[dict]) -> ScoredChunk:
    names = list(dict.fromkeys(name for record in records for name in record))
    n = len(records)
    return ScoredChunk(records, names, np.array([">50K"] * n), np.full(n, 0.75))


def table_chunk(**columns: pa.Array) -> ScoredChunk:
    """Rows of a table (as Parquet input gives them)."""
    table = pa.table(columns)
    n = table.num_rows
    return ScoredChunk(table, table.column_names, np.array([">50K"] * n), np.full(n, 0.75))


def written(chunks: list[ScoredChunk], fmt: str) -> list[dict[str, Any]]:
    """The rows written, read back: CSV as text, JSON as JSON (strictly: no NaN)."""
    out = io.BytesIO()
    write_predictions(chunks, fmt, out)  # type: ignore[arg-type]
    text = out.getvalue().decode()
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    strict = {"parse_constant": lambda name: pytest.fail(f"{name} is not JSON")}
    if fmt == "json":
        return json.loads(text, **strict)
    return [json.loads(line, **strict) for line in text.splitlines()]


def parquet_written(chunks: list[ScoredChunk]) -> pa.Table:
    out = io.BytesIO()
    write_predictions(chunks, "parquet", out)
    return pq.read_table(io.BytesIO(out.getvalue()))


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


@pytest.mark.parametrize(
    ("values", "texts"),
    [
        ([{}, {}], ["{}", "{}"]),
        ([{"a": 1}, {"b": 2}], ['{"a":1}', '{"b":2}']),
        ([[1, 2.5], None], ["[1,2.5]", None]),
        ([{"a": 1}, 5], ['{"a":1}', "5"]),
        ([{"a": 1}, math.nan], ['{"a":1}', None]),
    ],
    ids=["empty-objects", "different-keys", "mixed-numbers", "object-and-number", "nan"],
)
def test_a_json_field_holding_objects_or_arrays_goes_to_parquet_as_json_text(
    values: list, texts: list
) -> None:
    table = parquet_written([chunk_of([{"age": 39, "id": value} for value in values])])
    assert table.column("id").to_pylist() == texts


def test_a_json_text_column_stays_json_text_in_later_chunks() -> None:
    chunks = [chunk_of([{"id": {"a": 1}}]), chunk_of([{"id": {"b": 2}}])]
    table = parquet_written(chunks)
    assert table.column("id").to_pylist() == ['{"a":1}', '{"b":2}']
    assert table.schema.field("id").metadata == JSON_TEXT


def test_a_column_parquet_cannot_store_is_refused_naming_it() -> None:
    chunk = table_chunk(age=pa.array([39]), meta=pa.array([{}], pa.struct([])))
    out = io.BytesIO()
    with pytest.raises(
        InputError, match=r"Rows 1 to 1 .* column 'meta' of type struct<> .*--output-format csv"
    ):
        write_predictions([chunk], "parquet", out)
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    ("value", "text"),
    [({"a": 1}, '{"a":1}'), ([1, "x", None], '[1,"x",null]')],
    ids=["object", "array"],
)
def test_a_nested_json_value_is_its_json_text_in_csv(value: Any, text: str) -> None:
    (row,) = written([chunk_of([{"age": 39, "note": value}])], "csv")
    assert row["note"] == text


@pytest.mark.parametrize(
    ("column", "text"),
    [
        (pa.array([{"a": 1}]), '{"a":1}'),
        (pa.array([[1, 2]]), "[1,2]"),
        (pa.array([[("a", 1)]], pa.map_(pa.string(), pa.int64())), '[["a",1]]'),
    ],
    ids=["struct", "list", "map"],
)
def test_a_nested_parquet_value_is_its_json_text_in_csv(column: pa.Array, text: str) -> None:
    (row,) = written([table_chunk(age=pa.array([39]), note=column)], "csv")
    assert row["note"] == text


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_bytes_are_written_as_base64(fmt: str) -> None:
    chunk = table_chunk(key=pa.array([b"\xff\x00", b"abc"]))
    assert [row["key"] for row in written([chunk], fmt)] == ["/wA=", "YWJj"]


def test_a_float_nan_is_an_empty_csv_field() -> None:
    chunk = table_chunk(workclass=pa.array([math.nan, None, 1.5]))
    assert [row["workclass"] for row in written([chunk], "csv")] == ["", "", "1.5"]


def test_a_nan_is_null_in_json_also_beside_an_integer_orjson_cannot_write() -> None:
    (row,) = written([chunk_of([{"big": 2**70, "x": math.nan}])], "jsonl")
    assert (row["big"], row["x"]) == (2**70, None)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("cut", [1, 2], ids=["chunks-of-one", "one-chunk"])
def test_json_rows_to_a_table_take_the_first_rows_fields_however_they_are_chunked(
    fmt: str, cut: int
) -> None:
    rows = [{"id": 1}, {"id": 2, "note": "x"}]
    chunks = [chunk_of(rows[:cut]), *([chunk_of(rows[cut:])] if cut < 2 else [])]
    write = parquet_written if fmt == "parquet" else lambda c: written(c, "csv")
    with pytest.raises(InputError, match=r"^Row 2 of the output brings field\(s\) note.*jsonl"):
        write(chunks)


def test_csv_leaves_a_field_a_later_chunk_lacks_empty() -> None:
    rows = written([chunk_of([{"id": 1, "note": "x"}]), chunk_of([{"id": 2}])], "csv")
    assert [(row["id"], row["note"]) for row in rows] == [("1", "x"), ("2", "")]


def test_an_infinite_float_is_inf_in_csv_and_null_in_json() -> None:
    chunk = table_chunk(x=pa.array([math.inf, 1.5]))
    assert [row["x"] for row in written([chunk], "csv")] == ["inf", "1.5"]
    assert [row["x"] for row in written([chunk], "jsonl")] == [None, 1.5]
