import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from census_salary.data import check_frame, detect_format, read_census, read_rows
from census_salary.errors import InputError, RowProblem
from census_salary.schema import EXAMPLE_ROW, CensusRow

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


def test_bad_label_names_row_and_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"row 2, field 'salary': got 'rich'"):
        read_census(write(tmp_path, HEADER, ROW_A, ROW_B.replace(">50K", "rich")))


def test_bad_value_names_row_field_and_expectation(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"row 1, field 'age': got '-4'; expected a whole number >= 0 and <= 120"
    ):
        read_census(write(tmp_path, HEADER, ROW_A.replace("39,", "-4,", 1)))


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


def frame(**changes: object) -> pd.DataFrame:
    return pd.DataFrame([{**EXAMPLE_ROW, **changes}])


def test_check_frame_counts_rows_from_first_row() -> None:
    checked = check_frame(pd.concat([frame(), frame(age=200)], ignore_index=True), first_row=101)
    assert checked.problems == [
        RowProblem(102, "age", "got 200; expected a whole number >= 0 and <= 120")
    ]
    assert checked.good.tolist() == [True, False]
    assert len(checked.features) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age", "abc"),
        ("age", 1.5),
        ("age", True),
        ("capital-gain", float("inf")),
        ("workclass", 7),
        ("sex", "x" * 101),
    ],
)
def test_check_frame_refuses_what_the_schema_refuses(field: str, value: object) -> None:
    checked = check_frame(frame(**{field: value}))
    assert len(checked.problems) == 1, checked.problems


def test_check_frame_treats_question_mark_as_missing() -> None:
    checked = check_frame(frame(workclass=" ? "))
    assert checked.problems == []
    assert pd.isna(checked.features.loc[0, "workclass"])


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
    return [record for chunk in chunks for record in chunk.to_dict("records")]


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


def test_absent_json_field_is_a_problem_but_null_category_is_not() -> None:
    absent = {k: v for k, v in EXAMPLE_ROW.items() if k != "workclass"}
    _, chunks = read_rows(
        io.StringIO(json.dumps([absent, {**EXAMPLE_ROW, "workclass": None}])), None, 10
    )
    checked = check_frame(next(chunks))
    assert [(p.row, p.field) for p in checked.problems] == [(1, "workclass")]
    assert "missing" in checked.problems[0].message


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


def test_true_is_not_taken_for_one_in_a_mixed_column() -> None:
    raw = pd.DataFrame.from_records([{**EXAMPLE_ROW, "age": 1}, {**EXAMPLE_ROW, "age": True}])
    assert raw["age"].dtype == object
    checked = check_frame(raw)
    assert [(p.row, p.field) for p in checked.problems] == [(2, "age")]


def test_text_columns_and_object_columns_give_the_same_checks() -> None:
    values = ["39", " 40 ", "x", "", "200", "39", "1.5", "?"]
    raw = pd.concat([frame(age=v, workclass=v) for v in values], ignore_index=True)
    as_text = check_frame(raw.astype({"age": "str", "workclass": "str"}))
    as_objects = check_frame(
        raw.astype({"age": object, "workclass": object}).assign(id=[[i] for i in range(8)])
    )
    assert as_text.problems == as_objects.problems
    pd.testing.assert_frame_equal(as_text.features, as_objects.features)


SCHEMA_FAMILY = [
    "39",
    " 39 ",
    "+39",
    "-0",
    "039",
    "39.0",
    "1e1",
    "0x1f",
    "39_0",
    "",
    "nan",
    "inf",
    "٣٩",
    39,
    39.0,
    39.5,
    -1,
    True,
    None,
    "121",
    10**30,
]


@pytest.mark.parametrize("value", SCHEMA_FAMILY, ids=repr)
def test_bulk_check_and_row_schema_agree(value: object) -> None:
    try:
        CensusRow.model_validate({**EXAMPLE_ROW, "age": value})
        schema_accepts = True
    except ValidationError:
        schema_accepts = False
    raw = pd.DataFrame.from_records([{**EXAMPLE_ROW, "age": value}, EXAMPLE_ROW])
    bulk_accepts = not check_frame(raw).problems
    assert bulk_accepts == schema_accepts, (
        f"schema {'accepts' if schema_accepts else 'refuses'} {value!r}"
    )
