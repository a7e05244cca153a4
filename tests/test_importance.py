from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from census_salary.contract import CATEGORICAL, COLUMNS, NUMERICAL, ColumnTable, DistinctColumn
from census_salary.errors import InputError
from census_salary.importance import permutation_importance

ROWS = 400


def toy_columns(rows: int = ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Checked columns as the contract gives them: numbers float64, categories str/None."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {
        name: rng.integers(0, 100, rows).astype(np.float64) for name in NUMERICAL
    }
    for name in CATEGORICAL:
        words = np.array(["a", "b", "c", None], dtype=object)
        columns[name] = words[rng.integers(0, 4, rows)]
    return columns


def age_only(columns: Mapping[str, Any]) -> np.ndarray:
    """A model that reads nothing but age."""
    return 1 / (1 + np.exp(-(np.asarray(columns["age"]) - 50) / 10))


def labels(columns: Mapping[str, np.ndarray], seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 10, len(columns["age"]))
    return columns["age"] + noise > 50


def test_only_the_column_the_model_reads_matters() -> None:
    columns = toy_columns()
    report = permutation_importance(age_only, columns, labels(columns), 0.5, seed=3)
    assert report.columns[0].feature == "age", report
    assert report.of("age").roc_auc_drop > 0.2
    assert report.of("age").f1_drop > 0.2
    others = [c for c in report.columns if c.feature != "age"]
    assert [(c.roc_auc_drop, c.roc_auc_drop_std, c.f1_drop) for c in others] == [(0, 0, 0)] * 13
    assert sorted(report.features) == sorted(COLUMNS)


def test_the_baseline_is_the_unshuffled_score() -> None:
    columns = toy_columns()
    y = labels(columns)
    report = permutation_importance(age_only, columns, y, 0.5)
    assert report.roc_auc == pytest.approx(roc_auc_score(y, age_only(columns)))
    assert report.f1 == pytest.approx(f1_score(y, age_only(columns) >= 0.5))


def test_the_same_seed_gives_the_same_report() -> None:
    columns = toy_columns()
    y = labels(columns)
    first = permutation_importance(age_only, columns, y, 0.5, seed=7)
    again = permutation_importance(age_only, columns, y, 0.5, seed=7)
    other = permutation_importance(age_only, columns, y, 0.5, seed=8)
    assert first == again
    assert first.of("age") != other.of("age")


def test_a_column_shuffles_alike_whichever_columns_are_asked_for() -> None:
    columns = toy_columns()
    y = labels(columns)
    every = permutation_importance(age_only, columns, y, 0.5, seed=7)
    one = permutation_importance(age_only, columns, y, 0.5, seed=7, features=["age"])
    assert one.features == ["age"]
    assert one.of("age") == every.of("age")


def test_each_column_is_rescored_repeats_times() -> None:
    calls: list[Mapping[str, Any]] = []

    def counting(columns: Mapping[str, Any]) -> np.ndarray:
        calls.append(columns)
        return age_only(columns)

    columns = toy_columns()
    permutation_importance(counting, columns, labels(columns), 0.5, repeats=3, features=["sex"])
    assert len(calls) == 1 + 3
    shuffled = calls[1]
    assert sorted(shuffled["sex"], key=str) == sorted(columns["sex"], key=str)
    assert all(shuffled[name] is columns[name] for name in COLUMNS if name != "sex")


def test_rows_of_one_class_are_refused() -> None:
    columns = toy_columns()
    with pytest.raises(InputError, match="both classes"):
        permutation_importance(age_only, columns, np.zeros(ROWS, dtype=bool), 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": ["height"]}, r"Cannot shuffle column.*height"),
        ({"repeats": 0}, "repeats must be at least 1"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    columns = toy_columns()
    with pytest.raises(InputError, match=message):
        permutation_importance(age_only, columns, labels(columns), 0.5, **kwargs)


def test_a_missing_column_is_named() -> None:
    columns = toy_columns()
    del columns["race"]
    with pytest.raises(InputError, match=r"Cannot shuffle column.*race"):
        permutation_importance(age_only, columns, labels(columns), 0.5)


def test_labels_and_rows_must_match() -> None:
    columns = toy_columns()
    with pytest.raises(InputError, match="one value for each"):
        permutation_importance(age_only, columns, labels(columns)[:-1], 0.5)


def test_checked_columns_kept_by_distinct_values_give_the_report_plain_columns_give() -> None:
    columns = toy_columns()
    kept = ColumnTable({**columns, "race": DistinctColumn.of(columns["race"])})

    def by_race(scored: Mapping[str, Any]) -> np.ndarray:  # reads a category
        return age_only(scored) * np.where(np.asarray(scored["race"]) == "a", 1.0, 0.5)

    y = labels(columns)
    plain = permutation_importance(by_race, columns, y, 0.5, features=["race", "age"])
    assert permutation_importance(by_race, kept, y, 0.5, features=["race", "age"]) == plain
    race = next(column for column in plain.columns if column.feature == "race")
    assert race.roc_auc_drop_std > 0  # shuffling race moves this model's scores
