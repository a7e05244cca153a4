"""Request and response bodies, as the OpenAPI schema shows them."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from census_salary.row_schema import SCHEMA_EXAMPLE_ROW, CensusRow


class PredictRequest(BaseModel):
    """Rows to score. A bare JSON array of rows is accepted too."""

    inputs: list[CensusRow] = Field(  # type: ignore[valid-type]
        min_length=1, description="Census rows; field names with hyphens or underscores."
    )

    model_config = {
        "extra": "forbid",  # {"inputs": [...]} and no other key, as census predict reads it
        "json_schema_extra": {"examples": [{"inputs": [SCHEMA_EXAMPLE_ROW]}]},
    }


class PredictionResponse(BaseModel):
    """Predictions in input order: N rows in, N out, duplicates included."""

    predictions: list[str] = Field(description="Predicted label per row: '>50K' or '<=50K'.")
    probabilities: list[float] = Field(description="P(>50K) per row.")
    warnings: list[list[str]] = Field(
        description="Per row: fields whose value the model never saw (scored as missing)."
    )
    model_version: str
    threshold: float
    model_lib_version: str
    timestamp: str
    contributions: list[dict[str, float]] | None = Field(
        None,
        description="With `explain=true`, per row: each feature's contribution to the "
        "log-odds of >50K (SHAP values; unused features 0).",
    )
    base_value: float | None = Field(
        None,
        description="With `explain=true`: the log-odds the model expects knowing nothing; "
        "plus a row's contributions, its log-odds (the logit of its probability).",
    )


class PredictionBody(TypedDict):
    """`PredictionResponse` as the route builds it (typed for the checker, not validated)."""

    predictions: list[str]
    probabilities: list[float]
    warnings: list[list[str]]
    model_version: str
    threshold: float
    model_lib_version: str
    timestamp: str
    contributions: NotRequired[list[dict[str, float]]]
    base_value: NotRequired[float]


class HealthResponse(BaseModel):
    status: str
    name: str
    api_version: str
    package_version: str
    model_lib_version: str
    model_version: str | None = Field(description="The loaded model's version, if any.")


class ReadyResponse(BaseModel):
    status: str
    model_version: str


class ProblemError(BaseModel):
    """One invalid value: the row (for rows) and the field it is in."""

    model_config = ConfigDict(extra="forbid")

    index: int | None = Field(None, description="The row's index in the request, from 0.")
    field: str | None = Field(description="The field, or null when the whole row is wrong.")
    message: str = Field(description="What is wrong and what was expected.")


class ProblemDocument(BaseModel):
    """An error, as an RFC 9457 problem document (`application/problem+json`)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Always `about:blank`: the status says what kind.")
    title: str = Field(description="The HTTP status phrase.")
    status: int
    detail: str = Field(description="What went wrong and what to do about it.")
    instance: str | None = Field(None, description="The request's path.")
    request_id: str | None = Field(None, description="Also the X-Request-ID response header.")
    errors: list[ProblemError] | None = Field(None, description="Each invalid value (422).")
