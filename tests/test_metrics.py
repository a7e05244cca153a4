import numpy as np
import pandas as pd
import pytest

from census_salary.config import FairnessSettings, SliceSettings
from census_salary.errors import InputError
from census_salary.metrics import (
    INTERVALS,
    SliceReport,
    average_precision,
    evaluate,
    roc_auc,
    slice_metrics,
)


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


@pytest.mark.parametrize("rows", [2, 7, 600, 6508])
def test_roc_auc_is_scikit_learn_s_with_ties(rows: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(rows)
    y = np.r_[0, 1, rng.integers(0, 2, rows - 2)]
    p = np.round(rng.random(rows), 2)  # many ties, some across the classes
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


@pytest.mark.parametrize("rows", [2, 7, 600, 6508])
def test_average_precision_is_scikit_learn_s_with_ties(rows: int) -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(rows)
    y = np.r_[0, 1, rng.integers(0, 2, rows - 2)]
    p = np.round(rng.random(rows), 2)
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_roc_auc_of_one_class_is_none() -> None:
    assert roc_auc(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9])) is None


@pytest.mark.parametrize(
    ("p", "says"),
    [
        ([0.2, 0.7], "one probability per label: 2 for 3"),
        ([0.2, float("nan"), 0.9], "must be numbers"),
        ([0.2, float("inf"), 0.9], "must be numbers"),
    ],
)
def test_curves_refuse_probabilities_that_do_not_fit_the_labels(p: list[float], says: str) -> None:
    with pytest.raises(InputError, match=says):
        roc_auc(np.array([0, 1, 1]), np.array(p))


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


def options(min_rows: int = 1, **more: float) -> SliceSettings:
    return SliceSettings(min_rows=min_rows, bootstrap=0, **more)


def test_every_category_is_a_slice_and_missing_is_its_own() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex"], options())
    assert [(s.value, s.rows) for s in report.slices] == [("?", 1), ("Female", 4), ("Male", 6)]


def test_numerical_columns_are_cut_into_quantile_bins() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["age"], options(bins=2))
    assert [(s.value, s.rows) for s in report.slices] == [("<= 45", 6), ("> 45", 5)]
    assert report.bins == 2


def test_a_cross_slice_combines_the_groups_of_its_features() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, [("sex", "age")], options(bins=2))
    assert [(s.feature, s.value, s.rows) for s in report.slices][:2] == [
        ("sex & age", "? & > 45", 1),
        ("sex & age", "Female & <= 45", 3),
    ]


def test_small_slices_are_marked_not_dropped() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex"], options(min_rows=5))
    small = {s.value: s.too_small for s in report.slices}
    assert small == {"?": True, "Female": True, "Male": False}
    assert report.slices[0].f1 is None


def test_the_whole_is_never_too_small() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex"], options(min_rows=50))
    assert not report.overall.too_small
    assert report.overall.f1 == evaluate(y, p, 0.5).f1


def test_slice_rates_and_gap() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex"], options())
    female = next(s for s in report.slices if s.value == "Female")
    # Female: y = 1 0 0 1, predicted = 0 0 0 1 -> precision 1, recall 0.5, F1 2/3.
    assert (female.precision, female.recall) == (1.0, 0.5)
    assert female.f1 == pytest.approx(2 / 3)
    assert female.false_negative_rate == 0.5
    assert female.false_positive_rate == 0.0
    assert female.f1_gap == pytest.approx(female.f1 - report.overall.f1)


def test_worst_f1_gap_ignores_small_slices() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["sex", "age"], options(min_rows=3))
    worst = report.worst_f1_gap()
    assert worst is not None
    assert not worst.too_small
    judged = [s for s in report.slices if not s.too_small and not s.too_uncertain]
    assert all((s.f1_gap or 0) >= (worst.f1_gap or 0) for s in judged)


def test_a_slice_with_few_rows_earning_more_is_too_uncertain_whatever_its_interval() -> None:
    """Over 40 copies, Female has 80 rows earning >50K and Male 120: with min_rows between
    the two, Female's F1 is not ranked, with or without a bootstrap."""
    for bootstrap in (0, 200):
        settings = SliceSettings(min_rows=100, bootstrap=bootstrap, max_f1_width=1.0)
        report = slice_metrics(*big_frame(), 0.5, ["sex"], settings)
        uncertain = {s.value for s in report.slices if s.too_uncertain}
        assert uncertain == {"Female"}, bootstrap
        assert [s.value for s in report.ranked()] == ["Male"]


def big_frame(copies: int = 40) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    x, y, p = frame()
    return pd.concat([x] * copies), np.tile(y, copies), np.tile(p, copies)


def test_without_a_bootstrap_there_are_no_intervals() -> None:
    report = slice_metrics(*big_frame(), 0.5, ["sex"], options())
    assert report.bootstrap == 0
    assert all(not s.intervals and not s.too_uncertain for s in report.slices)


def test_a_bootstrap_gives_each_rate_an_interval_around_its_value() -> None:
    settings = SliceSettings(min_rows=1, bootstrap=200, seed=1)
    report = slice_metrics(*big_frame(), 0.5, ["sex"], settings)
    male = next(s for s in report.slices if s.value == "Male")
    assert set(male.intervals) == set(INTERVALS)
    for name, interval in male.intervals.items():
        assert interval.low <= getattr(male, name) <= interval.high, name
    assert "f1_gap" not in report.overall.intervals
    assert (report.bootstrap, report.seed) == (200, 1)


def test_a_wide_f1_interval_is_too_uncertain_and_not_ranked() -> None:
    """Female has 80 rows (2 of 4 earning >50K found) against Male's 240: with a width limit
    between their F1 intervals' widths, Female is too uncertain to rank."""
    report = slice_metrics(*big_frame(20), 0.5, ["sex"], SliceSettings(min_rows=1))
    widths = {s.value: s.intervals["f1"].width for s in report.slices if "f1" in s.intervals}
    limit = (widths["Female"] + widths["Male"]) / 2
    assert widths["Female"] > limit > widths["Male"]
    judged = slice_metrics(
        *big_frame(20), 0.5, ["sex"], SliceSettings(min_rows=1, max_f1_width=limit)
    )
    uncertain = {s.value for s in judged.slices if s.too_uncertain}
    assert uncertain == {"Female"}
    assert "Female" not in {s.value for s in judged.ranked()}


def test_the_same_seed_gives_the_same_report() -> None:
    settings = SliceSettings(min_rows=1, bootstrap=50)
    fairness = FairnessSettings(sensitive=["sex"])
    first = slice_metrics(*big_frame(), 0.5, ["sex", "age"], settings, fairness)
    again = slice_metrics(*big_frame(), 0.5, ["sex", "age"], settings, fairness)
    assert first == again


def test_the_fairness_summary_comes_with_the_report() -> None:
    x, y, p = big_frame()
    report = slice_metrics(x, y, p, 0.5, ["age"], options(), FairnessSettings(sensitive=["sex"]))
    assert report.fairness is not None
    assert [f.feature for f in report.fairness.features] == ["sex"]
    assert slice_metrics(x, y, p, 0.5, ["age"], options()).fairness is None


def test_the_fairness_gate_needs_sensitive_features() -> None:
    x, y, p = frame()
    report = slice_metrics(x, y, p, 0.5, ["age"], options(), FairnessSettings(sensitive=[]))
    with pytest.raises(InputError, match=r"\[fairness\] sensitive"):
        report.check_fairness()


def test_a_report_written_before_intervals_still_reads() -> None:
    old = {
        "overall": {"feature": "(all)", "value": "(all)", "rows": 10, "too_small": False},
        "slices": [{"feature": "sex", "value": "Male", "rows": 6, "too_small": False, "f1": 0.5}],
        "min_rows": 5,
        "threshold": 0.4,
    }
    report = SliceReport.model_validate(old)
    assert (report.bootstrap, report.bins, report.fairness) == (0, None, None)
    assert report.slices[0].intervals == {}
    assert not report.slices[0].too_uncertain
