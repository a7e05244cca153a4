"""The row contract: one pydantic model for an input row, shared by training, CLI and API,
and the two labels a row gets.

Field names are snake_case; the published hyphenated names (`education-num`) and the
other spellings of the same data (`fnlwgt`) are accepted as aliases. Bulk data is
checked column by column against the same constraints (see `data.check_frame`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Container, Mapping
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Le
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

POSITIVE, NEGATIVE = ">50K", "<=50K"
MISSING_MARKERS = frozenset({"", "?"})
MAX_CATEGORY_LENGTH = 100
MAX_MONEY = 1_000_000_000  # US$; far above the data's top-coded 99,999, and finite


def _blank_to_none(value: Any) -> Any:
    """Census files write a missing category as `?` and pad values with spaces."""
    if isinstance(value, str):
        value = value.strip()
        return None if value in MISSING_MARKERS else value
    return value


def _plain_number(value: Any) -> Any:
    """Refuse what int() would quietly accept: true/false, NaN and infinity."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Category = Annotated[
    Annotated[str, Field(max_length=MAX_CATEGORY_LENGTH)] | None,
    BeforeValidator(_blank_to_none),
]
Count = Annotated[int, BeforeValidator(_plain_number), Field(ge=0)]


def _alias(name: str, *more: str) -> AliasChoices:
    return AliasChoices(name, name.replace("_", "-"), *more)


EXAMPLE_ROW: dict[str, Any] = {
    "age": 39,
    "workclass": "State-gov",
    "fnlgt": 77516,
    "education": "Bachelors",
    "education-num": 13,
    "marital-status": "Never-married",
    "occupation": "Adm-clerical",
    "relationship": "Not-in-family",
    "race": "White",
    "sex": "Male",
    "capital-gain": 2174,
    "capital-loss": 0,
    "hours-per-week": 40,
    "native-country": "United-States",
}


class CensusRow(BaseModel):
    """One person: the 14 attributes of the census data (without the salary label)."""

    model_config = ConfigDict(
        extra="ignore",  # a caller's id column or the label column passes through
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        json_schema_extra={"examples": [EXAMPLE_ROW]},
    )

    age: Count = Field(le=120, validation_alias=_alias("age"))
    workclass: Category = Field(validation_alias=_alias("workclass"))
    fnlgt: Count = Field(le=100_000_000, validation_alias=_alias("fnlgt", "fnlwgt"))
    education: Category = Field(validation_alias=_alias("education"))
    education_num: Count = Field(ge=1, le=16, validation_alias=_alias("education_num"))
    marital_status: Category = Field(validation_alias=_alias("marital_status"))
    occupation: Category = Field(validation_alias=_alias("occupation"))
    relationship: Category = Field(validation_alias=_alias("relationship"))
    race: Category = Field(validation_alias=_alias("race"))
    sex: Category = Field(validation_alias=_alias("sex"))
    capital_gain: Count = Field(le=MAX_MONEY, validation_alias=_alias("capital_gain"))
    capital_loss: Count = Field(le=MAX_MONEY, validation_alias=_alias("capital_loss"))
    hours_per_week: Count = Field(le=168, validation_alias=_alias("hours_per_week"))
    native_country: Category = Field(validation_alias=_alias("native_country"))


COLUMNS: list[str] = list(CensusRow.model_fields)
CATEGORICAL: list[str] = [
    name for name, field in CensusRow.model_fields.items() if field.annotation is not int
]
NUMERICAL: list[str] = [name for name in COLUMNS if name not in CATEGORICAL]
# (low, high) for each numerical column, read from the model so there is one source.
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    name: (
        max(m.ge for m in CensusRow.model_fields[name].metadata if isinstance(m, Ge)),
        min(
            (m.le for m in CensusRow.model_fields[name].metadata if isinstance(m, Le)),
            default=math.inf,
        ),
    )
    for name in NUMERICAL
}
# Other published spellings of a column, after lower-casing and `-` -> `_`.
COLUMN_ALIASES = {"fnlwgt": "fnlgt", "income": "salary", "class": "salary"}


@functools.cache
def canonical_name(name: str) -> str:
    """`" education-num"` -> `"education_num"`; `fnlwgt` -> `fnlgt`; other names kept."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    return COLUMN_ALIASES.get(key, key)


def expected(name: str) -> str:
    """What a column must hold, in words, for error messages."""
    if name in NUMERIC_RANGES:
        low, high = NUMERIC_RANGES[name]
        return f"a whole number >= {low:,.0f}" + (
            "" if math.isinf(high) else f" and <= {high:,.0f}"
        )
    return f"a text value of at most {MAX_CATEGORY_LENGTH} characters, or ? when unknown"


def labels_at(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """'>50K' where P(>50K) reaches the threshold, '<=50K' elsewhere."""
    return np.where(probabilities >= threshold, POSITIVE, NEGATIVE)


def unknown_categories(row: CensusRow, known: Mapping[str, Container[str]]) -> list[str]:
    """Fields of `row` whose value is not among the `known` ones (a model scores it as missing)."""
    return [
        name
        for name, values in known.items()
        if (value := getattr(row, name)) is not None and value not in values
    ]
