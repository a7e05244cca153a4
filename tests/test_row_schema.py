from typing import Any

import pytest
from pydantic import ValidationError

from census_salary.contract import (
    COLUMN_SPECS,
    EXAMPLE_ROW,
    canonical_name,
    check_records,
)
from census_salary.row_schema import CensusRow, contract_document
from test_contract import NUMBER_ACCEPTED, NUMBER_REFUSED


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


# --- the row model is derived from the declaration ------------------------------------------


@pytest.mark.parametrize("value", [v for v, _ in NUMBER_ACCEPTED] + NUMBER_REFUSED, ids=repr)
def test_row_model_and_bulk_check_agree(value: Any) -> None:
    try:
        CensusRow.model_validate({**EXAMPLE_ROW, "age": value})
        model_accepts = True
    except ValidationError:
        model_accepts = False
    bulk_accepts = not check_records([{**EXAMPLE_ROW, "age": value}]).problems
    assert bulk_accepts == model_accepts, value


def test_row_model_schema_states_every_limit() -> None:
    properties = CensusRow.model_json_schema()["properties"]
    for spec in COLUMN_SPECS:
        schema = properties[spec.name]
        if spec.kind == "number":
            assert (schema["type"], schema["minimum"], schema["maximum"]) == (
                "integer",
                spec.low,
                spec.high,
            )
        else:
            assert {"type": "string", "maxLength": 100} in schema["anyOf"]
        assert schema["examples"] == [spec.example]


@pytest.mark.parametrize(
    ("field", "given", "read"),
    [
        ("age", 39.0, 39),
        ("age", "39", 39),
        ("age", " +39 ", 39),
        ("sex", "  Male  ", "Male"),
        ("sex", " " * 10 + "x" * 100, "x" * 100),
        ("sex", "", None),
        ("sex", "?", None),
    ],
)
def test_what_the_schema_says_is_also_read_is_read(field: str, given: Any, read: Any) -> None:
    """The forms `ColumnSpec.leniency` names (in the schema's descriptions) are read."""
    assert getattr(CensusRow.model_validate({**EXAMPLE_ROW, field: given}), field) == read


def test_contract_document_lists_every_column_with_its_limits() -> None:
    document = {column["name"]: column for column in contract_document()}
    assert list(document) == [spec.name for spec in COLUMN_SPECS]
    assert (document["age"]["minimum"], document["age"]["maximum"]) == (0, 120)
    assert document["fnlgt"]["aliases"] == ["fnlwgt"]
    assert document["sex"]["kind"] == "category"


# --- checking many rows -------------------------------------------------------------------
