import numpy as np
import pandas as pd
import pytest

from census_salary.metrics import evaluate, slice_metrics


def test_evaluate_counts_the_confusion_matrix() -> None:
    m = evaluate(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.7, 0.1]), threshold=0.5)
    c = m.confusion
    assert (c.true_positive, c.false_negative, c.false_positive, c.true_negative) == (1, 1, 1, 1)
    assert (m.accuracy, m.precision, m.recall, m.f1) == (0.5, 0.5, 0.5, 0.5)
    assert m.roc_auc == pytest.approx(0.75)


def test_undefined_rates_are_none_not_zero() -> None:
    m = evaluate(np.array([0, 0]), np.array([0.1, 0.2]), threshold=0.5)
    assert m.precision is None
    assert m.recall is None
    assert m.roc_auc is None


def frame() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    x = pd.DataFrame(
        {
            "sex": ["Male"] * 6 + ["Female"] * 4 + [np.nan],
            "age": [20, 30, 40, 50, 60, 70, 25, 35, 45, 55, 65],
        }
    )
    y = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.1, 0.6, 0.7, 0.2, 0.1, 0.2, 0.3, 0.9, 0.4])
    return x, y, p


def test_every_category_is_a_slice_and_missing_is_its_own() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex"], min_rows=1)
    assert [(s.value, s.rows) for s in report.slices] == [("?", 1), ("Female", 4), ("Male", 6)]


def test_numerical_columns_split_at_the_median() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["age"], min_rows=1)
    assert [(s.value, s.rows) for s in report.slices] == [("< 45", 5), (">= 45", 6)]


def test_small_slices_are_marked_not_dropped() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex"], min_rows=5)
    small = {s.value: s.too_small for s in report.slices}
    assert small == {"?": True, "Female": True, "Male": False}
    assert report.slices[0].f1 is None


def test_slice_rates_and_gap() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex"], min_rows=1)
    female = next(s for s in report.slices if s.value == "Female")
    # Female: y = 1 0 0 1, predicted = 0 0 0 1 -> precision 1, recall 0.5, F1 2/3.
    assert (female.precision, female.recall) == (1.0, 0.5)
    assert female.f1 == pytest.approx(2 / 3)
    assert female.false_negative_rate == 0.5
    assert female.false_positive_rate == 0.0
    assert female.f1_gap == pytest.approx(female.f1 - report.overall.f1)


def test_worst_f1_gap_ignores_small_slices() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex", "age"], min_rows=3)
    worst = report.worst_f1_gap()
    assert worst is not None
    assert not worst.too_small
    assert all((s.f1_gap or 0) >= (worst.f1_gap or 0) for s in report.slices)
