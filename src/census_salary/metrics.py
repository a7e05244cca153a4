"""Evaluation metrics and slice metrics (performance on each slice of the data).

The result models are read by `census serve` with a model's metadata, so this module
imports scikit-learn only where it computes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from census_salary.contract import NUMERICAL
from census_salary.errors import GateError

if TYPE_CHECKING:
    import pandas as pd


class ConfusionMatrix(BaseModel):
    true_negative: int
    false_positive: int
    false_negative: int
    true_positive: int


class Metrics(BaseModel):
    """How well the model separates >50K from <=50K on one set of labelled rows."""

    rows: int
    threshold: float
    accuracy: float
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    pr_auc: float | None
    brier: float
    positive_rate: float
    selection_rate: float
    confusion: ConfusionMatrix


def _ratio(numerator: int, denominator: int) -> float | None:
    """None where the rate is undefined (nothing to divide by), never a silent 0."""
    return numerator / denominator if denominator else None


def _counts(y_true: np.ndarray, y_pred: np.ndarray) -> ConfusionMatrix:
    return ConfusionMatrix(
        true_negative=int(np.sum(~y_true & ~y_pred)),
        false_positive=int(np.sum(~y_true & y_pred)),
        false_negative=int(np.sum(y_true & ~y_pred)),
        true_positive=int(np.sum(y_true & y_pred)),
    )


def _f1(c: ConfusionMatrix) -> float | None:
    return _ratio(2 * c.true_positive, 2 * c.true_positive + c.false_positive + c.false_negative)


def evaluate(y_true: np.ndarray, probabilities: np.ndarray, threshold: float) -> Metrics:
    """Metrics of probabilities against 0/1 labels at a decision threshold."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.asarray(y_true).astype(bool)
    p = np.asarray(probabilities, dtype=float)
    c = _counts(y, p >= threshold)
    both_classes = 0 < y.sum() < len(y)
    return Metrics(
        rows=len(y),
        threshold=threshold,
        accuracy=(c.true_positive + c.true_negative) / len(y) if len(y) else math.nan,
        precision=_ratio(c.true_positive, c.true_positive + c.false_positive),
        recall=_ratio(c.true_positive, c.true_positive + c.false_negative),
        f1=_f1(c),
        roc_auc=float(roc_auc_score(y, p)) if both_classes else None,
        pr_auc=float(average_precision_score(y, p)) if both_classes else None,
        brier=float(brier_score_loss(y, p)) if len(y) else math.nan,
        positive_rate=float(y.mean()) if len(y) else math.nan,
        selection_rate=float((p >= threshold).mean()) if len(y) else math.nan,
        confusion=c,
    )


class SliceMetrics(BaseModel):
    """Metrics on one slice; the rates are None when the slice is too small or undefined."""

    feature: str
    value: str
    rows: int
    too_small: bool
    positive_rate: float | None = None
    selection_rate: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    false_positive_rate: float | None = None
    false_negative_rate: float | None = None
    f1_gap: float | None = None  # slice F1 minus overall F1
    precision_gap: float | None = None
    recall_gap: float | None = None
    selection_rate_gap: float | None = None


class SliceReport(BaseModel):
    overall: SliceMetrics
    slices: list[SliceMetrics]
    min_rows: int
    threshold: float

    def check_f1_gap(self, max_gap: float) -> None:
        """Raise GateError when a sized slice's F1 is more than `max_gap` below the whole's."""
        worst = self.worst_f1_gap()
        if worst is not None and worst.f1_gap is not None and worst.f1_gap < -max_gap:
            raise GateError(
                f"Slice {worst.feature} = {worst.value} has F1 {worst.f1:.3f}, "
                f"{-worst.f1_gap:.3f} below the overall {self.overall.f1:.3f} "
                f"(allowed: {max_gap})."
            )

    def worst_f1_gap(self) -> SliceMetrics | None:
        """The sized slice whose F1 falls furthest below the overall F1."""
        gaps = [s for s in self.slices if s.f1_gap is not None]
        return min(gaps, key=lambda s: s.f1_gap or 0.0, default=None)


def _slice(
    feature: str, value: str, y: np.ndarray, pred: np.ndarray, min_rows: int
) -> SliceMetrics:
    rows = len(y)
    if rows < min_rows:
        return SliceMetrics(feature=feature, value=value, rows=rows, too_small=True)
    c = _counts(y, pred)
    return SliceMetrics(
        feature=feature,
        value=value,
        rows=rows,
        too_small=False,
        positive_rate=float(y.mean()),
        selection_rate=float(pred.mean()),
        precision=_ratio(c.true_positive, c.true_positive + c.false_positive),
        recall=_ratio(c.true_positive, c.true_positive + c.false_negative),
        f1=_f1(c),
        false_positive_rate=_ratio(c.false_positive, c.false_positive + c.true_negative),
        false_negative_rate=_ratio(c.false_negative, c.false_negative + c.true_positive),
    )


def _gap(value: float | None, overall: float | None) -> float | None:
    return None if value is None or overall is None else value - overall


def slice_metrics(
    features: pd.DataFrame,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    columns: list[str],
    min_rows: int,
) -> SliceReport:
    """Metrics for each category of each categorical column, and for each numerical
    column below and at-or-above its median; missing categories form their own slice."""
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(probabilities) >= threshold
    overall = _slice("(all)", "(all)", y, pred, 1)
    slices: list[SliceMetrics] = []
    for column in columns:
        values = features[column]
        if column in NUMERICAL:
            median = float(values.median())
            below = (values < median).to_numpy()
            groups = [(f"< {median:g}", below), (f">= {median:g}", ~below)]
        else:
            labels = values.fillna("?").astype(str).to_numpy()
            groups = [(value, labels == value) for value in sorted(set(labels))]
        for value, mask in groups:
            part = _slice(column, value, y[mask], pred[mask], min_rows)
            if not part.too_small:
                part = part.model_copy(
                    update={
                        "f1_gap": _gap(part.f1, overall.f1),
                        "precision_gap": _gap(part.precision, overall.precision),
                        "recall_gap": _gap(part.recall, overall.recall),
                        "selection_rate_gap": _gap(part.selection_rate, overall.selection_rate),
                    }
                )
            slices.append(part)
    return SliceReport(overall=overall, slices=slices, min_rows=min_rows, threshold=threshold)
