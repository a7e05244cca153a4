import csv
import io
import json
import os
import re
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import census_salary.rows
from census_salary.contract import EXAMPLE_ROW, MAX_NESTING
from census_salary.data import names_as_written, read_csv_text, refuse_repeated_names
from census_salary.errors import InputError
from census_salary.rows import (
    MAX_ROW_CHARS,
    InputFormat,
    RowChunk,
    detect_format,
    named_format,
    read_rows,
)

HEADER = ",".join(EXAMPLE_ROW)
LINE = ",".join(str(value) for value in EXAMPLE_ROW.values())


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        ("[{", "json"),
        ('{\n  "inputs": [', "json"),
        ('{"inputs": []}', "json"),
        ('{"age": 1}\n{"age": 2}', "jsonl"),
        ("age,sex\n", "csv"),
        ('{"age": "' + "9" * 100, "jsonl"),  # a first line longer than the head
        ('{ "inputs" : [{"age": "' + "9" * 100, "json"),
    ],
)
def test_detect_format(head: str, fmt: str) -> None:
    assert detect_format(head) == fmt


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("rows.csv", "csv"),
        ("rows.JSON", "json"),
        ("rows.jsonl", "jsonl"),
        ("rows.ndjson", "jsonl"),
        ("rows.parquet", "parquet"),
        ("rows.pq", "parquet"),
        ("adult.data", None),
        ("rows", None),
        (None, None),
    ],
)
def test_named_format_reads_the_suffix(name: str | None, fmt: str | None) -> None:
    assert named_format(name) == fmt


def test_a_jsonl_name_reads_lines_even_when_the_first_is_an_array() -> None:
    text = '[1, 2]\n{"age": 39}\n'
    fmt, chunks = read_rows(io.StringIO(text), None, 10, name="rows.jsonl")
    assert fmt == "jsonl"
    (chunk,) = list(chunks)
    assert [str(p) for p in chunk.refused] == [
        "line 1: got an array; expected an object of census fields"
    ]


def test_a_given_format_wins_over_the_name() -> None:
    fmt, chunks = read_rows(io.StringIO("age\n39\n"), "csv", 10, name="rows.parquet")
    assert fmt == "csv"
    assert [r["age"] for r in records(next(chunks))] == ["39"]


@pytest.mark.parametrize("fmt", [None, "json"])
def test_json_lines_named_or_given_as_json_are_read_as_lines(fmt: str | None) -> None:
    text = "\n".join(json.dumps({**EXAMPLE_ROW, "id": i}) for i in range(3)) + "\n"
    got, chunks = read_rows(io.StringIO(text), fmt, 10, name="rows.json")  # type: ignore[arg-type]
    assert got == "jsonl"
    assert [r["id"] for r in records(next(chunks))] == [0, 1, 2]


@pytest.mark.parametrize("name", ["rows.json", "rows.parquet", "rows.jsonl"])
def test_csv_is_read_as_csv_whatever_the_suffix_says(name: str) -> None:
    fmt, chunks = read_rows(io.BytesIO(b"age\n39\n"), None, 10, name=name)
    assert fmt == "csv"
    assert [r["age"] for r in records(next(chunks))] == ["39"]


def test_a_json_array_named_csv_is_read_as_json() -> None:
    fmt, chunks = read_rows(io.StringIO(json.dumps([EXAMPLE_ROW])), None, 10, name="rows.csv")
    assert fmt == "json"
    assert [r["age"] for r in records(next(chunks))] == [39]


def records(chunk: RowChunk) -> list[dict]:
    return chunk.table if isinstance(chunk.table, list) else chunk.table.to_pylist()


def rows_of(text: str, chunk_size: int = 2) -> list[dict]:
    _, chunks = read_rows(io.StringIO(text), None, chunk_size)
    return [record for chunk in chunks for record in records(chunk)]


def test_json_array_streams_across_buffer_boundaries() -> None:
    rows = [{**EXAMPLE_ROW, "id": i, "pad": "x" * 500} for i in range(300)]
    got = rows_of(json.dumps(rows), chunk_size=7)
    assert [r["id"] for r in got] == list(range(300))


def test_inputs_object_gives_its_rows() -> None:
    assert [r["age"] for r in rows_of(json.dumps({"inputs": [EXAMPLE_ROW] * 3}))] == [39] * 3


def test_json_lines_give_their_rows() -> None:
    text = "\n".join(json.dumps({**EXAMPLE_ROW, "id": i}) for i in range(5)) + "\n"
    assert [r["id"] for r in rows_of(text)] == list(range(5))


def test_json_lines_whose_first_line_is_longer_than_the_peek_are_read_as_lines() -> None:
    rows = [{**EXAMPLE_ROW, "pad": "x" * 100_000}, EXAMPLE_ROW]
    fmt, chunks = read_rows(io.StringIO("\n".join(map(json.dumps, rows)) + "\n"), None, 10)
    assert fmt == "jsonl"
    assert [len(r.get("pad", "")) for r in records(next(chunks))] == [100_000, 0]


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


@pytest.mark.parametrize("text", ["[{}]", "{}\n"], ids=["array", "lines"])
def test_integers_beyond_64_bits_keep_every_digit(text: str) -> None:
    big = 123456789012345678901234567
    row = {**EXAMPLE_ROW, "id": big, "meta": {"ids": [-big, 2**64 - 1]}, "x": 1e300}
    (got,) = rows_of(text.format(json.dumps(row)))
    assert (got["id"], got["meta"], got["x"]) == (big, {"ids": [-big, 2**64 - 1]}, 1e300)


def test_json_chunks_carry_the_values_as_given() -> None:
    _, chunks = read_rows(io.StringIO(json.dumps([{**EXAMPLE_ROW, "age": "39"}])), None, 10)
    (chunk,) = list(chunks)
    assert list(chunk.columns["age"]) == ["39"]
    assert list(chunk.columns["education_num"]) == [13]


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


def test_a_json_line_longer_than_the_limit_is_refused_before_it_is_read_whole() -> None:
    good = json.dumps(EXAMPLE_ROW)
    stream = io.StringIO(good + '\n{"age": "' + "9" * (8 << 20) + '"}\n' + good + "\n")
    with pytest.raises(InputError, match=r"^Line 2 is longer than 1,048,576 characters"):
        rows_of_stream(stream)
    assert stream.tell() < 2 * MAX_ROW_CHARS, "the reader held the whole line"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r", ""])
def test_a_json_line_one_character_over_the_limit_is_refused(ending: str) -> None:
    row = json.dumps({**EXAMPLE_ROW, "pad": ""})
    row = row[:-2] + "x" * (MAX_ROW_CHARS + 1 - len(row)) + row[-2:]
    _, chunks = read_rows(io.StringIO(row + ending + row + ending), "jsonl", 10)
    with pytest.raises(InputError, match=r"^Line 1 is longer than 1,048,576 characters"):
        list(chunks)


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r", ""])
def test_a_json_line_as_long_as_the_limit_is_read(ending: str) -> None:
    row = json.dumps({**EXAMPLE_ROW, "pad": ""})
    row = row[:-2] + "x" * (MAX_ROW_CHARS - len(row)) + row[-2:]
    assert len(row) == MAX_ROW_CHARS
    _, chunks = read_rows(io.StringIO(row + ending), "jsonl", 10)
    ((got,),) = (records(chunk) for chunk in chunks)
    assert len(got["pad"]) == MAX_ROW_CHARS - len(json.dumps({**EXAMPLE_ROW, "pad": ""}))


def test_deeply_nested_rows_are_refused_quickly_naming_the_limit() -> None:
    with pytest.raises(InputError, match=f"cannot be read as rows.* {MAX_NESTING} levels"):
        rows_of("[" * 100_000)


@pytest.mark.parametrize("text", ['[{{"age": {}}}]', '{{"age": {}}}\n'], ids=["array", "lines"])
def test_a_number_of_thousands_of_digits_is_refused_in_our_words(text: str) -> None:
    with pytest.raises(InputError, match="more than 4,300 digits") as refused:
        rows_of(text.format("9" * 5000))
    assert "set_int_max_str_digits" not in str(refused.value)


def rows_of_stream(stream: io.StringIO) -> list[dict]:
    _, chunks = read_rows(stream, None, 10)
    return [record for chunk in chunks for record in records(chunk)]


# --- CSV: pyarrow for plain blocks, the pandas rule for the rest ---------------------------

HEADER = ", ".join(EXAMPLE_ROW)
LINE = ", ".join(str(v) for v in EXAMPLE_ROW.values())


def table_of(text: str, chunk_size: int = 3) -> tuple[list[str], list[list]]:
    """What read_rows gives for CSV text: column names and rows of values."""
    _, chunks = read_rows(io.StringIO(text), "csv", chunk_size)
    chunks = list(chunks)
    names = chunks[0].table.column_names
    return names, [list(r.values()) for chunk in chunks for r in chunk.table.to_pylist()]


class EndlessLine(io.RawIOBase):
    """A stream of zeros without a line break, as /dev/zero is; counts what was read."""

    def __init__(self, head: bytes = b"") -> None:
        self.head, self.given = head, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        data = (self.head + b"0" * size)[:size]
        self.head = self.head[size:]
        buffer[:size] = data
        self.given += size
        return size


@pytest.mark.parametrize(
    ("head", "line"), [(b"", 1), (f"{HEADER}\n{LINE}\n{LINE}\n".encode(), 4)], ids=["1", "4"]
)
def test_a_csv_line_without_end_is_refused_naming_it_without_being_read_whole(
    head: bytes, line: int
) -> None:
    endless = EndlessLine(head)
    _, chunks = read_rows(io.BufferedReader(endless), "csv", 10)
    with pytest.raises(InputError, match=f"^Line {line} is longer than"):
        list(chunks)
    assert endless.given < 4 * MAX_ROW_CHARS


def pandas_table_of(text: str) -> tuple[list[str], list[list]]:
    """What the cleaning rule itself (data.read_csv_text, the names as written) gives for
    the same text."""
    text = text.removeprefix("\ufeff")
    frame = read_csv_text(io.StringIO(text))
    written = refuse_repeated_names(text.lstrip("\r\n").partition("\n")[0])
    return names_as_written(frame.columns, written), frame.astype(object).values.tolist()


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few lines, so that the text below spans several."""
    monkeypatch.setattr(census_salary.rows, "BLOCK_BYTES", 64)


CSV_TEXTS = {
    "spaces after commas": f"{HEADER}\n{LINE}\n{LINE}\n",
    "windows line ends": f"{HEADER}\r\n{LINE}\r\n{LINE}\r\n",
    "old mac line ends": f"{HEADER}\r{LINE}\r{LINE}\r",
    "no final line end": f"{HEADER}\n{LINE}\n{LINE}",
    "byte order mark": f"\ufeff{HEADER}\n{LINE}\n",
    "blank lines": f"{HEADER}\n\n{LINE}\n\n\n{LINE}\n\n",
    "a line of spaces": f"{HEADER}\n{LINE}\n   \n{LINE}\n",
    "a quoted comma": f'id,{HEADER}\n"a,b",{LINE}\n7,{LINE}\n',
    "spaces before a quote": f'id,{HEADER}\n  "a,b",{LINE}\n7,{LINE}\n',
    "spaces inside quotes": f'id,{HEADER}\n"  a",{LINE}\n7,{LINE}\n',
    "a quoted line break": f'id,{HEADER}\n"a\nb",{LINE}\n7,{LINE}\n',
    "tabs are kept": f"id,{HEADER}\n\tx ,{LINE}\n",
    "an unnamed column": f"{HEADER},\n{LINE},x\n",
    "a blank line first": f"\n{HEADER}\n{LINE}\n",
    "a quote after plain blocks": f"id,{HEADER}\n" + f"1,{LINE}\n" * 9 + f'"a,b",{LINE}\n',
}


@pytest.mark.parametrize("text", list(CSV_TEXTS.values()), ids=list(CSV_TEXTS))
def test_csv_rows_are_those_of_the_cleaning_rule(text: str, small_blocks: None) -> None:
    assert table_of(text) == pandas_table_of(text)


# Lines of a few fields from characters CSV treats specially.
csv_lines = st.lists(
    st.lists(st.text(alphabet='ab ,"\r\t', max_size=4), min_size=1, max_size=3).map(",".join),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(lines=csv_lines, newline=st.sampled_from(["\n", "\r\n"]))
def test_any_csv_text_reads_as_the_cleaning_rule_reads_it(lines: list[str], newline: str) -> None:
    text = newline.join(["a, b,c", *lines]) + newline
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(census_salary.rows, "BLOCK_BYTES", 16)
        try:
            expected = pandas_table_of(text)
        except (InputError, pd.errors.ParserError):
            with pytest.raises(InputError):
                table_of(text)
            return
        assert table_of(text) == expected


def test_a_malformed_row_after_plain_blocks_names_its_line(small_blocks: None) -> None:
    text = f"{HEADER}\n" + f"{LINE}\n" * 20 + f"{LINE}, 1, 2\n"
    with pytest.raises(InputError, match=r"^Line 22 has 16 fields; the header names 14\."):
        table_of(text)


SHORT = LINE.rsplit(",", 2)[0]  # the row without its last two fields (categories)
QUOTED_BREAK = f'"a\nb\nc",{LINE}\n'  # a row of three lines, under `id,{HEADER}`

# Each: the text, and the line of its first row of the wrong width and that row's fields.
WRONG_WIDTHS = {
    "a short row, first block": (f"{HEADER}\n{LINE}\n{SHORT}\n{LINE}\n", 3, 12),
    "a short row without a line end": (f"{HEADER}\n{LINE}\n{SHORT}", 3, 12),
    "a short row of windows lines": (f"{HEADER}\r\n{LINE}\r\n{SHORT}\r\n", 3, 12),
    "a short row after plain blocks": (f"{HEADER}\n" + f"{LINE}\n" * 20 + f"{SHORT}\n", 22, 12),
    "a short row after blank blocks": (f"{HEADER}\n{LINE}\n" + "\n" * 200 + "39, x\n", 203, 2),
    "a short row after the switch to pandas": (
        f"id,{HEADER}\n" + f"1,{LINE}\n" * 9 + QUOTED_BREAK + f"1,{LINE}\n" * 9 + f"1,{SHORT}\n",
        23,
        13,
    ),
    "a short row after quoted line breaks": (
        f"id,{HEADER}\n" + QUOTED_BREAK * 3 + f"1,{SHORT}\n" + f"1,{LINE}\n",
        11,
        13,
    ),
    "a row too long after quoted line breaks": (
        f"id,{HEADER}\n" + QUOTED_BREAK * 3 + f"1,{LINE},x\n",
        11,
        16,
    ),
    "a quoted empty row": (f'{HEADER}\n{LINE}\n""\n', 3, 1),
    "a first row too long (not an index)": (f"{HEADER}\n7, {LINE}\n7, {LINE}\n", 2, 15),
}


@pytest.mark.parametrize(
    ("text", "line", "fields"), list(WRONG_WIDTHS.values()), ids=list(WRONG_WIDTHS)
)
def test_a_csv_row_of_the_wrong_width_is_refused_naming_its_line(
    text: str, line: int, fields: int, small_blocks: None
) -> None:
    """pandas pads a short row with empty values, as if they had been written empty."""
    columns = len(text.partition("\n")[0].split(","))
    message = (
        f"Line {line} has {fields} field{'s' * (fields > 1)}; the header names {columns}. Give "
        "every row a value for each column (empty is allowed; quote a value that holds a comma)."
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        table_of(text)


def csv_record(fields: list[str], newline: str) -> str:
    """One row as the csv module writes it (a lone empty or blank field quoted, or the row
    would read as a blank line)."""
    blank = len(fields) == 1 and not fields[0].strip(" \t")
    out = io.StringIO()
    quoting = csv.QUOTE_ALL if blank else csv.QUOTE_MINIMAL
    # (ended by \r\n, the writer quotes a field that holds either character)
    csv.writer(out, lineterminator="\r\n", quoting=quoting).writerow(fields)
    return out.getvalue().removesuffix("\r\n") + newline


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(2, 4),
    rows=st.lists(
        st.tuples(
            st.lists(st.text(alphabet='ab ,"\r\n\t', max_size=3), min_size=1, max_size=5),
            st.integers(0, 2),  # blank lines before the row
        ),
        max_size=10,
    ),
    newline=st.sampled_from(["\n", "\r\n"]),
    chunk_size=st.integers(1, 4),
)
def test_the_first_row_of_the_wrong_width_is_named_by_its_physical_line(
    width: int, rows: list[tuple[list[str], int]], newline: str, chunk_size: int
) -> None:
    text = ",".join("abcd"[:width]) + newline
    line, wrong = 2, None
    for fields, blanks in rows:
        record = csv_record(fields, newline)
        text += newline * blanks + record
        line += blanks
        if wrong is None and len(fields) != width:
            wrong = (line, len(fields))
        line += len(io.StringIO(record, newline="").readlines())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(census_salary.rows, "BLOCK_BYTES", 16)
        if wrong is None:
            assert len(table_of(text, chunk_size)[1]) == len(rows)
        else:
            with pytest.raises(InputError, match=f"^Line {wrong[0]} has {wrong[1]} field"):
                table_of(text, chunk_size)


def test_csv_that_is_not_utf8_after_plain_blocks_says_so(small_blocks: None) -> None:
    data = f"{HEADER}\n{LINE}\n{LINE}\n".encode() + b"\xff\n"
    _, chunks = read_rows(io.BytesIO(data), "csv", 10)
    with pytest.raises(InputError, match=r"^The input is not UTF-8 text"):
        list(chunks)


def test_an_empty_column_name_stays_empty_not_unnamed() -> None:
    names, rows = table_of(f"{HEADER},\n{LINE},x\n{LINE},\n")
    assert names[-1] == ""
    assert [row[-1] for row in rows] == ["x", ""]


def test_a_csv_header_alone_gives_one_empty_chunk() -> None:
    _, chunks = read_rows(io.StringIO(f"{HEADER}\n"), "csv", 10)
    (chunk,) = list(chunks)
    assert len(chunk) == 0
    assert chunk.table.column_names == [name.strip() for name in HEADER.split(",")]


def test_csv_chunks_hold_chunk_size_rows(small_blocks: None) -> None:
    _, chunks = read_rows(io.StringIO(f"{HEADER}\n" + f"{LINE}\n" * 10), "csv", 4)
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]


def test_distinct_values_decode_to_the_rows() -> None:
    lines = [LINE.replace("39", str(age), 1) for age in (20, 30, 20, 40, 30)]
    _, chunks = read_rows(io.StringIO("\n".join([HEADER, *lines]) + "\n"), "csv", 10)
    (chunk,) = list(chunks)
    age = chunk.distinct["age"]
    assert sorted(age.values) == ["20", "30", "40"]
    assert age.decoded().tolist() == ["20", "30", "20", "40", "30"]


def test_csv_columns_spelled_twice_are_refused() -> None:
    text = f"education_num,{HEADER}\n13,{LINE}\n"
    with pytest.raises(InputError, match=r"^Column\(s\) 'education_num' given more than once"):
        table_of(text)


def test_a_csv_column_named_twice_alike_is_refused_not_renamed() -> None:
    """pandas would read the second `age` as `age.1`: the row's first age, where a JSON row
    gives its last."""
    text = f"age,{HEADER}\n50,{LINE}\n"
    with pytest.raises(InputError, match=r"^Column\(s\) 'age' given more than once"):
        table_of(text)


@pytest.mark.parametrize("bad", [f"{LINE}, 1", SHORT], ids=["too long", "too short"])
def test_a_malformed_row_fails_the_chunk_pandas_would_fail(bad: str, small_blocks: None) -> None:
    """pandas takes over mid-chunk, and reads to the chunk's end before failing."""
    text = f"{HEADER}\n" + f"{LINE}\n" * 10 + f"{bad}\n" + f"{LINE}\n"
    _, chunks = read_rows(io.StringIO(text), "csv", 4)
    sizes = []
    with pytest.raises(InputError, match=r"^Line 12 has"):
        sizes.extend(len(chunk) for chunk in chunks)
    assert sizes == [4, 4]


def test_a_quoted_header_alone_gives_one_empty_chunk() -> None:
    _, chunks = read_rows(io.StringIO(f'"id",{HEADER}\n'), "csv", 10)
    (chunk,) = list(chunks)
    assert (len(chunk), chunk.table.column_names[0]) == (0, "id")


def test_chunks_hold_no_empty_piece_between_tables() -> None:
    """pyarrow's CSV writer, given a table with an empty chunk at an offset, wrote bytes
    from beyond it: a chunk that ends a table exactly leaves nothing behind."""
    import pyarrow as pa

    from census_salary.csv_rows import TableChunker

    chunker = TableChunker(2)
    table = pa.table({"a": ["1", "2", "3"]})
    chunks = [*chunker.add(table.slice(0, 2)), *chunker.add(table.slice(2)), *chunker.flush()]
    assert [len(chunk) for chunk in chunks] == [2, 1]
    assert chunks[1].table["a"].num_chunks == 1


def test_json_lines_read_nan_as_the_standard_library_does() -> None:
    (row,) = rows_of(json.dumps({**EXAMPLE_ROW, "age": float("nan")}) + "\n")
    assert np.isnan(row["age"])  # a value the check then refuses, not a syntax error


GOOD, AGE_TWICE = json.dumps(EXAMPLE_ROW), json.dumps({**EXAMPLE_ROW, "AGE": 40})


@pytest.mark.parametrize(
    ("text", "kept", "refused"),
    [
        (f"[{GOOD}, 5, {AGE_TWICE}, {GOOD}]", (1, 4), ("row 2", "row 3")),
        (f"{GOOD}\n\n5\n{AGE_TWICE}\n\n{GOOD}\n", (1, 6), ("line 3", "line 4")),
    ],
    ids=["json", "jsonl"],
)
def test_rows_that_are_not_objects_of_fields_are_left_out_and_named(
    text: str, kept: tuple[int, ...], refused: tuple[str, str]
) -> None:
    _, chunks = read_rows(io.StringIO(text), None, 10)
    (chunk,) = list(chunks)
    assert (len(chunk), chunk.numbers) == (2, kept)
    assert [str(problem) for problem in chunk.refused] == [
        f"{refused[0]}: got a number; expected an object of census fields",
        f"{refused[1]}, field 'age': the field is given twice (as 'AGE' too)",
    ]


@pytest.mark.parametrize(
    ("shape", "where"), [("jsonl", "^Line 2 cannot"), ("json", "^The JSON input .* in row 2:")]
)
def test_half_a_surrogate_pair_is_refused_naming_the_row_and_field(shape: str, where: str) -> None:
    rows = [json.dumps(EXAMPLE_ROW), json.dumps({**EXAMPLE_ROW, "note": "NOTE"})]
    text = "\n".join(rows) if shape == "jsonl" else f"[{','.join(rows)}]"
    with pytest.raises(InputError, match=f"{where}.*field note holds half of a UTF-16"):
        rows_of(text.replace("NOTE", "\\ud800"))


@pytest.mark.parametrize(
    "data",
    [
        b"age,workclass\n39,St\xffate\n",
        b"ag\xffe,workclass\n39,x\n",
        b'[{"age": "3\xff9"}]',
        b'{"age": 39}\n{"age": "\xff"}\n',
    ],
    ids=["csv-row", "csv-header", "json", "jsonl"],
)
def test_bytes_that_are_not_utf8_are_refused_naming_the_input(data: bytes) -> None:
    _, chunks = read_rows(io.BytesIO(data), None, 10, name="rows.txt")
    message = "rows.txt is not UTF-8 text (invalid start byte); save it as UTF-8 and try again."
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        list(chunks)


def test_a_csv_file_that_starts_like_json_says_how_it_was_read() -> None:
    _, chunks = read_rows(io.BytesIO(b"[id],age\n1,39\n"), None, 10, name="rows.csv")
    message = (
        "(it was read as JSON, as its first characters say, though its name says CSV: "
        "pass --format csv to read it so)."
    )
    with pytest.raises(InputError, match=f"^Invalid JSON input.*{re.escape(message)}$"):
        list(chunks)


@pytest.mark.parametrize(
    ("data", "name", "fmt"),
    [
        (b"[id],age\n1,39\n", "rows.txt", None),
        (b"[id],age\n1,39\n", "rows.json", None),
        (b"[id],age\n1,39\n", "rows.csv", "json"),
    ],
)
def test_an_input_read_as_its_name_or_format_says_gets_no_hint(
    data: bytes, name: str, fmt: InputFormat | None
) -> None:
    _, chunks = read_rows(io.BytesIO(data), fmt, 10, name=name)
    with pytest.raises(InputError) as failed:
        list(chunks)
    assert "--format" not in str(failed.value)


def test_a_whole_surrogate_pair_is_read_as_its_character() -> None:
    text = json.dumps({**EXAMPLE_ROW, "note": "NOTE"}).replace("NOTE", "\\ud83d\\ude00")
    assert [row["note"] for row in rows_of(text + "\n")] == ["\U0001f600"]


def _rows_while_the_pipe_stays_open(data: bytes, fmt: InputFormat, rows: int) -> list[RowChunk]:
    """The chunks read_rows gives from a pipe holding `data` while its writer stays (up to
    10 s): until they hold `rows` rows. The pipe is closed afterwards, which ends a reader
    still waiting for more, so the test ends either way."""
    read_end, write_end = os.pipe()
    got: list[RowChunk] = []
    arrived = threading.Event()

    def read() -> None:
        with io.FileIO(read_end) as source:
            _, chunks = read_rows(source, fmt, 1000)
            for chunk in chunks:
                got.append(chunk)
                if sum(map(len, got)) >= rows:
                    arrived.set()

    os.write(write_end, data)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    arrived.wait(timeout=10)
    before_the_end = list(got)
    os.close(write_end)
    reader.join(timeout=10)
    return before_the_end


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (f"{HEADER}\n{LINE}\n{LINE}\n".encode(), "csv"),
        (f"{json.dumps(EXAMPLE_ROW)}\n{json.dumps(EXAMPLE_ROW)}\n".encode(), "jsonl"),
    ],
)
def test_rows_a_pipe_has_given_come_out_when_its_writer_pauses(
    data: bytes, fmt: InputFormat
) -> None:
    got = _rows_while_the_pipe_stays_open(data, fmt, rows=2)
    assert sum(map(len, got)) == 2
    assert got[-1].paused


def test_a_file_is_chunked_by_size_alone() -> None:
    _, chunks = read_rows(io.BytesIO(f"{HEADER}\n{LINE}\n{LINE}\n{LINE}\n".encode()), "csv", 2)
    assert [(len(c), c.paused) for c in chunks] == [(2, False), (1, True)]  # the end
