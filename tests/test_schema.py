from typing import Any

import pytest
from pydantic import ValidationError

from census_salary.schema import (
    CATEGORICAL,
    EXAMPLE_ROW,
    NUMERIC_RANGES,
    NUMERICAL,
    CensusRow,
    canonical_name,
)


def test_example_row_is_valid() -> None:
    row = CensusRow.model_validate(EXAMPLE_ROW)
    assert row.education_num == 13


def test_underscored_names_are_accepted() -> None:
    row = CensusRow.model_validate({canonical_name(k): v for k, v in EXAMPLE_ROW.items()})
    assert row.marital_status == "Never-married"


def test_fnlwgt_spelling_is_accepted() -> None:
    data = {k: v for k, v in EXAMPLE_ROW.items() if k != "fnlgt"} | {"fnlwgt": 5}
    assert CensusRow.model_validate(data).fnlgt == 5


@pytest.mark.parametrize("value", ["?", " ? ", ""])
def test_missing_markers_become_none(value: str) -> None:
    assert CensusRow.model_validate({**EXAMPLE_ROW, "workclass": value}).workclass is None


def test_category_values_are_stripped() -> None:
    assert CensusRow.model_validate({**EXAMPLE_ROW, "sex": " Male "}).sex == "Male"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age", -1),
        ("age", 121),
        ("age", 39.5),
        ("age", float("nan")),
        ("age", float("inf")),
        ("age", True),
        ("age", "old"),
        ("hours-per-week", 169),
        ("capital-gain", -5),
        ("education-num", 0),
        ("workclass", 5),
        ("workclass", "x" * 101),
    ],
)
def test_out_of_range_or_wrong_type_is_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        CensusRow.model_validate({**EXAMPLE_ROW, field: value})


def test_missing_field_is_refused() -> None:
    data = {k: v for k, v in EXAMPLE_ROW.items() if k != "age"}
    with pytest.raises(ValidationError, match="age"):
        CensusRow.model_validate(data)


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


def test_numeric_ranges_come_from_the_schema() -> None:
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
