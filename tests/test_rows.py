import io
import json

import numpy as np
import pytest

from census_salary.contract import EXAMPLE_ROW
from census_salary.errors import InputError
from census_salary.rows import detect_format, read_rows


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        ("[{", "json"),
        ('{\n  "inputs": [', "json"),
        ('{"inputs": []}', "json"),
        ('{"age": 1}\n{"age": 2}', "jsonl"),
        ("age,sex\n", "csv"),
    ],
)
def test_detect_format(head: str, fmt: str) -> None:
    assert detect_format(head) == fmt


def rows_of(text: str, chunk_size: int = 2) -> list[dict]:
    _, chunks = read_rows(io.StringIO(text), None, chunk_size)
    return [record for chunk in chunks for record in chunk.table.to_dict("records")]


def test_json_array_streams_across_buffer_boundaries() -> None:
    rows = [{**EXAMPLE_ROW, "id": i, "pad": "x" * 500} for i in range(300)]
    got = rows_of(json.dumps(rows), chunk_size=7)
    assert [r["id"] for r in got] == list(range(300))


def test_inputs_object_gives_its_rows() -> None:
    assert [r["age"] for r in rows_of(json.dumps({"inputs": [EXAMPLE_ROW] * 3}))] == [39] * 3


def test_json_lines_give_their_rows() -> None:
    text = "\n".join(json.dumps({**EXAMPLE_ROW, "id": i}) for i in range(5)) + "\n"
    assert [r["id"] for r in rows_of(text)] == list(range(5))


def test_json_rows_take_canonical_names() -> None:
    (row,) = rows_of(json.dumps([EXAMPLE_ROW]))
    assert "education_num" in row
    assert "education-num" not in row


def test_mixed_spellings_across_json_rows_are_fine() -> None:
    underscored = {k.replace("-", "_"): v for k, v in EXAMPLE_ROW.items()}
    assert len(rows_of(json.dumps([EXAMPLE_ROW, underscored]))) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "Row 1 is int"),
        ('[{"a": 1}', "expected ',' or ']'"),
        ('{"inputs": [], "x": 1}', "no other keys"),
        ('{\n "rows": []}', "expected .*inputs"),
        ('{"a": 1}\n{oops\n', "Line 2 is not valid JSON"),
        ("   \n", "empty"),
    ],
)
def test_malformed_json_inputs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        rows_of(text)


def test_csv_values_pass_through_as_written() -> None:
    header = ",".join(["id", *EXAMPLE_ROW])
    line = ",".join(["007", *(str(v) for v in EXAMPLE_ROW.values())])
    (row,) = rows_of(f"{header}\n{line}\n")
    assert row["id"] == "007"


def test_numbers_in_json_stay_numbers() -> None:
    (row,) = rows_of(json.dumps([EXAMPLE_ROW]))
    assert np.isclose(row["age"], 39)


def test_json_chunks_carry_the_values_as_given() -> None:
    _, chunks = read_rows(io.StringIO(json.dumps([{**EXAMPLE_ROW, "age": "39"}])), None, 10)
    (chunk,) = list(chunks)
    assert chunk.columns["age"] == ["39"]
    assert chunk.columns["education_num"] == [13]


def test_csv_chunks_carry_text_columns_under_canonical_names() -> None:
    header = ",".join(EXAMPLE_ROW)
    line = ",".join(str(v) for v in EXAMPLE_ROW.values())
    _, chunks = read_rows(io.StringIO(f"{header}\n{line}\n"), None, 10)
    (chunk,) = list(chunks)
    assert chunk.columns["education_num"].tolist() == ["13"]


def test_a_bad_row_early_in_a_large_array_fails_at_once_and_names_the_row() -> None:
    good = json.dumps(EXAMPLE_ROW)
    text = "[" + good + ", {oops}, " + ", ".join([good] * 20_000) + "]"
    stream = io.StringIO(text)
    with pytest.raises(InputError, match="Invalid JSON input in row 2"):
        rows_of_stream(stream)
    assert stream.tell() < 200_000, "the reader went on reading after a final error"


def test_a_row_longer_than_the_limit_is_refused() -> None:
    text = '[{"age": "' + "9" * (2 << 20) + '"}]'
    with pytest.raises(InputError, match="Row 1 is longer than"):
        rows_of(text)


def test_deeply_nested_rows_are_refused_quickly() -> None:
    with pytest.raises(InputError, match="cannot be read as rows"):
        rows_of("[" * 100_000)


def rows_of_stream(stream: io.StringIO) -> list[dict]:
    _, chunks = read_rows(stream, None, 10)
    return [record for chunk in chunks for record in chunk.table.to_dict("records")]
