from pathlib import Path

import numpy as np
import pytest

from census_salary.config import load_settings
from census_salary.contract import CATEGORICAL, NUMERICAL
from census_salary.errors import ConfigError
from census_salary.model import build_pipeline, check_model_settings, choose_threshold

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_hyperparameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hist_gradient_boosting"):
        build_pipeline("hist_gradient_boosting", {"n_trees": 3}, CATEGORICAL, NUMERICAL, seed=0)


def test_f1_threshold_maximises_f1() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.35, 0.4, 0.8, 0.7, 0.9])
    # At 0.4: predicts 4 positives with 3 true -> F1 0.857, the best cut.
    assert choose_threshold(y, p, "f1") == 0.4


def test_f1_threshold_takes_the_lowest_of_equally_good_ones() -> None:
    # At 0.8: TP 1, FP 0, FN 1 -> F1 2/3; at 0.4: TP 2, FP 2, FN 0 -> F1 2/3 as well.
    y = np.array([1, 1, 0, 0])
    p = np.array([0.8, 0.4, 0.4, 0.4])
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


TWO_FEATURES = '[features]\nnumerical = ["age"]\ncategorical = ["sex"]\n'


def check_config(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> None:
    path = tmp_path / "census.toml"
    path.write_text(TWO_FEATURES + text, encoding="utf-8")
    check_model_settings(load_settings(path, environ=environ or {}))


def test_parameter_typo_names_the_file_the_key_and_the_real_name(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"census\.toml: model\.params\.hist_gradient_boosting\.learning_rat: not a "
        r"parameter of HistGradientBoostingClassifier \(did you mean learning_rate\?\)$",
    ):
        check_config(tmp_path, "[model.params.hist_gradient_boosting]\nlearning_rat = 0.1\n")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("learning_rate = 'fast'", r"learning_rate: The 'learning_rate' parameter .* Got 'fast'"),
        ("max_iter = -1", r"max_iter: The 'max_iter' parameter .* range \[1, inf\)\. Got -1"),
    ],
)
def test_bad_parameter_value_is_one_line_with_scikit_learns_reason(
    tmp_path: Path, line: str, reason: str
) -> None:
    text = f"[model.params.hist_gradient_boosting]\n{line}\n"
    with pytest.raises(ConfigError, match=rf"census\.toml: model\.params\.[a-z_]+\.{reason}"):
        check_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        check_config(tmp_path, text)
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 300, str(caught.value)


def test_bad_value_from_a_variable_names_the_variable(tmp_path: Path) -> None:
    environ = {"CENSUS_MODEL__PARAMS__RANDOM_FOREST__N_ESTIMATORS": "0"}
    with pytest.raises(
        ConfigError, match=r"^CENSUS_MODEL__PARAMS__RANDOM_FOREST__N_ESTIMATORS \(overriding "
    ):
        check_config(tmp_path, "", environ)


def test_bad_search_grid_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    text = "[search]\nenabled = true\n[search.grid]\nmax_leafnodes = [15, 31]\n"
    with pytest.raises(
        ConfigError,
        match=r"census\.toml: search\.grid\.max_leafnodes: not a parameter of "
        r"HistGradientBoostingClassifier \(did you mean max_leaf_nodes\?\)",
    ):
        check_config(tmp_path, text)


def test_bad_search_grid_value_names_the_key(tmp_path: Path) -> None:
    text = "[search]\nenabled = true\n[search.grid]\nmax_leaf_nodes = [15, 1]\n"
    with pytest.raises(ConfigError, match=r"search\.grid\.max_leaf_nodes: .* Got 1 instead"):
        check_config(tmp_path, text)


@pytest.mark.parametrize("environ", [{}, {"CENSUS_SEARCH__ENABLED": "true"}])
def test_the_project_model_settings_pass_the_check(environ: dict[str, str]) -> None:
    check_model_settings(load_settings(ROOT / "census.toml", environ=environ))
