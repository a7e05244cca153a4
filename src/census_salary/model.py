"""Build the pipeline and choose the decision threshold.

Every pipeline has the same two steps: `encode` (categories to ordinal codes, numbers
passed through) and `model` (which works on a float matrix); `scoring.PipelineScorer`
scores with it and `tree_export` turns a fitted gradient-boosted one into tree tables.
"""

from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from census_salary.config import ModelKind, ParamValue, Settings
from census_salary.errors import ConfigError
from census_salary.metrics import counts_above

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
    for key in params:
        if problem := _not_a_parameter(_estimator(pipeline, kind), key):
            raise ConfigError(f"model.params.{kind}.{key}: {problem}")
    pipeline.set_params(**{param_prefix(kind) + key: value for key, value in params.items()})
    return pipeline


def param_prefix(kind: ModelKind) -> str:
    """How the search grid's keys reach the estimator inside the pipeline."""
    return "model__" if kind == "hist_gradient_boosting" else "model__classifier__"


def check_model_settings(settings: Settings) -> None:
    """Refuse a [model.params.<kind>] or [search.grid] entry that scikit-learn would refuse.

    Cheap and done before any data is read. Names are checked against the `get_params()` of
    the estimator `build_pipeline` makes, values by scikit-learn's own validation. Every
    kind's params are checked, so switching kind reveals no old typo; the grid only when the
    search is on, against the chosen kind, as the grid is written for it.
    """
    features, seed = settings.features, settings.split.seed
    for kind, params in settings.model.params.items():
        pipeline = build_pipeline(kind, {}, features.categorical, features.numerical, seed)
        estimator, section = _estimator(pipeline, kind), f"model.params.{kind}"
        for key, value in params.items():
            problem = _not_a_parameter(estimator, key) or _invalid_value(estimator, {key: value})
            _refuse(settings, f"{section}.{key}", problem)
        # Values fine alone may clash together (LogisticRegression's penalty and solver).
        _refuse(settings, section, _invalid_value(estimator, params))
    if settings.search.enabled:
        kind, chosen = settings.model.kind, settings.model.selected_params
        pipeline = build_pipeline(kind, {}, features.categorical, features.numerical, seed)
        estimator = _estimator(pipeline, kind)
        for key, values in settings.search.grid.items():
            _refuse(settings, f"search.grid.{key}", _not_a_parameter(estimator, key))
            for value in values:
                problem = _invalid_value(estimator, {**chosen, key: value})
                _refuse(settings, f"search.grid.{key}", problem)


def _refuse(settings: Settings, key: str, problem: str | None) -> None:
    if problem:
        raise ConfigError(f"{settings.origin_of(key)}: {key}: {problem}")


def _estimator(pipeline: Pipeline, kind: ModelKind) -> BaseEstimator:
    """The estimator inside `pipeline` that [model.params.<kind>] and [search.grid] set."""
    estimator: BaseEstimator = pipeline.get_params()[param_prefix(kind).removesuffix("__")]
    return estimator


def _not_a_parameter(estimator: BaseEstimator, key: str) -> str | None:
    """Why `key` is not a parameter of `estimator`, with the nearest real name; None if it is."""
    known = estimator.get_params(deep=False)
    if key in known:
        return None
    # Variables have no case (CENSUS_..._C arrives as "c"), so compare without it.
    by_lower = {name.lower(): name for name in known}
    close = difflib.get_close_matches(key.lower(), by_lower, n=1)
    hint = f" (did you mean {by_lower[close[0]]}?)" if close else ""
    return f"not a parameter of {type(estimator).__name__}{hint}"


class _ParametersAccepted(Exception):
    """`fit` got past its parameter checks and reached the data."""


class _DataProbe:
    """Stands in for X and y; the first look `fit` takes at it raises _ParametersAccepted."""

    def __getattr__(self, name: str) -> NoReturn:
        raise _ParametersAccepted

    def __array__(self, *args: object, **kwargs: object) -> NoReturn:
        raise _ParametersAccepted

    def __len__(self) -> NoReturn:
        raise _ParametersAccepted


def _invalid_value(estimator: BaseEstimator, params: dict[str, ParamValue]) -> str | None:
    """scikit-learn's own reason why `params` do not suit `estimator`; None if they do.

    scikit-learn has no public call that only validates, but its public `fit` validates
    every parameter before it looks at the data. Given `_DataProbe` for the data, `fit`
    stops at that first look, so nothing is fitted and a tiny frame cannot cause errors
    the real data would not (RandomForest's max_samples=5 is fine on 30,000 rows).
    """
    probe = clone(estimator).set_params(**params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the real fit warns again, once
            probe.fit(_DataProbe(), _DataProbe())
    except _ParametersAccepted:
        return None
    except (ValueError, TypeError) as exc:  # InvalidParameterError is both
        return " ".join(str(exc).split())
    return None


def choose_threshold(
    y_true: np.ndarray, probabilities: np.ndarray, objective: str, fixed: float = 0.5
) -> float:
    """The cut-off on P(>50K) that maximises `objective` ("f1" or "accuracy"), or `fixed`.

    Every distinct probability is a candidate (ties fall on one side); among equally good
    ones F1 takes the lowest, accuracy the highest, or just above the highest probability
    when calling no row >50K is as accurate."""
    if objective == "fixed":
        return fixed
    if objective not in ("f1", "accuracy"):
        raise ConfigError(f"Unknown threshold objective {objective!r}; use f1, accuracy or fixed.")
    thresholds, tp, fp = counts_above(y_true, probabilities)  # from the highest down
    positives, negatives = tp[-1], fp[-1]
    if objective == "f1":
        f1 = 2 * tp / (tp + fp + positives)  # 2 TP / (2 TP + FP + FN)
        return float(thresholds[len(f1) - 1 - int(np.argmax(f1[::-1]))])
    correct = tp + (negatives - fp)
    best = int(np.argmax(correct))
    if negatives >= correct[best]:
        return float(np.nextafter(thresholds[0], np.inf))
    return float(thresholds[best])
