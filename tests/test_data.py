import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from census_salary.data import read_census, read_csv_text
from census_salary.errors import InputError

HEADER = (
    "age, workclass, fnlgt, education, education-num, marital-status, occupation, "
    "relationship, race, sex, capital-gain, capital-loss, hours-per-week, native-country, salary"
)
ROW_A = (
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
    "White, Male, 2174, 0, 40, United-States, <=50K"
)
ROW_B = "52, ?, 209642, HS-grad, 9, Married-civ-spouse, ?, Husband, White, Male, 0, 0, 45, ?, >50K"


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "census.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_published_layout_is_cleaned(tmp_path: Path) -> None:
    data = read_census(write(tmp_path, HEADER, ROW_A, ROW_B))
    assert list(data.features.columns[:5]) == [
        "age",
        "workclass",
        "fnlgt",
        "education",
        "education_num",
    ]
    assert data.features.loc[0, "workclass"] == "State-gov"
    assert pd.isna(data.features.loc[1, "occupation"])
    assert data.target.tolist() == [0, 1]


def test_exact_duplicates_are_dropped_and_counted(tmp_path: Path) -> None:
    data = read_census(write(tmp_path, HEADER, ROW_A, ROW_B, ROW_A))
    assert (data.rows_read, data.duplicates_dropped, len(data.features)) == (3, 1, 2)


def test_file_without_header_is_read_as_adult_data(tmp_path: Path) -> None:
    data = read_census(write(tmp_path, ROW_A, ROW_B))
    assert len(data.features) == 2


def test_variant_names_and_dotted_labels_are_accepted(tmp_path: Path) -> None:
    header = HEADER.replace("fnlgt", "fnlwgt").replace("salary", "income")
    data = read_census(
        write(tmp_path, header, ROW_A.replace("<=50K", "<=50K."), ROW_B.replace(">50K", ">50K."))
    )
    assert data.target.tolist() == [0, 1]


def test_a_configured_label_is_found_in_any_spelling(tmp_path: Path) -> None:
    header = HEADER.replace("salary", "Over-50K")
    data = read_census(write(tmp_path, header, ROW_A, ROW_B), target="over_50k")
    assert data.target.tolist() == [0, 1]


def test_bad_label_names_row_and_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"row 2, field 'salary': got 'rich'"):
        read_census(write(tmp_path, HEADER, ROW_A, ROW_B.replace(">50K", "rich")))


def test_a_bad_label_names_the_configured_label_column(tmp_path: Path) -> None:
    header = HEADER.replace("salary", "over_50k")
    with pytest.raises(InputError, match=r"row 2, field 'over_50k': got 'rich'"):
        read_census(
            write(tmp_path, header, ROW_A, ROW_B.replace(">50K", "rich")), target="over_50k"
        )


def test_bad_value_names_row_field_and_expectation(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"row 1, field 'age': got '-4'; expected a whole number from 0 to 120"
    ):
        read_census(write(tmp_path, HEADER, ROW_A.replace("39,", "-4,", 1)))


def test_a_column_named_twice_alike_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"age, {HEADER}", f"50, {ROW_A}")
    message = f"In {path}: Column(s) 'age' given more than once"
    with pytest.raises(InputError, match=f"^{re.escape(message)}"):
        read_census(path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    header = HEADER.replace(", race", "")
    row = ROW_A.replace(" White,", "")
    with pytest.raises(InputError, match=r"Missing column.*race"):
        read_census(write(tmp_path, header, row))


def test_real_file_reads_clean(census_csv: Path) -> None:
    data = read_census(census_csv)
    assert data.rows_read == 32561
    assert data.duplicates_dropped == 24
    assert data.features["workclass"].isna().sum() > 1000
    assert not data.features[["age", "hours_per_week"]].isna().any().any()


def test_note_lines_before_the_data_are_skipped_and_a_bar_inside_a_value_is_kept(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "|1x3 Cross validator", HEADER, ROW_A.replace("Adm-clerical", "a|b"))
    data = read_census(path)
    assert data.features.loc[0, "occupation"] == "a|b"


SHORT_ROW = ROW_A.rsplit(",", 3)[0]  # the row without its last three fields
REFUSED = "Give every row a value for each column (empty is allowed; quote a value that holds"


def test_a_short_row_is_refused_naming_its_line_not_padded(tmp_path: Path) -> None:
    """pandas would read the missing fields as empty values, as if they had been given."""
    path = write(tmp_path, HEADER, ROW_A, SHORT_ROW, ROW_B)
    message = f"Line 3 has 12 fields; the header names 15. {REFUSED}"
    with pytest.raises(InputError, match=f"^{re.escape(f'In {path}: {message}')}"):
        read_census(path)


def test_a_short_row_after_note_lines_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "|1x3 Cross validator", HEADER, ROW_A, "", SHORT_ROW)
    with pytest.raises(InputError, match=r": Line 5 has 12 fields; the header names 15\."):
        read_census(path)


def test_a_short_row_in_a_file_without_a_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, ROW_A, ROW_B, SHORT_ROW)
    message = (
        "Line 3 has 12 fields; a file without a header row has 15 columns (the census "
        f"columns and the label). {REFUSED}"
    )
    with pytest.raises(InputError, match=f"^{re.escape(f'In {path}: {message}')}"):
        read_census(path)


def test_a_row_too_long_is_refused_in_the_same_words(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, ROW_A, f"{ROW_B}, x")
    message = f"Line 3 has 16 fields; the header names 15. {REFUSED}"
    with pytest.raises(InputError, match=f"^{re.escape(f'In {path}: {message}')}"):
        read_census(path)


def test_the_real_file_still_reads_every_row_as_pandas_does(census_csv: Path) -> None:
    plain = pd.read_csv(census_csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    assert read_census(census_csv).rows_read == len(plain) == 32561


def test_a_short_row_that_ends_what_pandas_reads_at_once_fails_its_own_chunk() -> None:
    """pandas reads 262,144 characters at a time and may give the rows of that text before
    reading on: a row ending exactly there is counted before its chunk is given."""
    piece = 262_144
    header, row, short = "a,b\n", "1,2\n", "x\n"
    rows, pad = divmod(piece - len(header) - len(short) - len("1,2\n"), len(row))
    first = "1" * (pad + 1) + ",2\n"
    text = header + first + row * rows + short + row * 10
    assert len(header + first + row * rows + short) == piece
    reader = read_csv_text(io.StringIO(text), chunksize=rows + 2)
    with pytest.raises(InputError, match=f"^Line {rows + 3} has 1 field; the header names 2"):
        reader.get_chunk(rows + 2)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_short_row_far_into_a_file_is_named_as_one_near_its_start(newline: str) -> None:
    """Beyond what pandas reads first, rows without quotes are counted by their commas."""
    rows = 200_000  # (pandas reads 262,144 characters at a time: this takes three)
    lines = ["a,b", *["1,2"] * rows, "", "  ", "1,2", "x", "1,2"]
    with pytest.raises(InputError, match=f"^Line {rows + 5} has 1 field; the header names 2"):
        read_csv_text(io.StringIO(newline.join(lines) + newline))


def test_a_byte_order_mark_before_a_file_without_a_header_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "adult.data"
    path.write_text(f"\ufeff{ROW_A}\n{ROW_B}\n", encoding="utf-8")
    assert read_census(path).features["age"].tolist() == [39, 52]


def test_a_byte_order_mark_before_note_lines_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "adult.test"
    path.write_text(f"\ufeff|1x3 Cross validator\n{ROW_A}\n{ROW_B}\n", encoding="utf-8")
    assert len(read_census(path).features) == 2


@pytest.mark.parametrize("age", ["+39", '"39"'])
def test_a_first_row_whose_age_is_not_plain_digits_is_read_as_a_row(
    tmp_path: Path, age: str
) -> None:
    data = read_census(write(tmp_path, ROW_A.replace("39,", f"{age},", 1), ROW_B))
    assert data.features["age"].tolist() == [39, 52]


@pytest.mark.parametrize("age", ["?", "", "x"])
def test_a_bad_age_in_the_first_row_of_a_file_without_a_header_is_named(
    tmp_path: Path, age: str
) -> None:
    path = write(tmp_path, ROW_A.replace("39,", f"{age},", 1), ROW_B)
    with pytest.raises(InputError, match=rf"row 1, field 'age': got {re.escape(repr(age))};"):
        read_census(path)


def test_a_header_is_told_by_the_census_names_it_gives_not_by_its_first_field(
    tmp_path: Path,
) -> None:
    """A header that starts with a number-like name (an index column) is still a header."""
    header = f"0, {HEADER}"
    data = read_census(write(tmp_path, header, f"7, {ROW_A}", f"8, {ROW_B}"))
    assert data.target.tolist() == [0, 1]


def published_records() -> list[dict[str, object]]:
    """ROW_A and ROW_B as JSON rows: numbers as numbers, text as the file has it."""
    names = [name.strip() for name in HEADER.split(",")]
    rows = [[value.strip() for value in row.split(",")] for row in (ROW_A, ROW_B)]
    return [
        {n: int(v) if v.isdigit() else v for n, v in zip(names, row, strict=True)} for row in rows
    ]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_rows_in_another_format_read_as_the_same_csv_rows_do(tmp_path: Path, suffix: str) -> None:
    records = published_records()
    path = tmp_path / f"census{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"inputs": records}), encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        pd.DataFrame(records).to_parquet(path)
    data, published = read_census(path), read_census(write(tmp_path, HEADER, ROW_A, ROW_B))
    pd.testing.assert_frame_equal(data.features, published.features)
    assert data.target.tolist() == published.target.tolist() == [0, 1]


def test_a_bad_value_in_json_rows_names_its_row_and_field(tmp_path: Path) -> None:
    records = published_records()
    records[1]["age"] = "old"
    path = tmp_path / "census.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(InputError, match=r"row 2, field 'age': got 'old'"):
        read_census(path)


def test_a_json_row_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "census.json"
    path.write_text(json.dumps([published_records()[0], 7]), encoding="utf-8")
    with pytest.raises(InputError, match=r"row 2.*expected an object"):
        read_census(path)


def test_a_field_a_json_line_leaves_out_is_named_as_census_predict_names_it(
    tmp_path: Path,
) -> None:
    records = published_records()
    del records[1]["workclass"]
    path = tmp_path / "census.jsonl"
    path.write_text("\n\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"line 3, field 'workclass': got nothing"):
        read_census(path)
