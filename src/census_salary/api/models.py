"""Request and response bodies, as the OpenAPI schema shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from census_salary.contract import EXAMPLE_ROW
from census_salary.row_schema import CensusRow


class PredictRequest(BaseModel):
    """Rows to score. A bare JSON array of rows is accepted too."""

    inputs: list[CensusRow] = Field(  # type: ignore[valid-type]
        min_length=1, description="Census rows; field names with hyphens or underscores."
    )

    model_config = {"json_schema_extra": {"examples": [{"inputs": [EXAMPLE_ROW]}]}}


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
