"""What derives from the row contract for the outside world: the pydantic row model
`CensusRow` (the API's request schema, with its OpenAPI limits and example) and the
column document that `/metadata` and the form page show (`contract_document`).

Both are built from `contract.COLUMN_SPECS` and validate through `contract.parse_value`,
so they cannot disagree with the check every door runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic import create_model as _create_model

from census_salary.contract import (
    COLUMN_SPECS,
    INVALID,
    MAX_CATEGORY_LENGTH,
    ColumnSpec,
    parse_value,
    show_value,
)


def _field_type(spec: ColumnSpec) -> Any:
    def validate(value: Any) -> Any:
        parsed = parse_value(value, spec.name)
        if parsed is INVALID:
            raise ValueError(f"got {show_value(value)}; expected {spec.expected}")
        return parsed

    schema: dict[str, Any] = {
        "description": f"{spec.description} {spec.leniency}",
        "examples": [spec.example],
    }
    if spec.kind == "number":
        schema |= {"type": "integer", "minimum": spec.low, "maximum": spec.high}
        return Annotated[int, PlainValidator(validate), WithJsonSchema(schema)]
    schema |= {"anyOf": [{"type": "string", "maxLength": MAX_CATEGORY_LENGTH}, {"type": "null"}]}
    return Annotated[str | None, PlainValidator(validate), WithJsonSchema(schema)]


# The example row of the OpenAPI document, under the names its schema requires (the
# published names, `education-num`, are accepted too, but a schema names one spelling).
SCHEMA_EXAMPLE_ROW: dict[str, Any] = {spec.name: spec.example for spec in COLUMN_SPECS}


class _RowBase(BaseModel):
    model_config = ConfigDict(
        extra="ignore",  # a caller's id column or the label column passes through
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        json_schema_extra={"examples": [SCHEMA_EXAMPLE_ROW]},
    )


CensusRow: type[BaseModel] = _create_model(
    "CensusRow",
    __base__=_RowBase,
    __doc__="One person: the 14 attributes of the census data (without the salary label).",
    **{
        spec.name: (
            _field_type(spec),
            Field(validation_alias=AliasChoices(spec.name, spec.published_name, *spec.aliases)),
        )
        for spec in COLUMN_SPECS
    },
)


def contract_document() -> list[dict[str, Any]]:
    """The columns as `/metadata` and the form page show them."""
    return [
        {
            "name": spec.name,
            "published_name": spec.published_name,
            "aliases": list(spec.aliases),
            "kind": spec.kind,
            "description": spec.description,
            "example": spec.example,
            **(
                {"minimum": spec.low, "maximum": spec.high}
                if spec.kind == "number"
                else {"max_length": MAX_CATEGORY_LENGTH}
            ),
        }
        for spec in COLUMN_SPECS
    ]
