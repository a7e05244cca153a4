from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from census_salary.bundle import Bundle
from census_salary.config import load_settings
from census_salary.data import read_census
from census_salary.errors import ConfigError
from census_salary.model import Scorer, build_pipeline, choose_threshold, export_trees
from census_salary.schema import CATEGORICAL, EXAMPLE_ROW, NUMERICAL, POSITIVE, CensusRow
from census_salary.trees import TreeTables

ROOT = Path(__file__).resolve().parents[1]


def test_fast_encoder_matches_sklearn_on_every_row_of_the_data(
    census_csv: Path, small_bundle: Bundle
) -> None:
    features = read_census(census_csv).features
    scorer = small_bundle.scorer
    expected = scorer.pipeline.named_steps["encode"].transform(features)
    np.testing.assert_array_equal(scorer.encode(features), expected)


def test_row_path_matches_the_batch_path_on_every_row(
    census_csv: Path, small_bundle: Bundle
) -> None:
    features = read_census(census_csv).features
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    rows = [CensusRow.model_validate(r) for r in records]
    scorer = small_bundle.scorer
    np.testing.assert_array_equal(scorer.encode_rows(rows), scorer.encode(features))


def test_unknown_category_is_scored_as_missing(small_bundle: Bundle) -> None:
    scorer = small_bundle.scorer
    odd = CensusRow.model_validate({**EXAMPLE_ROW, "workclass": "Astronaut"})
    missing = CensusRow.model_validate({**EXAMPLE_ROW, "workclass": None})
    assert scorer.unknown_categories(odd) == ["workclass"]
    assert scorer.probabilities_of_rows([odd]) == scorer.probabilities_of_rows([missing])


def test_labels_follow_the_threshold(small_bundle: Bundle) -> None:
    scorer = small_bundle.scorer
    p = np.array([0.1, 0.5, 0.9])
    assert scorer.labels(p, threshold=0.5).tolist() == ["<=50K", POSITIVE, POSITIVE]


def test_empty_batch_scores_to_nothing(small_bundle: Bundle) -> None:
    assert small_bundle.scorer.probabilities(np.empty((0, 14))).shape == (0,)


@pytest.mark.parametrize("kind", ["random_forest", "logistic_regression"])
def test_other_kinds_train_score_and_have_no_tree_export(kind: str, census_csv: Path) -> None:
    data = read_census(census_csv)
    x, y = data.features.head(1500), data.target.head(1500)
    settings = load_settings(ROOT / "census.toml", environ={})
    params = dict(settings.model.params[kind])
    params.pop("n_jobs", None)
    pipeline = build_pipeline(kind, params, CATEGORICAL, NUMERICAL, seed=0).fit(x, y)
    assert pipeline.predict_proba(x).shape == (1500, 2)
    assert export_trees(Scorer(pipeline, 0.5), x) is None


def test_tree_export_matches_the_pipeline_on_every_row_of_the_data(
    census_csv: Path, small_bundle: Bundle
) -> None:
    features = read_census(census_csv).features
    tables = export_trees(small_bundle.scorer, features.head(100))
    assert tables is not None
    columns = {name: features[name].tolist() for name in tables.columns}
    np.testing.assert_array_equal(
        tables.probabilities(columns), small_bundle.scorer.predict_frame(features)
    )


def test_tree_export_is_dropped_when_it_disagrees(
    small_bundle: Bundle, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    exact = TreeTables.probabilities
    monkeypatch.setattr(
        TreeTables, "probabilities", lambda self, columns: exact(self, columns) + 1e-12
    )
    rows = pd.DataFrame([CensusRow.model_validate(EXAMPLE_ROW).model_dump()])
    assert export_trees(small_bundle.scorer, rows) is None
    assert "disagree" in caplog.text


def test_unknown_hyperparameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hist_gradient_boosting"):
        build_pipeline("hist_gradient_boosting", {"n_trees": 3}, CATEGORICAL, NUMERICAL, seed=0)


def test_f1_threshold_maximises_f1() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.35, 0.4, 0.8, 0.7, 0.9])
    # At 0.4: predicts 4 positives with 3 true -> F1 0.857, the best cut.
    assert choose_threshold(y, p, "f1") == 0.4


def test_accuracy_threshold_maximises_accuracy() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.35, 0.4, 0.8, 0.7, 0.9])
    t = choose_threshold(y, p, "accuracy")
    assert ((p >= t) == y.astype(bool)).mean() == pytest.approx(5 / 6)


def test_accuracy_threshold_may_predict_no_positive() -> None:
    y = np.array([0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.1])
    t = choose_threshold(y, p, "accuracy")
    assert not (p >= t).any()


def test_fixed_threshold_is_used_as_given() -> None:
    assert choose_threshold(np.array([0, 1]), np.array([0.2, 0.8]), "fixed", fixed=0.3) == 0.3
