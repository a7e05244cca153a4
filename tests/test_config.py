import os
import threading
from pathlib import Path

import pytest

from census_salary.config import (
    MAX_CONFIG_BYTES,
    Settings,
    TrainingConfig,
    find_config,
    load_settings,
)
from census_salary.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "census.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = '[features]\nnumerical = ["age"]\ncategorical = ["sex"]\n'


def test_the_project_configuration_loads() -> None:
    settings = load_settings(ROOT / "census.toml", environ={})
    assert settings.model.kind == "hist_gradient_boosting"
    assert settings.data_path == ROOT / "data" / "census.csv"


def test_relative_paths_resolve_against_the_file_folder(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL + '[artifacts]\ndir = "out"\n'), environ={})
    assert settings.artifacts_dir == tmp_path / "out"


def test_the_model_card_goes_beside_the_artifacts_folder(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert load_settings(path, environ={}).model_card_path == tmp_path / "ModelCard.md"
    elsewhere = {"CENSUS_ARTIFACTS__DIR": str(tmp_path / "run" / "out")}
    moved = load_settings(path, environ=elsewhere)
    assert moved.model_card_path == tmp_path / "run" / "ModelCard.md"


def test_a_model_card_path_that_is_set_is_used(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[artifacts]\ndir = "out"\nmodel_card = "docs/Card.md"\n')
    assert load_settings(path, environ={}).model_card_path == tmp_path / "docs" / "Card.md"


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[model]\nkindd = 'x'\n")
    with pytest.raises(ConfigError, match=r"census\.toml: model\.kindd: unknown key"):
        load_settings(path, environ={})


def test_wrong_type_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[split]\ntest_size = 'half'\n")
    with pytest.raises(ConfigError, match=r"split\.test_size"):
        load_settings(path, environ={})


@pytest.mark.parametrize("n_jobs", [0, -2])
def test_a_search_with_no_processes_is_refused(tmp_path: Path, n_jobs: int) -> None:
    path = write(tmp_path, MINIMAL + f"[search]\nn_jobs = {n_jobs}\n")
    with pytest.raises(ConfigError, match=r"search\.n_jobs: .*or -1 for one per core"):
        load_settings(path, environ={})


def test_training_needs_a_process(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[train]\nprocesses = 0\n")
    with pytest.raises(ConfigError, match=r"train\.processes: .*greater than or equal to 1"):
        load_settings(path, environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[data\n"), environ={})


def test_unknown_feature_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[features]\nnumerical = ["height"]\ncategorical = []\n')
    with pytest.raises(ConfigError, match="'height' is not a numerical column"):
        load_settings(path, environ={})


def test_environment_overrides_a_key(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_SERVE__PORT": "9001"})
    assert settings.serve.port == 9001


def test_environment_override_errors_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CENSUS_SERVE__PORT"):
        load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_SERVE__PORT": "many"})


def test_unknown_environment_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CENSUS_SERVE__PROT.*unknown key"):
        load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_SERVE__PROT": "1"})


def test_api_key_comes_from_census_api_key(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_API_KEY": "123"})
    assert settings.serve.api_key is not None
    assert settings.serve.api_key.get_secret_value() == "123"


def test_find_config_walks_up_to_the_nearest_parent(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep, environ={}) == path


def test_find_config_prefers_census_config_variable(tmp_path: Path) -> None:
    assert find_config(tmp_path, environ={"CENSUS_CONFIG": "/x/y.toml"}) == Path("/x/y.toml")


def test_find_config_outside_a_project_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config PATH"):
        find_config(tmp_path, environ={})


def test_api_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[serve]\napi_key = 'oops'\n")
    with pytest.raises(ConfigError, match="CENSUS_API_KEY"):
        load_settings(path, environ={})


def test_empty_api_key_means_no_key(tmp_path: Path) -> None:
    assert (
        load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_API_KEY": ""}).serve.api_key
        is None
    )


def test_unknown_slice_feature_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[slices]\nfeatures = ['height']\n")
    with pytest.raises(ConfigError, match=r"slices.*height"):
        load_settings(path, environ={})


def test_feature_listed_twice_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[features]\nnumerical = ["age", "age"]\ncategorical = []\n')
    with pytest.raises(ConfigError, match="more than once"):
        load_settings(path, environ={})


def test_scorer_is_a_model_setting(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert load_settings(path, environ={}).model.scorer == "trees"
    overridden = load_settings(path, environ={"CENSUS_MODEL__SCORER": "pipeline"})
    assert overridden.model.scorer == "pipeline"


def test_scorer_under_serve_in_the_file_says_where_it_moved(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[serve]\nscorer = 'pipeline'\n")
    with pytest.raises(
        ConfigError,
        match=r"census\.toml: serve\.scorer: moved to \[model\] scorer.*CENSUS_MODEL__SCORER",
    ):
        load_settings(path, environ={})


def test_scorer_under_serve_in_a_variable_says_where_it_moved(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^CENSUS_SERVE__SCORER \(overriding .*\): serve\.scorer: moved"
    ):
        load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_SERVE__SCORER": "trees"})


def test_unknown_section_variable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CENSUS_SERVEE__PORT.*servee: unknown key"):
        load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_SERVEE__PORT": "1"})


def test_variable_reaches_a_key_the_file_spells_with_capitals(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[model.params.logistic_regression]\nC = 1.0\n")
    settings = load_settings(path, environ={"CENSUS_MODEL__PARAMS__LOGISTIC_REGRESSION__C": "2"})
    assert settings.model.params["logistic_regression"] == {"C": 2}


def test_origin_of_names_the_variable_behind_a_value(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    settings = load_settings(path, environ={"CENSUS_SPLIT__SEED": "7"})
    assert settings.origin_of("split.seed") == f"CENSUS_SPLIT__SEED (overriding {path})"
    assert settings.origin_of("split.test_size") == str(path)


def test_settings_are_the_training_config_plus_where_and_how_to_train_and_serve() -> None:
    training_only = set(TrainingConfig.model_fields)
    assert training_only == {
        "data",
        "features",
        "split",
        "model",
        "search",
        "threshold",
        "slices",
        "fairness",
    }
    assert set(Settings.model_fields) - training_only == {"source", "artifacts", "train", "serve"}


def test_training_config_round_trips_unchanged() -> None:
    environ = {
        "CENSUS_SEARCH__GRID": '{"max_depth": [null, 3, 0.5, true, "x"]}',
        "CENSUS_MODEL__PARAMS__LOGISTIC_REGRESSION__C": "1e400",  # infinity
    }
    training = load_settings(ROOT / "census.toml", environ=environ).training
    assert type(training) is TrainingConfig
    assert TrainingConfig.model_validate(training.model_dump(mode="json")) == training
    assert TrainingConfig.model_validate_json(training.model_dump_json()) == training


def test_a_list_where_one_parameter_value_belongs_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[model.params.random_forest]\nn_estimators = [1, 2]\n")
    with pytest.raises(ConfigError, match=r"n_estimators: must be one number") as caught:
        load_settings(path, environ={})
    assert ";" not in str(caught.value)


def test_artifacts_keep_five_bundles_by_default(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, MINIMAL), environ={}).artifacts.keep == 5


def test_artifacts_keep_takes_a_number(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[artifacts]\nkeep = 2\n")
    assert load_settings(path, environ={}).artifacts.keep == 2


def test_artifacts_keep_below_one_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[artifacts]\nkeep = 0\n")
    with pytest.raises(ConfigError, match=r"artifacts\.keep: Input should be greater than or"):
        load_settings(path, environ={})


def test_keep_history_says_what_replaced_it(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[artifacts]\nkeep_history = true\n")
    with pytest.raises(
        ConfigError,
        match=r"census\.toml: artifacts\.keep_history: removed: .*runs\.jsonl.*\[artifacts\] keep",
    ) as caught:
        load_settings(path, environ={})
    assert "\n" not in str(caught.value)


def test_keep_history_in_a_variable_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^CENSUS_ARTIFACTS__KEEP_HISTORY \(overriding .*\): artifacts\.keep_"
    ):
        load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_ARTIFACTS__KEEP_HISTORY": "0"})


def test_slices_have_a_bootstrap_and_fairness_compares_sex_and_race_by_default(
    tmp_path: Path,
) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    assert (settings.slices.bootstrap, settings.slices.max_f1_width) == (1000, 0.2)
    assert settings.fairness.sensitive == ["sex", "race"]
    assert settings.fairness.min_demographic_parity_ratio == 0.8


def test_the_project_file_agrees_with_the_slice_and_fairness_defaults() -> None:
    settings = load_settings(ROOT / "census.toml", environ={})
    assert settings.slices == type(settings.slices)()
    assert settings.fairness == type(settings.fairness)()


def test_bootstrap_can_be_turned_off_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_SLICES__BOOTSTRAP": "0"})
    assert settings.slices.bootstrap == 0


def test_sensitive_features_come_from_the_environment_as_a_list(tmp_path: Path) -> None:
    environ = {"CENSUS_FAIRNESS__SENSITIVE": '["age"]'}
    assert load_settings(write(tmp_path, MINIMAL), environ=environ).fairness.sensitive == ["age"]


@pytest.mark.parametrize(
    ("section", "says"),
    [
        ("[fairness]\nsensitive = ['height']", r"fairness\.sensitive: unknown feature.*height"),
        ("[fairness]\nsensitive = ['sex', 'sex']", r"fairness\.sensitive: .*more than once"),
        ("[fairness]\nmin_demographic_parity_ratio = 1.5", r"min_demographic_parity_ratio"),
        ("[fairness]\nmax_fpr_gap = 0.1", r"fairness\.max_fpr_gap: unknown key"),
        ("[slices]\nbootstrap = -1", r"slices\.bootstrap"),
        ("[slices]\nbootstrap = 10", r"slices\.bootstrap: .*give 0 \(no intervals\) or from 50"),
        ("[serve]\nworkers = 1025", r"serve\.workers"),
        ("[slices]\nmax_f1_width = 0", r"slices\.max_f1_width"),
        ("[slices]\nbins = 1", r"slices\.bins"),
    ],
)
def test_bad_slice_and_fairness_settings_are_named(tmp_path: Path, section: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_settings(write(tmp_path, MINIMAL + section + "\n"), environ={})


@pytest.mark.parametrize(
    "variable", ["CENSUS_ARTIFACTS__DIR", "CENSUS_ARTIFACTS__MODEL_CARD", "CENSUS_DATA__PATH"]
)
def test_an_empty_path_is_refused_naming_the_variable(tmp_path: Path, variable: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable} \(overriding .*\): .*: is empty; give"):
        load_settings(write(tmp_path, MINIMAL), environ={variable: ""})


def test_an_empty_path_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[artifacts]\ndir = ""\n')
    with pytest.raises(ConfigError, match=r"census\.toml: artifacts\.dir: is empty"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CENSUS_ARTIFACTS__KEEP", "true"),
        ("CENSUS_SERVE__WORKERS", "true"),
        ("CENSUS_SLICES__BOOTSTRAP", "false"),
        ("CENSUS_SERVE__BODY_TIMEOUT", "true"),
    ],
)
def test_a_boolean_where_a_number_belongs_is_refused(
    tmp_path: Path, variable: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable} .*: Input should be a valid"):
        load_settings(write(tmp_path, MINIMAL), environ={variable: value})


@pytest.mark.parametrize("key", ["clé-secrète", "tab\there", "bell\x07", " padded "])
def test_an_api_key_a_header_cannot_carry_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=r"^CENSUS_API_KEY .*: must be printable ASCII") as e:
        load_settings(write(tmp_path, MINIMAL), environ={"CENSUS_API_KEY": key})
    assert key not in str(e.value)


def test_a_section_that_is_not_a_table_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"census\.toml: serve: Input should be a valid dict"):
        load_settings(write(tmp_path, "serve = 5\n" + MINIMAL), environ={})


def test_a_path_with_a_nul_character_is_refused_naming_it(tmp_path: Path) -> None:
    text = MINIMAL + '[artifacts]\ndir = "a\\u0000b"\n'
    with pytest.raises(ConfigError, match=r"artifacts\.dir: holds a NUL character"):
        load_settings(write(tmp_path, text), environ={})


def test_a_configuration_that_is_a_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    pipe = tmp_path / "census.toml"
    os.mkfifo(pipe)  # nobody writes: opening it to read could wait for ever
    raised: list[BaseException] = []

    def load() -> None:
        try:
            load_settings(pipe, environ={})
        except BaseException as exc:  # (handed to the test)
            raised.append(exc)

    loading = threading.Thread(target=load, daemon=True)
    loading.start()
    loading.join(timeout=10)
    assert not loading.is_alive(), "load_settings waited on the pipe"
    assert isinstance(raised[0], ConfigError)
    assert "is not a regular file" in str(raised[0])


def test_a_configuration_larger_than_any_census_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is larger than 1,048,576 bytes"):
        load_settings(write(tmp_path, "#" * (MAX_CONFIG_BYTES + 1)), environ={})
