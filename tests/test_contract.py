import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from census_salary import contract
from census_salary.contract import (
    CATEGORICAL,
    COLUMNS,
    EXAMPLE_ROW,
    INVALID,
    MAX_NESTING,
    NUMERIC_RANGES,
    NUMERICAL,
    ColumnTable,
    DistinctColumn,
    TooDeepError,
    canonical_columns,
    canonical_name,
    canonical_records,
    check_columns,
    check_records,
    columns_of_frame,
    decode_json,
    parse_value,
)
from census_salary.errors import InputError, RowProblem


def test_columns_split_into_the_census_types() -> None:
    assert len(CATEGORICAL) == 8
    assert NUMERICAL == [
        "age",
        "fnlgt",
        "education_num",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
    ]


def test_numeric_ranges_come_from_the_declaration() -> None:
    assert NUMERIC_RANGES["age"] == (0, 120)
    assert NUMERIC_RANGES["hours_per_week"] == (0, 168)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (" education-num", "education_num"),
        ("Native-Country", "native_country"),
        ("fnlwgt", "fnlgt"),
        ("income", "salary"),
    ],
)
def test_canonical_names(given: str, canonical: str) -> None:
    assert canonical_name(given) == canonical


# --- the coercion rule (the README's table, value by value) -------------------------------

NUMBER_ACCEPTED = [
    (39, 39),
    (39.0, 39),
    ("39", 39),
    (" 39 ", 39),
    ("\u00a039\t", 39),
    ("+39", 39),
    ("039", 39),
    ("39.", 39),
    ("39.00", 39),
    ("-0", 0),
    (np.int64(39), 39),
    (np.float64(39.0), 39),
]
NUMBER_REFUSED = [
    True,
    False,
    np.bool_(True),
    39.5,
    float("nan"),
    float("inf"),
    "39.5",
    "1e1",
    "1_0",
    "2,174",
    "0x1f",
    "\u0663\u0669",  # Arabic-Indic digits
    "\uff13\uff19",  # full-width digits
    "3O",  # a letter O
    "",
    "?",
    "nan",
    "inf",
    None,
    -1,
    121,
    "121",
    10**30,
    "9" * 25,
    1e300,
    [39],
    {"value": 39},
]


@pytest.mark.parametrize(("value", "expected"), NUMBER_ACCEPTED, ids=repr)
def test_numbers_accepted(value: Any, expected: int) -> None:
    assert parse_value(value, "age") == expected


@pytest.mark.parametrize("value", NUMBER_REFUSED, ids=repr)
def test_numbers_refused(value: Any) -> None:
    assert parse_value(value, "age") is INVALID


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Male", "Male"),
        (" Male ", "Male"),
        ("male", "male"),  # case is kept: an unknown spelling is a warning, not a match
        ("?", None),
        (" ? ", None),
        ("", None),
        ("   ", None),
        (None, None),
        (float("nan"), None),
        ("x" * 100, "x" * 100),
    ],
    ids=repr,
)
def test_categories_accepted(value: Any, expected: str | None) -> None:
    assert parse_value(value, "sex") == expected


@pytest.mark.parametrize("value", [7, 7.0, True, "x" * 101, ["Male"], {"a": 1}], ids=repr)
def test_categories_refused(value: Any) -> None:
    assert parse_value(value, "sex") is INVALID


def test_true_and_one_are_kept_apart_by_the_cache() -> None:
    assert parse_value(1, "age") == 1
    assert parse_value(True, "age") is INVALID
    assert parse_value(1.0, "age") == 1


def test_the_caches_are_bounded_and_keep_no_long_text() -> None:
    """Rows with ever-new or huge keys and values must not grow a server's memory."""
    caches = [contract._cached_canonical_name, contract._parse_cached, contract._cached_key_plan]
    assert all(cache.cache_info().maxsize is not None for cache in caches)
    check_records([{**EXAMPLE_ROW, "id": 1}])  # what the row below shares, kept
    sizes = [cache.cache_info().currsize for cache in caches]
    long = " x" * 1_000
    assert canonical_name(long) == long.strip().replace(" ", "_")
    assert parse_value(long, "sex") is INVALID
    assert check_records([{**EXAMPLE_ROW, long: 1}]).good.all()
    assert [cache.cache_info().currsize for cache in caches] == sizes


def test_check_counts_rows_from_first_row() -> None:
    checked = check_records([EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 200}], first_row=101)
    assert checked.problems == [
        RowProblem(102, "age", "got 200; expected a whole number from 0 to 120")
    ]
    assert checked.good.tolist() == [True, False]
    assert len(checked) == 1
    assert checked.columns["age"].tolist() == [39.0]


def test_check_gives_numbers_as_floats_and_missing_categories_as_none() -> None:
    checked = check_records([{**EXAMPLE_ROW, "workclass": " ? ", "age": "40"}])
    assert checked.columns["age"].dtype == np.float64
    assert checked.columns["workclass"].tolist() == [None]


def test_absent_field_is_a_problem_but_null_category_is_not() -> None:
    absent = {k: v for k, v in EXAMPLE_ROW.items() if k != "workclass"}
    checked = check_records([absent, {**EXAMPLE_ROW, "workclass": None}])
    assert [(p.row, p.field) for p in checked.problems] == [(1, "workclass")]
    assert "missing" in checked.problems[0].message


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ([1, 2], "", "got an array; expected an object of census fields"),
        (None, "", "got null; expected an object of census fields"),
        ("x", "", "got a string; expected an object of census fields"),
        (True, "", "got true or false; expected an object of census fields"),
        ({**EXAMPLE_ROW, "education_num": 13}, "education_num", "given twice"),
    ],
)
def test_rows_that_are_not_objects_of_fields_are_problems_of_their_own(
    row: Any, field: str, message: str
) -> None:
    checked = check_records([EXAMPLE_ROW, row, EXAMPLE_ROW])
    ((number, named, said),) = [(p.row, p.field, p.message) for p in checked.problems]
    assert (number, named) == (2, field)
    assert message in said
    assert checked.good.tolist() == [True, False, True]
    assert checked.columns["age"].tolist() == [39.0, 39.0]


def test_refused_rows_and_bad_values_are_listed_together_in_row_order() -> None:
    rows = [None, {**EXAMPLE_ROW, "age": 300}, {**EXAMPLE_ROW, "AGE": 1}, 7, EXAMPLE_ROW]
    checked = check_records(rows, first_row=11)
    assert [(p.row, p.field) for p in checked.problems] == [
        (11, ""),
        (12, "age"),
        (13, "age"),
        (14, ""),
    ]
    assert checked.good.tolist() == [False, False, False, False, True]
    assert len(checked.columns["age"]) == 1


def test_missing_column_is_named() -> None:
    columns = {name: [EXAMPLE_ROW[name.replace("_", "-")]] for name in NUMERICAL}
    with pytest.raises(InputError, match=r"Missing column.*workclass"):
        check_columns(columns)


def test_text_columns_and_json_values_give_the_same_verdicts() -> None:
    values = ["39", " 40 ", "x", "", "200", "39", "1.5", "?"]
    table = pd.DataFrame([{**EXAMPLE_ROW, "age": v, "workclass": v} for v in values])
    as_text = check_columns(columns_of_frame(table.astype(str)))
    as_json = check_records(table.to_dict("records"))
    assert as_text.problems == as_json.problems
    for name in as_text.columns:
        assert as_text.columns[name].tolist() == as_json.columns[name].tolist(), name


def test_table_with_both_spellings_of_a_column_is_refused_naming_them() -> None:
    table = pd.DataFrame([{**EXAMPLE_ROW, "education_num": 13}])
    message = (
        "Column(s) 'education_num' given more than once ('education-num' and 'education_num' "
        "name the same column); give each column once."
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        columns_of_frame(table)


@pytest.mark.parametrize("dtype", ["string", "string[pyarrow]", "category", "object"])
def test_a_tables_missing_category_is_missing_whatever_its_type(dtype: str) -> None:
    table = pd.DataFrame([EXAMPLE_ROW, {**EXAMPLE_ROW, "workclass": None}])
    table["workclass"] = table["workclass"].astype(dtype)
    checked = check_columns(columns_of_frame(table))
    assert checked.problems == []
    assert checked.columns["workclass"].tolist() == [EXAMPLE_ROW["workclass"], None]


def test_a_missing_number_of_a_nullable_column_is_named_as_missing() -> None:
    table = pd.DataFrame([EXAMPLE_ROW, {**EXAMPLE_ROW, "age": None}])
    table["age"] = table["age"].astype("Int64")
    (problem,) = check_columns(columns_of_frame(table)).problems
    assert (problem.row, problem.field) == (2, "age")
    assert problem.message.startswith("got no value; expected a whole number")


@pytest.mark.parametrize(("value", "parsed"), [(Decimal("39"), 39), (Decimal("39.00"), 39)])
def test_a_whole_decimal_is_a_number(value: Decimal, parsed: int) -> None:
    assert parse_value(value, "age") == parsed


def test_a_fractional_decimal_is_refused_quoting_it_as_a_number() -> None:
    (problem,) = check_records([{**EXAMPLE_ROW, "age": Decimal("39.5")}]).problems
    assert problem.message.startswith("got 39.5; expected a whole number")


def test_a_column_given_twice_alike_is_refused_without_a_note_on_spellings() -> None:
    with pytest.raises(InputError, match=r"^Column\(s\) 'id' given more than once; give"):
        canonical_columns(["id", "age", "id"])


def test_other_columns_keep_their_names_and_differ_as_json_keys_differ() -> None:
    names = ["Customer ID", "customer_id", " Age", "Income"]
    assert canonical_columns(names) == ["Customer ID", "customer_id", "age", "salary"]


def test_the_label_in_two_spellings_is_refused() -> None:
    with pytest.raises(InputError, match=r"'salary' given more than once \('income' and"):
        canonical_columns(["age", "income", "salary"])


def test_a_json_rows_label_takes_its_canonical_name_as_a_tables_does() -> None:
    rows = [{**EXAMPLE_ROW, "salary": ">50K"}, {**EXAMPLE_ROW, "Income": "<=50K"}]
    records = canonical_records(rows, [1, 2])
    assert [row["salary"] for row in records.rows] == [">50K", "<=50K"]


def test_a_json_row_giving_the_label_twice_is_refused() -> None:
    (problem,) = check_records([{**EXAMPLE_ROW, "salary": ">50K", "income": "<=50K"}]).problems
    assert (problem.row, problem.field) == (1, "salary")
    assert problem.message == "the field is given twice (as 'income' too)"


def test_rows_spelled_differently_give_the_columns_rows_spelled_alike_give() -> None:
    alike = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 50}]
    differently = [EXAMPLE_ROW, {canonical_name(k).upper(): v for k, v in alike[1].items()}]
    expected, got = check_records(alike).columns, check_records(differently).columns
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in expected.items()}


@pytest.mark.parametrize("kept", [0, 1, 2, 13])
def test_rows_alike_with_few_fields_are_checked_as_rows_spelled_differently(kept: int) -> None:
    fields = {k: v for k, v in list(EXAMPLE_ROW.items())[:kept]}
    alike = [{**fields, "note": 1}, {**fields, "note": 2}]
    differently = [alike[0], {k.upper(): v for k, v in alike[1].items()}]
    expected, got = check_records(differently), check_records(alike)
    assert len(got.problems) == 2 * (14 - kept)
    assert got.problems == expected.problems


def test_a_field_given_twice_in_every_row_is_a_problem_of_each() -> None:
    rows = [{**EXAMPLE_ROW, "AGE": 40}] * 3
    checked = check_records(rows, first_row=5)
    assert [(p.row, p.field) for p in checked.problems] == [(5, "age"), (6, "age"), (7, "age")]


@pytest.mark.parametrize("column", [[17, 90, -1, 121, 2**70], np.array([17, 90, -1, 121, 1000])])
def test_whole_numbers_are_checked_by_range(column: Any) -> None:
    example = {canonical_name(k): [v] * 5 for k, v in EXAMPLE_ROW.items()}
    checked = check_columns({**example, "age": column})
    assert [p.row for p in checked.problems] == [3, 4, 5]
    assert checked.columns["age"].tolist() == [17.0, 90.0]


def test_rows_alike_in_length_but_not_in_keys_are_checked_row_by_row() -> None:
    rows = [{**EXAMPLE_ROW, "id": 1}, {**EXAMPLE_ROW, "AGE": 40}]
    assert [(p.row, p.field) for p in check_records(rows).problems] == [(2, "age")]


def test_categories_are_kept_by_their_distinct_values() -> None:
    rows = [{**EXAMPLE_ROW, "race": race} for race in [" White", "White", "Black", "?"] * 10]
    column = check_records(rows).columns.kept("race")
    assert isinstance(column, DistinctColumn)
    assert len(column.values) == 4  # each distinct text once, however many rows
    assert len(column) == 40
    assert column.decoded().tolist() == ["White", "White", "Black", None] * 10


def test_null_categories_are_kept_by_their_distinct_values_too() -> None:
    rows = [{**EXAMPLE_ROW, "race": race} for race in [" White", "White", None] * 10]
    column = check_records(rows).columns.kept("race")
    assert isinstance(column, DistinctColumn)
    assert len(column.values) == 3  # each distinct value parsed once, not each row
    assert column.decoded().tolist() == ["White", "White", None] * 10


@pytest.mark.parametrize("odd", [True, 1, 1.0, ["White"]])
def test_a_category_that_is_not_text_is_refused_among_many_rows(odd: Any) -> None:
    rows = [{**EXAMPLE_ROW, "race": "White"} for _ in range(30)]
    rows[17] = {**EXAMPLE_ROW, "race": odd}
    checked = check_records(rows)
    assert [(p.row, p.field) for p in checked.problems] == [(18, "race")]
    assert checked.columns["race"].tolist() == ["White"] * 29


def test_a_pandas_column_by_its_distinct_values_is_the_list_s() -> None:
    values = ["a", None, "b", "a", None]
    from_pandas = DistinctColumn.of(pd.Series(values, dtype=object))
    from_list = DistinctColumn.of(values)
    assert from_pandas.values == from_list.values
    assert from_pandas.codes.tolist() == from_list.codes.tolist()


def test_a_distinct_column_looks_up_each_value_once() -> None:
    column = DistinctColumn.of(["a", "b", "a", None, "c", "a"])
    assert column.values == ["a", "b", None, "c"]
    assert column.mapped({"a": 1, "b": 2}, 0).tolist() == [1, 2, 1, 0, 0, 1]


def test_joined_tables_hold_their_rows_in_order() -> None:
    first = check_records([EXAMPLE_ROW, {**EXAMPLE_ROW, "sex": "Female", "age": 50}]).columns
    second = check_records([{**EXAMPLE_ROW, "sex": None, "race": "Other"}]).columns
    joined = ColumnTable.joined([first, second, dict(first)])
    for name in COLUMNS:
        expected = [*first[name].tolist(), *second[name].tolist(), *first[name].tolist()]
        assert joined[name].tolist() == expected, name
    assert joined.rows(slice(1, 3))["sex"].tolist() == ["Female", None]


def test_a_tables_values_are_its_rows_as_python_values() -> None:
    rows = [{**EXAMPLE_ROW, "age": -1}, {**EXAMPLE_ROW, "race": "?", "age": 50}, EXAMPLE_ROW]
    table = check_records(rows).columns  # the refused first row is not among them
    assert table.row_values("race") == [None, EXAMPLE_ROW["race"]]
    assert table.row_values("age") == [50.0, float(EXAMPLE_ROW["age"])]


def test_rows_spelled_alike_give_the_records_rows_spelled_differently_give() -> None:
    alike = [{**EXAMPLE_ROW, "id": i} for i in range(3)]  # the published, hyphenated names
    mixed = [*alike[:2], {canonical_name(k): v for k, v in alike[2].items()}]
    records = canonical_records(alike, [1, 2, 3])
    one_by_one = canonical_records(mixed, [1, 2, 3])
    assert records.rows == one_by_one.rows
    assert list(records.rows[0]) == [canonical_name(k) for k in alike[0]]
    assert {k: list(v) for k, v in records.columns.items()} == {
        k: list(v) for k, v in one_by_one.columns.items()
    }


def test_one_column_of_a_table_takes_its_rows_from_elsewhere() -> None:
    rows = [
        {**EXAMPLE_ROW, "age": 20, "race": "White"},
        {**EXAMPLE_ROW, "age": 30, "race": "Black"},
    ]
    swapped = check_records(rows).columns.with_rows_of("race", np.array([1, 0]))
    assert swapped["race"].tolist() == ["Black", "White"]
    assert swapped["age"].tolist() == [20.0, 30.0]


# --- decoding: nesting ----------------------------------------------------------------------


def brackets(depth: int, inside: str = "") -> str:
    return "[" * depth + inside + "]" * depth


def test_decode_json_keeps_long_integers_exact_only_when_asked() -> None:
    text = b'{"id": 123456789012345678901234567, "age": 39}'
    assert decode_json(text)["id"] == 1.2345678901234568e26  # orjson's double: the fast way
    assert decode_json(text, exact_integers=True)["id"] == 123456789012345678901234567


def test_decode_json_names_a_number_too_long_to_read_without_pythons_advice() -> None:
    with pytest.raises(ValueError, match="more than 4,300 digits") as refused:
        decode_json(b'[{"age": ' + b"9" * 5000 + b"}]")
    assert "set_int_max_str_digits" not in str(refused.value)


@pytest.mark.parametrize(
    "deeper",
    [
        lambda depth: brackets(depth),  # orjson reads it (up to its own 1,024)
        lambda depth: brackets(depth).encode(),  # as a request body comes
        lambda depth: brackets(depth, "NaN"),  # the standard library reads it
    ],
    ids=["text", "bytes", "nan"],
)
def test_decode_json_reads_max_nesting_levels_and_refuses_one_more(deeper: Any) -> None:
    assert decode_json(deeper(MAX_NESTING)) is not None
    with pytest.raises(TooDeepError, match=f"more than {MAX_NESTING} levels deep"):
        decode_json(deeper(MAX_NESTING + 1))


@pytest.mark.parametrize("depth", [1_025, 100_000], ids=["past-orjson", "past-the-stack"])
def test_decode_json_refuses_json_deeper_than_its_decoders_reach_with_the_same_error(
    depth: int,
) -> None:
    with pytest.raises(TooDeepError):
        decode_json(brackets(depth))


def test_nesting_is_measured_by_levels_not_by_brackets() -> None:
    shallow = [{**EXAMPLE_ROW, "note": "[{" * MAX_NESTING, "id": [[1], [2], [3]]}] * 200
    assert decode_json(json.dumps({"inputs": shallow}).encode())["inputs"] == shallow
    deep = brackets(MAX_NESTING - 2, "1")  # 3 levels more in a row in {"inputs": [...]}
    body = json.dumps({"inputs": [EXAMPLE_ROW] * 200 + [{"note": "NOTE"}]})
    with pytest.raises(TooDeepError):
        decode_json(body.replace('"NOTE"', deep).encode())


def test_the_readme_states_the_nesting_limit() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"more than {MAX_NESTING} levels deep (`MAX_NESTING`" in " ".join(readme.split())
