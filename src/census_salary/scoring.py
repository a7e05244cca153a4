"""The one scorer interface, and its implementation over the fitted scikit-learn pipeline.

Every door scores checked columns (`contract.check_columns`) through a `Scorer`:

- `trees.TreeTables`: the exported gradient-boosted trees, numpy alone (the default
  whenever the bundle has `trees.npz`);
- `PipelineScorer`: the pipeline loaded from `model.skops`;
- `remote.RemoteScorer`: a running `census serve`.

The loaded `bundle.Bundle` holds one of them beside the threshold and the vocabularies;
`bundle.load_bundle` is the one place that decides which. A shared test runs every
implementation against the same rows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from census_salary.contract import Columns, distinct, row_count

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


@runtime_checkable
class Scorer(Protocol):
    """P(>50K) for checked rows given as columns (numbers float64, categories str/None)."""

    def probabilities(self, columns: Columns) -> np.ndarray: ...


class PipelineScorer:
    """The fitted pipeline: its `encode` step done with dictionary look-ups, then `model`.

    The look-ups give the matrix scikit-learn's encoder would (a test checks every row of
    the data) at a fraction of the cost.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        encode = pipeline.named_steps["encode"]
        self.estimator = pipeline.named_steps["model"]
        encoder = encode.named_transformers_["categorical"]
        self.categorical: list[str] = list(encode.transformers_[0][2])
        self.numerical: list[str] = list(encode.transformers_[1][2])
        # column -> known value -> its ordinal code (NaN, the missing value, has none)
        self.codes: dict[str, dict[str, float]] = {
            name: {
                value: float(code) for code, value in enumerate(values) if isinstance(value, str)
            }
            for name, values in zip(self.categorical, encoder.categories_, strict=True)
        }

    @property
    def vocabularies(self) -> dict[str, list[str]]:
        return {name: list(codes) for name, codes in self.codes.items()}

    def encode(self, columns: Columns) -> np.ndarray:
        """The matrix scikit-learn's `encode` step would give."""
        n_rows = row_count(columns)
        matrix = np.empty((n_rows, len(self.categorical) + len(self.numerical)))
        for i, (name, codes) in enumerate(self.codes.items()):
            matrix[:, i] = distinct(columns, name).mapped(codes, math.nan)
        for j, name in enumerate(self.numerical, start=len(self.categorical)):
            matrix[:, j] = np.asarray(columns[name], dtype=np.float64)
        return matrix

    def probabilities(self, columns: Columns) -> np.ndarray:
        matrix = self.encode(columns)
        if len(matrix) == 0:
            return np.empty(0)
        return self.estimator.predict_proba(matrix)[:, 1]
