"""Evaluation metrics, and slice metrics (performance on each slice of the data) with
bootstrap intervals and the fairness summary beside them.

The result models are read by `census serve` with a model's metadata, so this module
imports scikit-learn only where it computes, and pandas not at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from pydantic import BaseModel

from census_salary.bootstrap import (
    RATES,
    Interval,
    RateName,
    cells,
    defined,
    group_counts,
    intervals,
)
from census_salary.config import FairnessSettings, SliceSettings
from census_salary.errors import GateError, InputError
from census_salary.fairness import FairnessSummary, summarise
from census_salary.slicing import Group, groups_of

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


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> ConfusionMatrix:
    """The confusion counts of boolean labels against boolean predictions."""
    tn, fp, fn, tp = (int(n) for n in cells(y_true, y_pred).sum(axis=0))
    return ConfusionMatrix(true_negative=tn, false_positive=fp, false_negative=fn, true_positive=tp)


def rate(c: ConfusionMatrix, name: RateName) -> float | None:
    """A rate of `bootstrap.RATES` from confusion counts; None where it is undefined."""
    return _ratio(*RATES[name](c))


def counts_above(
    y_true: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct probability, from the highest down, with the true and the false
    positives among the rows scored at least that: the points of the ROC and the
    precision-recall curves, and the thresholds one can choose (0/1 or boolean labels)."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(probabilities, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise InputError(f"Give one probability per label: {p.size} for {y.size} labels.")
    if not np.isfinite(p).all():
        raise InputError("The probabilities must be numbers; NaN or infinity was given.")
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    true_positives = np.cumsum(y_sorted)[last_of_tie]
    false_positives = (last_of_tie + 1) - true_positives
    return p_sorted[last_of_tie], true_positives, false_positives


def roc_curve(y_true: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates from (0, 0) to (1, 1), a point per distinct
    probability (labels of both classes)."""
    _, tp, fp = counts_above(y_true, probabilities)
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def precision_recall_curve(
    y_true: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each distinct probability, from the highest down (labels of
    both classes)."""
    _, tp, fp = counts_above(y_true, probabilities)
    return tp / (tp + fp), tp / tp[-1]


def both_classes(y_true: np.ndarray) -> bool:
    """Whether 0/1 or boolean labels hold rows of both classes (>50K and <=50K)."""
    y = np.asarray(y_true).astype(bool)
    return 0 < int(y.sum()) < len(y)


def roc_auc(y_true: np.ndarray, probabilities: np.ndarray) -> float | None:
    """The area under the ROC curve, tied probabilities joined by a straight segment (as
    scikit-learn's `roc_auc_score`, to the last digits; a tenth of its time on a few
    thousand rows, which permutation importance pays ~70 times); None without both
    classes."""
    if not both_classes(y_true):
        return None
    fpr, tpr = roc_curve(y_true, probabilities)
    return float(np.trapezoid(tpr, fpr))


def average_precision(y_true: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Precision averaged over the recall each distinct probability adds (as
    scikit-learn's `average_precision_score`); None without both classes."""
    if not both_classes(y_true):
        return None
    precision, recall = precision_recall_curve(y_true, probabilities)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def evaluate(y_true: np.ndarray, probabilities: np.ndarray, threshold: float) -> Metrics:
    """Metrics of probabilities against 0/1 labels at a decision threshold."""
    from sklearn.metrics import brier_score_loss

    y = np.asarray(y_true).astype(bool)
    p = np.asarray(probabilities, dtype=float)
    c = confusion(y, p >= threshold)
    return Metrics(
        rows=len(y),
        threshold=threshold,
        accuracy=(c.true_positive + c.true_negative) / len(y) if len(y) else math.nan,
        precision=rate(c, "precision"),
        recall=rate(c, "recall"),
        f1=rate(c, "f1"),
        roc_auc=roc_auc(y, p),
        pr_auc=average_precision(y, p),
        brier=float(brier_score_loss(y, p)) if len(y) else math.nan,
        positive_rate=float(y.mean()) if len(y) else math.nan,
        selection_rate=float((p >= threshold).mean()) if len(y) else math.nan,
        confusion=c,
    )


IntervalName = Literal[
    "selection_rate",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "false_negative_rate",
    "f1_gap",
]
SLICE_RATES: tuple[RateName, ...] = get_args(RateName)  # every rate, in its order
# Each gap is the slice's rate minus the overall rate.
GAPS: dict[str, RateName] = {
    "f1_gap": "f1",
    "precision_gap": "precision",
    "recall_gap": "recall",
    "selection_rate_gap": "selection_rate",
}
INTERVALS: tuple[IntervalName, ...] = get_args(IntervalName)


class SliceMetrics(BaseModel):
    """Metrics on one slice; the rates are None when the slice is too small or undefined."""

    feature: str  # a feature, or features joined by " & " (a cross-slice)
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
    # 95% bootstrap intervals, where the report has a bootstrap and the rate is defined.
    intervals: dict[IntervalName, Interval] = {}
    # Shown, but not ranked: fewer than the report's min_rows of its rows earn >50K (its
    # F1 rests on those), or its F1 interval is wider than the report's max_f1_width.
    too_uncertain: bool = False


class SliceReport(BaseModel):
    """Slice metrics of labelled rows; fields after `threshold` are absent (defaulted) in
    reports written before intervals and fairness."""

    overall: SliceMetrics
    slices: list[SliceMetrics]
    min_rows: int
    threshold: float
    bins: int | None = None  # quantile bins per numerical feature; None: split at the median
    bootstrap: int = 0  # resamples behind the intervals; 0: no intervals
    seed: int | None = None  # of the resamples
    max_f1_width: float | None = None
    fairness: FairnessSummary | None = None

    def check_f1_gap(self, max_gap: float) -> None:
        """Raise GateError when a ranked slice's F1 is more than `max_gap` below the whole's."""
        worst = self.worst_f1_gap()
        if worst is not None and worst.f1_gap is not None and worst.f1_gap < -max_gap:
            raise GateError(
                f"Slice {worst.feature} = {worst.value} has F1 {worst.f1:.3f}, "
                f"{-worst.f1_gap:.3f} below the overall {self.overall.f1:.3f} "
                f"(allowed: {max_gap})."
            )

    def check_fairness(self) -> None:
        """Raise GateError when a fairness measure's interval lies beyond its limit, and
        InputError when the report has no fairness summary to check."""
        if self.fairness is None or not self.fairness.features:
            raise InputError(
                "There is no fairness summary to check: name the sensitive features in "
                'census.toml ([fairness] sensitive = ["sex", "race"]).'
            )
        self.fairness.check()

    def ranked(self) -> list[SliceMetrics]:
        """The slices with an F1 gap, sized and certain enough to judge, worst first."""
        judged = [s for s in self.slices if s.f1_gap is not None and not s.too_uncertain]
        return sorted(judged, key=lambda s: s.f1_gap or 0.0)

    def worst_f1_gap(self) -> SliceMetrics | None:
        """The ranked slice whose F1 falls furthest below the overall F1."""
        return next(iter(self.ranked()), None)


def slice_metrics(
    features: pd.DataFrame,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    slicings: Sequence[str | Sequence[str]],
    settings: SliceSettings,
    fairness: FairnessSettings | None = None,
) -> SliceReport:
    """Metrics for each group of each slicing (a feature, or a sequence of features to
    cross; see `slicing`), with `settings.bootstrap` resamples behind 95% intervals, and the
    fairness summary of `fairness.sensitive` on the same resamples. `settings.features` is
    not read: the caller chooses the slicings."""
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(probabilities) >= threshold
    slices = [group for names in slicings for group in groups_of(features, names, settings.bins)]
    sensitive = [
        (name, groups_of(features, name, settings.bins))
        for name in (fairness.sensitive if fairness is not None else [])
    ]
    groups = [
        Group("(all)", "(all)", np.ones(len(y), dtype=bool)),
        *slices,
        *(group for _, own in sensitive for group in own),
    ]
    counts = group_counts(
        y, pred, np.stack([g.mask for g in groups], axis=1), settings.bootstrap, settings.seed
    )
    shown = 1 + len(slices)  # the columns of `counts` this report shows; then the sensitive
    values = {name: counts.rate(name)[:, :shown] for name in SLICE_RATES}
    values |= {gap: values[rate] - values[rate][:, :1] for gap, rate in GAPS.items()}
    bounds = {name: intervals(values[name]) for name in INTERVALS}
    positives = (counts.true_positive + counts.false_negative)[0]  # of the sample itself
    parts = [
        _slice(
            group,
            {name: v[:, column] for name, v in values.items()},
            bounds,
            column,
            int(positives[column]),
            settings,
        )
        for column, group in enumerate(groups[:shown])
    ]
    return SliceReport(
        overall=parts[0],
        slices=parts[1:],
        min_rows=settings.min_rows,
        threshold=threshold,
        bins=settings.bins,
        bootstrap=settings.bootstrap,
        seed=settings.seed if settings.bootstrap else None,
        max_f1_width=settings.max_f1_width if settings.bootstrap else None,
        fairness=(
            summarise(sensitive, counts.columns(slice(shown, None)), fairness, settings.min_rows)
            if fairness is not None
            else None
        ),
    )


def _slice(
    group: Group,
    values: dict[str, np.ndarray],
    bounds: dict[IntervalName, list[Interval | None]],
    column: int,
    positives: int,
    settings: SliceSettings,
) -> SliceMetrics:
    """One slice (column 0: the whole, which is never too small, and has no gaps) from its
    rates in the sample (element 0) and the resamples; `positives`: its rows earning >50K.

    A slice with a few such rows can score F1 1.0 in every resample: an interval of width
    0 that says nothing. Its F1 is not ranked, as the fairness summary does not compare
    a group's false negative rate on fewer than `min_rows` of them."""
    rows = int(group.mask.sum())
    whole = column == 0
    if rows < settings.min_rows and not whole:
        return SliceMetrics(feature=group.feature, value=group.value, rows=rows, too_small=True)
    shown = [name for name in values if not (whole and name in GAPS)]
    known = {
        name: interval
        for name in INTERVALS
        if name in shown and (interval := bounds[name][column]) is not None
    }
    f1 = defined(values["f1"][0])
    f1_interval = known.get("f1")
    return SliceMetrics(
        feature=group.feature,
        value=group.value,
        rows=rows,
        too_small=False,
        **{name: defined(values[name][0]) for name in shown},
        intervals=known,
        too_uncertain=not whole
        and f1 is not None
        and (
            positives < settings.min_rows
            or (
                settings.bootstrap > 0
                and (f1_interval is None or f1_interval.width > settings.max_f1_width)
            )
        ),
    )
