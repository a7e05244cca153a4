"""Explanations: SHAP values that add up to the log-odds, and agree with shap and with the
definition of a Shapley value."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from census_salary import explain as explain_module
from census_salary.bundle import TREES_FILE, Bundle, current_bundle_dir, load_bundle
from census_salary.config import Settings, load_settings
from census_salary.contract import (
    CATEGORICAL,
    COLUMNS,
    EXAMPLE_ROW,
    NUMERICAL,
    check_columns,
    check_records,
    columns_of_frame,
)
from census_salary.data import CensusData
from census_salary.errors import ModelError
from census_salary.explain import Explanation, explain
from census_salary.model import build_pipeline
from census_salary.scoring import PipelineScorer
from census_salary.tree_export import export_trees
from census_salary.trees import TreeTables

ROOT = Path(__file__).resolve().parents[1]


def tables_of(bundle: Bundle) -> TreeTables:
    assert isinstance(bundle.scorer, TreeTables), "the default scorer should be the tree tables"
    return bundle.scorer


@pytest.fixture(scope="module")
def sample_columns(sample_frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """3,000 rows of the real file, checked as every door checks them."""
    checked = check_columns(columns_of_frame(sample_frame))
    assert not checked.problems, checked.problems[:3]
    return checked.columns


def head(columns: dict[str, np.ndarray], rows: Any) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in columns.items()}


def additivity_error(explanation: Explanation) -> float:
    total = explanation.base_value + explanation.values.sum(axis=1)
    return float(np.abs(total - explanation.log_odds).max())


# --- what the numbers mean --------------------------------------------------------------


def test_contributions_add_up_to_the_log_odds_on_every_row(
    small_bundle: Bundle, sample_columns: dict[str, np.ndarray]
) -> None:
    explanation = explain(small_bundle, sample_columns)
    assert explanation.values.shape == (len(sample_columns["age"]), len(COLUMNS))
    assert additivity_error(explanation) <= 1e-9


def test_log_odds_are_what_the_bundle_scores(
    small_bundle: Bundle, sample_columns: dict[str, np.ndarray]
) -> None:
    explanation = explain(small_bundle, sample_columns)
    probabilities = small_bundle.probabilities(sample_columns)
    np.testing.assert_allclose(1 / (1 + np.exp(-explanation.log_odds)), probabilities, atol=1e-15)


def test_columns_follow_the_contract(small_bundle: Bundle) -> None:
    explanation = explain(small_bundle, check_records([EXAMPLE_ROW]).columns)
    assert explanation.columns == tuple(COLUMNS)
    assert list(explanation.contributions(0)) == COLUMNS


def one_split(cover: tuple[float, float, float] = (4.0, 3.0, 1.0)) -> TreeTables:
    """One tree: age <= 30 goes left to a leaf worth 1 (3 training rows of 4), else right
    to a leaf worth -1 (1 row); a missing age goes left."""
    go_right = np.zeros((3, 3), dtype=np.uint8)
    go_right[0, 1] = 1
    return TreeTables(
        categorical=(),
        numerical=("age",),
        vocabularies=(),
        category_bins=(),
        cuts=(np.array([30.0]),),
        feature=np.zeros(3, dtype=np.intp),
        child=np.array([1, 1, 2]),
        go_right=go_right,
        value=np.array([0.0, 1.0, -1.0]),
        roots=np.array([0]),
        baseline=0.5,
        cover=np.array(cover),
    )


def test_a_worked_example_by_hand() -> None:
    """Expected value: 0.5 + (3 * 1 + 1 * -1) / 4 = 1; a young row adds 1 - 0.5 = 0.5 and
    an older one -1 - 0.5 = -1.5, all in the column `age`, zero in the 13 others."""
    explanation = explain(one_split(), {"age": np.array([25.0, 40.0])})
    assert explanation.base_value == 1.0
    age = COLUMNS.index("age")
    np.testing.assert_allclose(explanation.values[:, age], [0.5, -1.5], rtol=0, atol=1e-15)
    assert not np.delete(explanation.values, age, axis=1).any()
    np.testing.assert_array_equal(explanation.log_odds, [1.5, -0.5])


def test_an_unknown_or_missing_category_is_explained_as_missing(small_bundle: Bundle) -> None:
    rows = [
        {**EXAMPLE_ROW, "workclass": workclass, "native-country": country}
        for workclass, country in [("?", "?"), ("Never seen", "Atlantis"), (None, "")]
    ]
    explanation = explain(small_bundle, check_records(rows).columns)
    np.testing.assert_array_equal(explanation.values[1], explanation.values[0])
    np.testing.assert_array_equal(explanation.values[2], explanation.values[0])
    assert additivity_error(explanation) <= 1e-9


# --- against independent oracles ----------------------------------------------------------


def shap_model_for_row(tables: TreeTables, row_bins: np.ndarray) -> dict[str, Any]:
    """Our trees as shap's custom trees, with each split turned into a threshold that a row
    of zeros passes exactly when `row_bins` goes left there.

    Path-dependent TreeSHAP looks at a row only through the side it takes at each split
    (and at the covers for the others), so shap explaining zeros with these trees
    explains the row with ours, by its own code, categorical splits included.
    """
    assert tables.cover is not None
    is_leaf = tables.child == np.arange(len(tables.child))
    trees = []
    for root in tables.roots.tolist():
        order, index = [root], {root: 0}
        for node in order:
            if not is_leaf[node]:
                for kid in (int(tables.child[node]), int(tables.child[node]) + 1):
                    index[kid] = len(order)
                    order.append(kid)
        n = len(order)
        left, right = np.full(n, -1), np.full(n, -1)
        features, thresholds, values = np.full(n, -2), np.zeros(n), np.zeros((n, 1))
        for i, node in enumerate(order):
            if is_leaf[node]:
                values[i, 0] = tables.value[node]
                continue
            column = int(tables.feature[node])
            left[i], right[i] = index[int(tables.child[node])], index[int(tables.child[node]) + 1]
            features[i] = column
            thresholds[i] = -1.0 if tables.go_right[node, row_bins[column]] else 1.0
        trees.append(
            {
                "children_left": left,
                "children_right": right,
                "children_default": left,
                "features": features,
                "thresholds": thresholds,
                "values": values,
                "node_sample_weight": tables.cover[order].astype(np.float64),
            }
        )
    return {"trees": trees, "base_offset": tables.baseline, "tree_output": "raw_value"}


def in_contract_order(tables: TreeTables, by_model_column: np.ndarray) -> np.ndarray:
    values = np.zeros((len(by_model_column), len(COLUMNS)))
    values[:, [COLUMNS.index(name) for name in tables.columns]] = by_model_column
    return values


# shap's colour maps warn of a matplotlib deprecation when it is imported.
shap_import = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")


@shap_import
def test_values_match_shap_on_the_categorical_model(
    small_bundle: Bundle, sample_columns: dict[str, np.ndarray]
) -> None:
    import shap

    tables = tables_of(small_bundle)
    rows = head(sample_columns, slice(0, 15))
    ours = explain(small_bundle, rows)
    for row, row_bins in enumerate(tables.bins(rows)):
        explainer = shap.TreeExplainer(
            shap_model_for_row(tables, row_bins), feature_perturbation="tree_path_dependent"
        )
        theirs = explainer.shap_values(np.zeros((1, len(tables.columns))))
        np.testing.assert_allclose(
            ours.values[row], in_contract_order(tables, theirs)[0], rtol=0, atol=1e-10
        )
        assert ours.base_value == pytest.approx(np.ravel(explainer.expected_value)[0], abs=1e-10)


@shap_import
def test_values_match_shap_reading_a_model_itself(
    sample_frame: pd.DataFrame, sample_columns: dict[str, np.ndarray]
) -> None:
    """shap reads scikit-learn's numeric splits itself (not its categorical ones), so here
    every category is one value and every split is on a number."""
    import shap

    x = pd.DataFrame(dict(sample_columns)).head(1500)
    y = [label.strip() == ">50K" for label in columns_of_frame(sample_frame)["salary"][:1500]]
    for name in CATEGORICAL:
        x[name] = "the same for all"
    pipeline = build_pipeline(
        "hist_gradient_boosting", {"max_iter": 10}, CATEGORICAL, NUMERICAL, seed=0
    ).fit(x, y)
    scorer = PipelineScorer(pipeline)
    tables = export_trees(scorer, x)
    assert tables is not None
    rows = {name: x[name].to_numpy()[:300] for name in COLUMNS}
    ours = explain(tables, rows)
    explainer = shap.TreeExplainer(
        pipeline.named_steps["model"], feature_perturbation="tree_path_dependent"
    )
    theirs = explainer.shap_values(scorer.encode(rows))
    np.testing.assert_allclose(ours.values, in_contract_order(tables, theirs), rtol=0, atol=1e-10)
    assert ours.base_value == pytest.approx(np.ravel(explainer.expected_value)[0], abs=1e-10)


def expectations_over_subsets(tables: TreeTables, row_bins: np.ndarray) -> np.ndarray:
    """f(S) for every set S of known columns (bit j: model column j), by the definition:
    a split on a known column follows the row; on an unknown one, both sides weighted by
    their covers."""
    assert tables.cover is not None
    cover = tables.cover
    subsets = np.arange(1 << len(tables.columns))
    is_leaf = tables.child == np.arange(len(tables.child))

    def expected(node: int) -> np.ndarray:
        if is_leaf[node]:
            return np.full(len(subsets), tables.value[node])
        column, left = int(tables.feature[node]), int(tables.child[node])
        sides = expected(left), expected(left + 1)
        taken = sides[int(tables.go_right[node, row_bins[column]])]
        mean = (cover[left] * sides[0] + cover[left + 1] * sides[1]) / cover[node]
        return np.where((subsets >> column) & 1 == 1, taken, mean)

    return tables.baseline + sum(expected(root) for root in tables.roots.tolist())


def shapley_values(f: np.ndarray, n_players: int) -> np.ndarray:
    """phi_j = sum over S without j of |S|! (n - |S| - 1)! / n! (f(S + j) - f(S))."""
    subsets = np.arange(len(f))
    sizes = np.array([bin(s).count("1") for s in subsets.tolist()])
    weight = np.array(
        [
            math.factorial(s) * math.factorial(n_players - s - 1) / math.factorial(n_players)
            for s in range(n_players)
        ]
    )
    phi = np.empty(n_players)
    for j in range(n_players):
        without = subsets[(subsets >> j) & 1 == 0]
        phi[j] = np.sum(weight[sizes[without]] * (f[without | (1 << j)] - f[without]))
    return phi


def test_values_are_shapley_values_by_their_definition(
    small_bundle: Bundle, sample_columns: dict[str, np.ndarray]
) -> None:
    tables = tables_of(small_bundle)
    has_missing = np.flatnonzero(np.equal(sample_columns["workclass"], None))[0]
    rows = head(sample_columns, [0, 1, int(has_missing)])
    ours = explain(small_bundle, rows)
    for row, row_bins in enumerate(tables.bins(rows)):
        f = expectations_over_subsets(tables, row_bins)
        expected = shapley_values(f, len(tables.columns))
        np.testing.assert_allclose(
            ours.values[row], in_contract_order(tables, expected[None])[0], rtol=0, atol=1e-10
        )
        assert ours.base_value == pytest.approx(f[0], abs=1e-12)
        assert ours.log_odds[row] == pytest.approx(f[-1], abs=1e-12)


def test_rows_computed_without_the_tables_of_patterns_agree(
    small_bundle: Bundle, sample_columns: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = tables_of(small_bundle)
    rows = head(sample_columns, slice(0, 500))
    tabled = explain(tables, rows)
    monkeypatch.setattr(explain_module, "_TABLE_BYTES", 0)
    fresh = TreeTables.from_bytes(tables.to_bytes(), "trees.npz")  # not in the cache
    computed = explain(fresh, rows)
    np.testing.assert_allclose(computed.values, tabled.values, rtol=0, atol=1e-12)


# --- which models can be explained --------------------------------------------------------


def test_a_bundle_scored_by_its_pipeline_is_explained_from_its_trees_file(
    small_bundle: Bundle, pipeline_bundle: Bundle, sample_columns: dict[str, np.ndarray]
) -> None:
    rows = head(sample_columns, slice(0, 100))
    np.testing.assert_array_equal(
        explain(pipeline_bundle, rows).values, explain(small_bundle, rows).values
    )


def test_tables_without_covers_refuse_to_explain(small_bundle: Bundle) -> None:
    old = replace(tables_of(small_bundle), cover=None)
    with pytest.raises(ModelError, match=r"format 1.*Retrain with `census train`"):
        explain(old, check_records([EXAMPLE_ROW]).columns)


def test_a_model_kind_without_trees_says_what_to_do(pipeline_bundle: Bundle) -> None:
    metadata = pipeline_bundle.metadata.model_copy(
        update={"model_kind": "random_forest", "trees_sha256": None}
    )
    forest = replace(pipeline_bundle, metadata=metadata)
    with pytest.raises(ModelError, match=r'kind = "hist_gradient_boosting".*`census train`'):
        explain(forest, check_records([EXAMPLE_ROW]).columns)


def test_a_bundle_whose_trees_file_is_not_here_says_so(
    pipeline_bundle: Bundle, tmp_path: Path
) -> None:
    elsewhere = replace(pipeline_bundle, source=str(tmp_path))
    with pytest.raises(ModelError, match=r"has none on this machine.*`census train`"):
        explain(elsewhere, check_records([EXAMPLE_ROW]).columns)


def test_a_changed_trees_file_is_not_explained_from(project_copy: Settings) -> None:
    bundle = load_bundle(project_copy.artifacts_dir, "pipeline")
    path = current_bundle_dir(project_copy.artifacts_dir) / TREES_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        explain(bundle, check_records([EXAMPLE_ROW]).columns)


@pytest.mark.slow
def test_the_default_model_adds_up_on_every_row_of_the_data(census_data: CensusData) -> None:
    """The project's own settings (up to 200 trees of 31 leaves) on the full data."""
    settings = load_settings(ROOT / "census.toml", environ={})
    features, target = census_data.features, census_data.target
    params = settings.model.params["hist_gradient_boosting"]
    pipeline = build_pipeline(
        "hist_gradient_boosting", dict(params), CATEGORICAL, NUMERICAL, seed=0
    ).fit(features, target)
    tables = export_trees(PipelineScorer(pipeline), features)
    assert tables is not None
    explanation = explain(tables, {name: features[name].to_numpy() for name in COLUMNS})
    assert additivity_error(explanation) <= 1e-9
