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
from collections.abc import Callable, Sequence
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
from census_salary.errors import ConfigError
from census_salary.schema import CensusRow

logger = logging.getLogger(__name__)

POSITIVE, NEGATIVE = ">50K", "<=50K"


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


# Below this many rows one thread is faster (and never starves a busy server of its cores).
_THREADED_ROWS = 20_000


class _DirectTrees:
    """P(>50K) of a fitted HistGradientBoostingClassifier, straight from its trees.

    `predict_proba` re-validates its input and re-encodes the categories on every call,
    about 2 ms even for one row while the trees take 0.3 ms. This computes the same
    numbers (baseline plus the sum of the trees' outputs, through the model's own link) from the
    matrix our `encode` step gives. It reads scikit-learn internals, so `Scorer` checks
    it against `predict_proba` when it is built and falls back if they ever differ.
    """

    def __init__(self, estimator: HistGradientBoostingClassifier) -> None:
        self._trees = [trees[0] for trees in estimator._predictors]
        self._baseline = float(np.ravel(estimator._baseline_prediction)[0])
        self._loss = estimator._loss
        self._bitsets, self._feature_map = estimator._bin_mapper.make_known_categories_bitsets()
        encoder = estimator._preprocessor.named_transformers_["encoder"]
        mask = np.asarray(estimator.is_categorical_)
        # Our ordinal code -> the estimator's own category index (NaN where it never saw it).
        self._remaps: list[tuple[int, np.ndarray]] = []
        for column, known in zip(np.flatnonzero(mask), encoder.categories_, strict=True):
            codes = np.asarray(known, dtype=float)
            codes = codes[~np.isnan(codes)]
            table = np.full(int(codes.max()) + 2 if len(codes) else 1, np.nan)
            table[codes.astype(int)] = np.arange(len(codes), dtype=float)
            self._remaps.append((int(column), table))

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        x = np.array(matrix, dtype=np.float64, order="C")
        for column, table in self._remaps:
            values = x[:, column]
            known = ~np.isnan(values) & (values >= 0) & (values < len(table))
            mapped = np.full(len(values), np.nan)
            mapped[known] = table[values[known].astype(np.intp)]
            x[:, column] = mapped
        threads = 1 if len(x) < _THREADED_ROWS else _cpu_threads()
        raw = np.full(len(x), self._baseline)
        for tree in self._trees:
            raw += tree.predict(x, self._bitsets, self._feature_map, threads)
        return self._loss.predict_proba(raw)[:, 1]


def _cpu_threads() -> int:
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    return int(_openmp_effective_n_threads())


class Scorer:
    """A fitted pipeline with its fast encoder and decision threshold."""

    def __init__(self, pipeline: Pipeline, threshold: float) -> None:
        self.pipeline = pipeline
        self.threshold = threshold
        encode: ColumnTransformer = pipeline.named_steps["encode"]
        self._estimator = pipeline.named_steps["model"]
        encoder: OrdinalEncoder = encode.named_transformers_["categorical"]
        self.categorical: list[str] = list(encode.transformers_[0][2])
        self.numerical: list[str] = list(encode.transformers_[1][2])
        self.vocabularies: dict[str, list[str]] = {
            name: [value for value in values if isinstance(value, str)]
            for name, values in zip(self.categorical, encoder.categories_, strict=True)
        }
        self._codes: list[dict[str, float]] = [
            {value: float(code) for code, value in enumerate(values) if isinstance(value, str)}
            for values in encoder.categories_
        ]
        self._predict = self._fastest_predict()

    def _fastest_predict(self) -> Callable[[np.ndarray], np.ndarray]:
        """The direct tree path where it gives exactly predict_proba's numbers."""

        def slow(matrix: np.ndarray) -> np.ndarray:
            return self._estimator.predict_proba(matrix)[:, 1]

        if not isinstance(self._estimator, HistGradientBoostingClassifier):
            return slow
        probe = self._probe_matrix()
        try:
            fast = _DirectTrees(self._estimator)
            agrees = np.array_equal(fast(probe), slow(probe))
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            logger.warning("direct tree scoring unavailable (%s); using predict_proba", exc)
            return slow
        if not agrees:
            logger.warning("direct tree scoring disagrees with predict_proba; using predict_proba")
            return slow
        return fast

    def _probe_matrix(self) -> np.ndarray:
        """Rows covering every known category, unknown and missing ones, and number ranges."""
        width = max((len(codes) for codes in self._codes), default=0) + 2
        n_cat, n_num = len(self.categorical), len(self.numerical)
        probe = np.empty((width, n_cat + n_num))
        for i, codes in enumerate(self._codes):
            column = np.arange(width, dtype=float) % (len(codes) + 2)
            column[column == len(codes)] = np.nan  # missing
            column[column == len(codes) + 1] = len(codes) + 5  # never seen
            probe[:, i] = column
        rng = np.random.default_rng(0)
        probe[:, n_cat:] = rng.integers(0, 100_000, size=(width, n_num)) * rng.random((width, 1))
        return probe

    def encode(self, features: pd.DataFrame) -> np.ndarray:
        """The matrix scikit-learn's `encode` step would give, built with dict look-ups."""
        matrix = np.empty((len(features), len(self.categorical) + len(self.numerical)))
        for i, (name, codes) in enumerate(zip(self.categorical, self._codes, strict=True)):
            matrix[:, i] = features[name].map(codes).to_numpy(dtype=float, na_value=np.nan)
        for j, name in enumerate(self.numerical, start=len(self.categorical)):
            matrix[:, j] = features[name].to_numpy(dtype=float)
        return matrix

    def encode_rows(self, rows: Sequence[CensusRow]) -> np.ndarray:
        """The same matrix from validated rows, without building a DataFrame."""
        nan = math.nan
        return np.array(
            [
                [
                    codes.get(getattr(row, name), nan)
                    for name, codes in zip(self.categorical, self._codes, strict=True)
                ]
                + [getattr(row, name) for name in self.numerical]
                for row in rows
            ],
            dtype=float,
        ).reshape(len(rows), len(self.categorical) + len(self.numerical))

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of >50K for each row of an encoded matrix."""
        if len(matrix) == 0:
            return np.empty(0)
        return self._predict(matrix)

    def predict_frame(self, features: pd.DataFrame) -> np.ndarray:
        return self.probabilities(self.encode(features))

    def labels(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        return labels_at(probabilities, self.threshold if threshold is None else threshold)

    def unknown_categories(self, row: CensusRow) -> list[str]:
        """Fields whose value the model never saw in training (scored as missing)."""
        return [
            name
            for name, codes in zip(self.categorical, self._codes, strict=True)
            if (value := getattr(row, name)) is not None and value not in codes
        ]


def labels_at(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """'>50K' where P(>50K) reaches the threshold, '<=50K' elsewhere."""
    return np.where(probabilities >= threshold, POSITIVE, NEGATIVE)


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
