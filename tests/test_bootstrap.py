import math

import numpy as np
import pytest

from census_salary.bootstrap import Interval, divide, group_counts, intervals


def everyone(rows: int) -> np.ndarray:
    return np.ones((rows, 1), dtype=bool)


def test_a_perfect_predictor_is_perfect_in_every_resample() -> None:
    y = np.array([1, 0] * 50)
    counts = group_counts(y, y, everyone(100), resamples=200, seed=0)
    for name, expected in [("precision", 1), ("recall", 1), ("f1", 1), ("false_positive_rate", 0)]:
        assert intervals(counts.rate(name)) == [Interval(low=expected, high=expected)], name


def test_a_constant_predictor_selects_everyone_in_every_resample() -> None:
    y = np.array([1] * 30 + [0] * 70)
    counts = group_counts(y, np.ones(100), everyone(100), resamples=200, seed=0)
    assert intervals(counts.rate("selection_rate")) == [Interval(low=1, high=1)]
    assert intervals(counts.rate("false_negative_rate")) == [Interval(low=0, high=0)]


def test_a_constant_predictors_precision_interval_is_the_binomial_one() -> None:
    """Predicting >50K for everyone, precision is the resample's share of positives: its 95%
    interval is p +- 1.96 sqrt(p (1 - p) / n)."""
    rows, p = 2000, 0.3
    y = np.arange(rows) < p * rows
    counts = group_counts(y, np.ones(rows), everyone(rows), resamples=2000, seed=1)
    (interval,) = intervals(counts.rate("precision"))
    half_width = 1.96 * math.sqrt(p * (1 - p) / rows)
    assert interval is not None
    assert interval.low == pytest.approx(p - half_width, abs=0.003)
    assert interval.high == pytest.approx(p + half_width, abs=0.003)


def test_row_zero_is_the_sample_itself() -> None:
    y = np.array([1, 1, 0, 0, 1])
    pred = np.array([1, 0, 1, 0, 1])
    counts = group_counts(y, pred, everyone(5), resamples=3, seed=0)
    sample = [counts.true_negative, counts.false_positive, counts.false_negative]
    assert [int(c[0, 0]) for c in [*sample, counts.true_positive]] == [1, 1, 1, 2]


def test_every_resample_draws_as_many_rows_as_the_sample() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0])
    counts = group_counts(y, np.zeros(7), everyone(7), resamples=50, seed=0)
    total = counts.true_negative + counts.false_negative
    assert (total == 7).all()


def test_groups_are_counted_on_the_same_resamples() -> None:
    """Resampled jointly: in each resample two groups that split the rows add up to all."""
    rows = 200
    y = np.arange(rows) % 3 == 0
    first = np.arange(rows) < 80
    masks = np.stack([first, ~first, np.ones(rows, dtype=bool)], axis=1)
    counts = group_counts(y, np.arange(rows) % 2 == 0, masks, resamples=100, seed=3)
    for cell in (counts.true_positive, counts.false_positive, counts.false_negative):
        assert (cell[:, 0] + cell[:, 1] == cell[:, 2]).all()
    assert not (counts.true_positive[1:, 0] == counts.true_positive[0, 0]).all()


def test_the_same_seed_gives_the_same_resamples() -> None:
    y = np.arange(100) % 4 == 0
    pred = np.arange(100) % 3 == 0
    first = group_counts(y, pred, everyone(100), resamples=20, seed=7)
    again = group_counts(y, pred, everyone(100), resamples=20, seed=7)
    other = group_counts(y, pred, everyone(100), resamples=20, seed=8)
    assert (first.true_positive == again.true_positive).all()
    assert not (first.true_positive == other.true_positive).all()


def test_resamples_drawn_in_blocks_are_the_resamples_drawn_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import census_salary.bootstrap

    y = np.arange(50) % 4 == 0
    at_once = group_counts(y, y, everyone(50), resamples=30, seed=5)
    monkeypatch.setattr(census_salary.bootstrap, "_DRAWS_PER_BLOCK", 50 * 7)
    in_blocks = group_counts(y, y, everyone(50), resamples=30, seed=5)
    assert (at_once.true_positive == in_blocks.true_positive).all()


def test_draws_counted_in_passes_are_the_draws_counted_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import census_salary.bootstrap

    rows = np.arange(97)
    y_true, y_pred = rows % 3 == 0, rows % 4 == 0
    groups = np.stack([rows % 2 == 0, rows < 40], axis=1)
    at_once = group_counts(y_true, y_pred, groups, resamples=40, seed=5)
    monkeypatch.setattr(census_salary.bootstrap, "_COUNTS_PER_PASS", 97 * 3)  # 3 resamples
    in_passes = group_counts(y_true, y_pred, groups, resamples=40, seed=5)
    for cell in ("true_negative", "false_positive", "false_negative", "true_positive"):
        assert (getattr(at_once, cell) == getattr(in_passes, cell)).all(), cell


def test_an_undefined_rate_is_nan_not_zero() -> None:
    assert np.isnan(divide(np.array([0.0, 1.0]), np.array([0.0, 2.0]))).tolist() == [True, False]


def test_intervals_leave_out_resamples_where_the_rate_is_undefined() -> None:
    values = np.array([[0.5, np.nan], [np.nan, np.nan], [0.2, np.nan], [0.4, np.nan]])
    defined, undefined = intervals(values)
    assert defined is not None
    assert 0.2 <= defined.low < defined.high <= 0.4
    assert undefined is None


def test_no_resamples_no_intervals() -> None:
    assert intervals(np.array([[0.5, 0.7]])) == [None, None]
