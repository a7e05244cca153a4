"""Permutation feature importance: how much worse the model scores when a column is shuffled.

For each column, its values are shuffled across the rows (breaking its link to the label
while keeping its distribution), the rows are scored again through the model's one scorer
(`Bundle.probabilities`, the same as every door), and the drop in ROC AUC and in F1 at
the decision threshold is recorded. Each column is shuffled `repeats` times; the result
gives the mean and standard deviation of the drops. A column the model does not read
drops by exactly 0.

The shuffles come from a numpy Generator seeded with `seed` and the column's position in
the contract, so the same rows, model and seed give the same numbers, whichever columns
are asked for. scikit-learn is imported only to compute ROC AUC, as `metrics` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from census_salary.contract import COLUMNS, ColumnTable
from census_salary.errors import InputError
from census_salary.metrics import both_classes, confusion, rate, roc_auc

ProbabilityFunction = Callable[[Mapping[str, Any]], np.ndarray]


class ColumnImportance(BaseModel):
    """The drops in ROC AUC and F1 when one column is shuffled (positive: the model needs it)."""

    feature: str
    roc_auc_drop: float  # mean over the shuffles
    roc_auc_drop_std: float
    f1_drop: float
    f1_drop_std: float


class ImportanceReport(BaseModel):
    """Permutation importance of every column on one set of labelled rows."""

    rows: int
    repeats: int
    seed: int
    threshold: float
    roc_auc: float  # before any shuffle
    f1: float
    columns: list[ColumnImportance]  # the largest ROC AUC drop first; ties in contract order

    def of(self, feature: str) -> ColumnImportance:
        """The importance of one column, by its canonical name."""
        for column in self.columns:
            if column.feature == feature:
                return column
        raise InputError(f"No importance for {feature!r}; computed for {', '.join(self.features)}.")

    @property
    def features(self) -> list[str]:
        return [column.feature for column in self.columns]


def _f1(y: np.ndarray, predicted: np.ndarray) -> float:
    # Rows of both classes are required, so 2 TP + FP + FN >= the positives > 0: defined.
    return rate(confusion(y, predicted), "f1") or 0.0


def permutation_importance(
    probabilities: ProbabilityFunction,
    columns: Mapping[str, Any],
    y_true: np.ndarray,
    threshold: float,
    *,
    repeats: int = 5,
    seed: int = 0,
    features: Sequence[str] | None = None,
) -> ImportanceReport:
    """Permutation importance of `features` (default: the 14 contract columns).

    `probabilities` scores checked columns (`bundle.probabilities`); `columns` are the
    rows as checked columns (`contract.check_columns(...).columns`); `y_true` their 0/1
    labels, with both classes present.
    """
    chosen = list(COLUMNS if features is None else features)
    unknown = [name for name in chosen if name not in COLUMNS]
    absent = [name for name in chosen if name in COLUMNS and name not in columns]
    if unknown or absent:
        raise InputError(
            f"Cannot shuffle column(s) {', '.join(unknown + absent)}: "
            f"choose from the rows' census columns ({', '.join(COLUMNS)})."
        )
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, not {repeats}.")
    if seed < 0:
        raise InputError(f"seed must be a whole number of 0 or more, not {seed}.")
    y = np.asarray(y_true).astype(bool)
    rows = len(y)
    # Categories as the check keeps them (`DistinctColumn`): a shuffle moves their codes,
    # and every score looks up each distinct value once, not each row.
    kept = columns.kept if isinstance(columns, ColumnTable) else lambda n: np.asarray(columns[n])
    data = ColumnTable({name: kept(name) for name in COLUMNS if name in columns})
    if any(len(data.kept(name)) != rows for name in data):
        raise InputError(f"Every column must hold one value for each of the {rows} labels.")
    if not both_classes(y):
        raise InputError(
            "Permutation importance needs labelled rows of both classes (>50K and <=50K); "
            "these hold only one."
        )

    def score(scored: Mapping[str, Any]) -> tuple[float, float]:
        p = np.asarray(probabilities(scored), dtype=float)
        auc = roc_auc(y, p)
        assert auc is not None  # rows of both classes, checked above
        return auc, _f1(y, p >= threshold)

    base_auc, base_f1 = score(data)
    results: list[ColumnImportance] = []
    for name in chosen:
        rng = np.random.default_rng([seed, COLUMNS.index(name)])
        drops = np.empty((repeats, 2))
        for i in range(repeats):
            auc, f1 = score(data.with_rows_of(name, rng.permutation(rows)))
            drops[i] = (base_auc - auc, base_f1 - f1)
        mean, std = drops.mean(axis=0), drops.std(axis=0)
        results.append(
            ColumnImportance(
                feature=name,
                roc_auc_drop=float(mean[0]),
                roc_auc_drop_std=float(std[0]),
                f1_drop=float(mean[1]),
                f1_drop_std=float(std[1]),
            )
        )
    results.sort(key=lambda column: -column.roc_auc_drop)  # stable: ties keep contract order
    return ImportanceReport(
        rows=rows,
        repeats=repeats,
        seed=seed,
        threshold=threshold,
        roc_auc=base_auc,
        f1=base_f1,
        columns=results,
    )
