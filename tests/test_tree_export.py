"""The export of fitted trees: exact, or not made at all; and still made by this scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from census_salary.bundle import Bundle, load_bundle
from census_salary.config import load_settings
from census_salary.contract import CATEGORICAL, EXAMPLE_ROW, NUMERICAL, check_records
from census_salary.data import CensusData
from census_salary.model import build_pipeline
from census_salary.scoring import PipelineScorer
from census_salary.tree_export import export_trees
from census_salary.trees import TreeTables

ROOT = Path(__file__).resolve().parents[1]


def pipeline_scorer(bundle: Bundle) -> PipelineScorer:
    assert isinstance(bundle.scorer, PipelineScorer)
    return bundle.scorer


@pytest.mark.parametrize("kind", ["random_forest", "logistic_regression"])
def test_other_kinds_train_score_and_have_no_tree_export(
    kind: str, census_data: CensusData
) -> None:
    x, y = census_data.features.head(1500), census_data.target.head(1500)
    settings = load_settings(ROOT / "census.toml", environ={})
    params = dict(settings.model.params[kind])
    params.pop("n_jobs", None)
    pipeline = build_pipeline(kind, params, CATEGORICAL, NUMERICAL, seed=0).fit(x, y)
    assert pipeline.predict_proba(x).shape == (1500, 2)
    assert export_trees(PipelineScorer(pipeline), x) is None


def test_exported_covers_count_the_training_rows_through_each_node(census_data: CensusData) -> None:
    x, y = census_data.features.head(1000), census_data.target.head(1000)
    pipeline = build_pipeline(
        "hist_gradient_boosting", {"max_iter": 5}, CATEGORICAL, NUMERICAL, seed=0
    ).fit(x, y)
    tables = export_trees(PipelineScorer(pipeline), x)
    assert tables is not None
    assert tables.cover is not None
    # Walk every training row down every tree by the tables' own splits, counting visits.
    bins, is_leaf = tables.bins(x), tables.child == np.arange(len(tables.child))
    node = np.repeat(tables.roots[None, :], len(x), axis=0)
    visits = np.bincount(node.ravel(), minlength=len(tables.child))
    while not is_leaf[node].all():
        split = ~is_leaf[node]
        column = tables.feature[node[split]]
        rows = np.nonzero(split)[0]
        node[split] = tables.child[node[split]] + tables.go_right[node[split], bins[rows, column]]
        visits += np.bincount(node[split], minlength=len(tables.child))
    np.testing.assert_array_equal(tables.cover, visits)
    assert set(tables.cover[tables.roots].tolist()) == {1000.0}


def test_tree_export_matches_the_pipeline_on_every_row_of_the_data(
    census_data: CensusData, pipeline_bundle: Bundle
) -> None:
    features = census_data.features
    scorer = pipeline_scorer(pipeline_bundle)
    tables = export_trees(scorer, features.head(100))
    assert tables is not None
    np.testing.assert_array_equal(tables.probabilities(features), scorer.probabilities(features))


def test_tree_export_is_dropped_when_it_disagrees(
    pipeline_bundle: Bundle, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    exact = TreeTables.probabilities
    monkeypatch.setattr(
        TreeTables, "probabilities", lambda self, columns: exact(self, columns) + 1e-12
    )
    rows = pd.DataFrame(dict(check_records([EXAMPLE_ROW]).columns))
    assert export_trees(pipeline_scorer(pipeline_bundle), rows) is None
    assert "disagree" in caplog.text


def test_the_committed_model_is_still_exported_by_the_installed_scikit_learn(
    census_data: CensusData,
) -> None:
    """The drift guard: fails (never warns) when scikit-learn's internals change under us.

    CI also runs the suite on the newest scikit-learn release, so such a change shows up
    there before it reaches a user's `census train`.
    """
    committed = load_bundle(ROOT / "artifacts", "pipeline")
    features = census_data.features
    tables = export_trees(pipeline_scorer(committed), features)
    assert tables is not None, "the tree export failed: see the warning logged above"
    np.testing.assert_array_equal(
        tables.probabilities(features), load_bundle(ROOT / "artifacts").probabilities(features)
    )
