"""Build and fit the pipeline, choose the decision threshold, and score rows fast.

Every pipeline has the same two steps: `encode` (categories to ordinal codes, numbers
passed through) and `model` (which works on a float matrix). Scoring does the `encode`
step itself with dictionary look-ups on numpy arrays, which gives the same matrix as
scikit-learn's encoder (a test checks every row of the data) at a fraction of the cost,
and then calls only the `model` step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from census_salary.config import ModelKind, ParamValue
from census_salary.errors import ConfigError, ModelError
from census_salary.schema import CensusRow, labels_at, unknown_categories
from census_salary.trees import TreeTables

logger = logging.getLogger(__name__)


def build_pipeline(
    kind: ModelKind,
    params: dict[str, ParamValue],
    categorical: Sequence[str],
    numerical: Sequence[str],
    seed: int,
) -> Pipeline:
    """An unfitted pipeline of the given kind over the given feature columns."""
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                    dtype=np.float64,
                ),
                list(categorical),
            ),
            ("numerical", "passthrough", list(numerical)),
        ],
        verbose_feature_names_out=False,
    )
    n_cat = len(categorical)
    cat_idx, num_idx = list(range(n_cat)), list(range(n_cat, n_cat + len(numerical)))
    estimator: Any
    if kind == "hist_gradient_boosting":
        estimator = HistGradientBoostingClassifier(
            categorical_features=[i < n_cat for i in range(n_cat + len(numerical))],
            random_state=seed,
        )
    else:
        # One-hot codes for models without native categories; unknown and missing share
        # the filler code, which the one-hot encoder then ignores or marks alike.
        one_hot = Pipeline(
            [
                ("fill", SimpleImputer(strategy="constant", fill_value=-1)),
                ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        scale = StandardScaler() if kind == "logistic_regression" else "passthrough"
        head = (
            LogisticRegression(random_state=seed)
            if kind == "logistic_regression"
            else RandomForestClassifier(random_state=seed)
        )
        estimator = Pipeline(
            [
                ("expand", ColumnTransformer([("cat", one_hot, cat_idx), ("num", scale, num_idx)])),
                ("classifier", head),
            ]
        )
    pipeline = Pipeline([("encode", encode), ("model", estimator)])
    try:
        pipeline.set_params(**{param_prefix(kind) + key: value for key, value in params.items()})
    except ValueError as exc:
        raise ConfigError(
            f"[model.params.{kind}] has a parameter {kind} does not take: {exc}"
        ) from None
    return pipeline


def param_prefix(kind: ModelKind) -> str:
    """How the search grid's keys reach the estimator inside the pipeline."""
    return "model__" if kind == "hist_gradient_boosting" else "model__classifier__"


class Scorer:
    """A fitted pipeline with its fast encoder and decision threshold."""

    def __init__(self, pipeline: Pipeline, threshold: float) -> None:
        self.pipeline = pipeline
        self.threshold = threshold
        encode: ColumnTransformer = pipeline.named_steps["encode"]
        self.estimator = pipeline.named_steps["model"]
        encoder: OrdinalEncoder = encode.named_transformers_["categorical"]
        self.categorical: list[str] = list(encode.transformers_[0][2])
        self.numerical: list[str] = list(encode.transformers_[1][2])
        # column -> known value -> its ordinal code (NaN, the missing value, has none)
        self._codes: dict[str, dict[str, float]] = {
            name: {
                value: float(code) for code, value in enumerate(values) if isinstance(value, str)
            }
            for name, values in zip(self.categorical, encoder.categories_, strict=True)
        }
        self.vocabularies: dict[str, list[str]] = {
            name: list(codes) for name, codes in self._codes.items()
        }

    def encode(self, features: pd.DataFrame) -> np.ndarray:
        """The matrix scikit-learn's `encode` step would give, built with dict look-ups."""
        matrix = np.empty((len(features), len(self.categorical) + len(self.numerical)))
        for i, (name, codes) in enumerate(self._codes.items()):
            matrix[:, i] = features[name].map(codes).to_numpy(dtype=float, na_value=np.nan)
        for j, name in enumerate(self.numerical, start=len(self.categorical)):
            matrix[:, j] = features[name].to_numpy(dtype=float)
        return matrix

    def encode_rows(self, rows: Sequence[CensusRow]) -> np.ndarray:
        """The same matrix from validated rows, without building a DataFrame."""
        nan = math.nan
        return np.array(
            [
                [codes.get(getattr(row, name), nan) for name, codes in self._codes.items()]
                + [getattr(row, name) for name in self.numerical]
                for row in rows
            ],
            dtype=float,
        ).reshape(len(rows), len(self.categorical) + len(self.numerical))

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of >50K for each row of an encoded matrix."""
        if len(matrix) == 0:
            return np.empty(0)
        return self.estimator.predict_proba(matrix)[:, 1]

    def probabilities_of_rows(self, rows: Sequence[CensusRow]) -> np.ndarray:
        return self.probabilities(self.encode_rows(rows))

    def predict_frame(self, features: pd.DataFrame) -> np.ndarray:
        return self.probabilities(self.encode(features))

    def labels(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        return labels_at(probabilities, self.threshold if threshold is None else threshold)

    def unknown_categories(self, row: CensusRow) -> list[str]:
        return unknown_categories(row, self._codes)


def choose_threshold(
    y_true: np.ndarray, probabilities: np.ndarray, objective: str, fixed: float = 0.5
) -> float:
    """The cut-off on P(>50K) that maximises `objective` ("f1" or "accuracy"), or `fixed`."""
    if objective == "fixed":
        return fixed
    y_true = np.asarray(y_true)
    if objective == "f1":
        precision, recall, thresholds = precision_recall_curve(y_true, probabilities)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        return float(thresholds[int(np.argmax(f1[:-1]))])
    if objective == "accuracy":
        order = np.argsort(-probabilities, kind="stable")
        sorted_p, sorted_y = probabilities[order], y_true[order]
        # Predicting the top k positive: correct = true positives + true negatives below.
        tp = np.cumsum(sorted_y)
        k = np.arange(1, len(sorted_y) + 1)
        correct = tp + (len(sorted_y) - sorted_y.sum()) - (k - tp)
        # Only cut between distinct probabilities, so ties fall on one side.
        last_of_tie = np.r_[sorted_p[1:] != sorted_p[:-1], True]
        correct = np.where(last_of_tie, correct, -1)
        best = int(np.argmax(correct))
        all_negative = len(sorted_y) - sorted_y.sum()
        if all_negative >= correct[best]:
            return float(np.nextafter(sorted_p[0], np.inf))
        return float(sorted_p[best])
    raise ConfigError(f"Unknown threshold objective {objective!r}; use f1, accuracy or fixed.")


def export_trees(scorer: Scorer, features: pd.DataFrame) -> TreeTables | None:
    """The fitted gradient-boosted trees as numpy tables (see `census_salary.trees`).

    None for the other model kinds, and whenever the tables do not give exactly the
    pipeline's probabilities on every row of `features` and on probe rows with every
    known, unknown and missing category and every split threshold. The tables checked
    are the ones read back from their file. The export reads scikit-learn internals, so
    it is checked rather than trusted, and without it `census serve` loads the pipeline.
    """
    if not isinstance(scorer.estimator, HistGradientBoostingClassifier):
        return None
    try:
        exported = _tables_of(scorer, scorer.estimator)
        tables = TreeTables.from_bytes(exported.to_bytes(), "the exported trees")
        rows = pd.concat([features[list(tables.columns)], _probe_rows(tables)], ignore_index=True)
        got = tables.probabilities({name: rows[name].tolist() for name in tables.columns})
        agrees = np.array_equal(got, scorer.predict_frame(rows))
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, ModelError) as exc:
        logger.warning("cannot export the trees (%s); census serve will load the pipeline", exc)
        return None
    if not agrees:
        logger.warning("the exported trees disagree with the pipeline; not saving them")
        return None
    return tables


def _tables_of(scorer: Scorer, estimator: HistGradientBoostingClassifier) -> TreeTables:
    if not np.array_equal(
        estimator.is_categorical_,
        [i < len(scorer.categorical) for i in range(estimator.n_features_in_)],
    ):
        raise ValueError("categorical columns are not first")
    # Our ordinal code -> the estimator's own category index, which its trees test.
    internal = estimator._preprocessor.named_transformers_["encoder"].categories_
    category_bins = []
    for codes, seen in zip(scorer._codes.values(), internal, strict=True):
        index = {float(code): i for i, code in enumerate(seen) if not np.isnan(code)}
        category_bins.append(np.array([index[code] for code in codes.values()], dtype=np.intp))
    trees = [predictors[0] for predictors in estimator._predictors]
    cuts = []
    for column in range(len(scorer.categorical), estimator.n_features_in_):
        used = [
            t.nodes[(t.nodes["is_leaf"] == 0) & (t.nodes["feature_idx"] == column)] for t in trees
        ]
        cuts.append(np.unique(np.concatenate([nodes["num_threshold"] for nodes in used])))
    n_bins = [len(codes) for codes in scorer._codes.values()] + [len(c) + 1 for c in cuts]
    known, known_index = estimator._bin_mapper.make_known_categories_bitsets()

    def in_bitset(bitset: np.ndarray, value: int) -> bool:
        return bool((int(bitset[value // 32]) >> (value % 32)) & 1)

    feature, child, value, go_right, roots = [], [], [], [], []
    for tree in trees:
        nodes, start = tree.nodes, len(feature)
        order, new_id = [0], {0: start}
        for old in order:  # breadth first, the two children of a node side by side
            if not nodes["is_leaf"][old]:
                for kid in (int(nodes["left"][old]), int(nodes["right"][old])):
                    new_id[kid] = start + len(order)
                    order.append(kid)
        roots.append(start)
        for old in order:
            node = nodes[old]
            right = np.zeros(max(n_bins) + 1, dtype=np.uint8)
            if node["is_leaf"]:
                feature.append(0)
                child.append(new_id[old])
                value.append(float(node["value"]))
            else:
                column = int(node["feature_idx"])
                feature.append(column)
                child.append(new_id[int(node["left"])])
                value.append(0.0)
                right[n_bins[column]] = not node["missing_go_to_left"]
                if column < len(scorer.categorical):
                    left_set = tree.raw_left_cat_bitsets[node["bitset_idx"]]
                    for category in range(n_bins[column]):
                        if in_bitset(left_set, category):
                            continue
                        is_known = in_bitset(known[known_index[column]], category)
                        right[category] = is_known or not node["missing_go_to_left"]
                else:
                    at = int(
                        np.searchsorted(
                            cuts[column - len(scorer.categorical)], node["num_threshold"]
                        )
                    )
                    right[at + 1 : n_bins[column]] = 1
            go_right.append(right)
    return TreeTables(
        categorical=tuple(scorer.categorical),
        numerical=tuple(scorer.numerical),
        vocabularies=tuple(tuple(codes) for codes in scorer._codes.values()),
        category_bins=tuple(category_bins),
        cuts=tuple(cuts),
        feature=np.array(feature, dtype=np.intp),
        child=np.array(child, dtype=np.intp),
        go_right=np.array(go_right),
        value=np.array(value),
        roots=np.array(roots, dtype=np.intp),
        baseline=float(np.ravel(estimator._baseline_prediction)[0]),
    )


def _probe_rows(tables: TreeTables) -> pd.DataFrame:
    """Rows with every known category, a missing and an unseen one, every split threshold."""
    columns: dict[str, list[Any]] = {}
    for name, words in zip(tables.categorical, tables.vocabularies, strict=True):
        columns[name] = [*words, None, "never seen in training"]
    for name, cuts in zip(tables.numerical, tables.cuts, strict=True):
        columns[name] = [*cuts.tolist(), *np.nextafter(cuts, np.inf).tolist(), 0.0, 1e9]
    n_rows = max(len(values) for values in columns.values())
    return pd.DataFrame(
        {name: [v[i % len(v)] for i in range(n_rows)] for name, v in columns.items()}
    )
