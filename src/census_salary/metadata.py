"""What a bundle and the run history record, as typed models: the only shape they have.

`bundle` reads and writes them (`metadata.json`, `runs.jsonl`); every other module reads
their attributes, never string keys. Unknown keys are refused on load, and
`schema_version` changes whenever a field does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from census_salary.config import ModelKind, ParamValue, TrainingConfig
from census_salary.metrics import Metrics

SCHEMA_VERSION = 3  # 3: profile_sha256 (bundles of version 2 load, without a profile)
# A probability or a rate: a number from 0 to 1 (not NaN), as a threshold, a self-test's
# probability and a run's metrics must be, whatever a hand-edited file says.
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
# A model's version, as `bundle.new_version` makes it and its folder is named: the time it
# was trained and the start of its model file's SHA-256 (`20261127T120301Z-3f2a9c1b`).
VERSION_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataInfo(_Record):
    path: str
    sha256: str
    rows_read: int
    duplicates_dropped: int
    rows_train: int
    rows_test: int


class FeatureSchema(_Record):
    categorical: dict[str, list[str]]  # column -> vocabulary seen in training
    numerical: dict[str, tuple[float, float]]  # column -> (min, max) seen in training


class SelfTest(_Record):
    """A stored row and the probability the model gave it, replayed on load."""

    row: dict[str, Any]
    probability: Fraction


class BundleMetadata(_Record):
    schema_version: Literal[2, 3] = SCHEMA_VERSION
    version: Version
    created_at: datetime
    package_version: str
    library_versions: dict[str, str]
    model_kind: ModelKind
    model_sha256: str
    trees_sha256: str | None = None  # None: no trees.npz, score with the pipeline
    profile_sha256: str | None = None  # None: no profile.json, so no drift reference
    data: DataInfo
    config: TrainingConfig
    features: FeatureSchema
    threshold: Fraction
    threshold_objective: str
    best_params: dict[str, ParamValue] = {}
    metrics: Metrics
    self_test: SelfTest

    @model_validator(mode="after")
    def _profile_of_schema_3(self) -> BundleMetadata:
        if self.schema_version >= 3 and self.profile_sha256 is None:
            raise ValueError(
                "profile_sha256 is missing: every bundle of schema 3 has a drift profile"
            )
        return self

    @property
    def params(self) -> dict[str, ParamValue]:
        """The configured hyperparameters of this model's kind."""
        return dict(self.config.model.params.get(self.model_kind, {}))


class RunMetrics(_Record):
    accuracy: Fraction
    f1: Fraction | None
    roc_auc: Fraction | None
    pr_auc: Fraction | None


class RunRecord(_Record):
    """One line of `runs.jsonl`: one training run."""

    version: Version
    created_at: datetime
    model_kind: ModelKind
    params: dict[str, ParamValue]
    best_params: dict[str, ParamValue]
    threshold: Fraction
    data_sha256: str
    metrics: RunMetrics

    @classmethod
    def of(cls, metadata: BundleMetadata) -> RunRecord:
        m = metadata.metrics
        return cls(
            version=metadata.version,
            created_at=metadata.created_at,
            model_kind=metadata.model_kind,
            params=metadata.params,
            best_params=metadata.best_params,
            threshold=metadata.threshold,
            data_sha256=metadata.data.sha256,
            metrics=RunMetrics(accuracy=m.accuracy, f1=m.f1, roc_auc=m.roc_auc, pr_auc=m.pr_auc),
        )
