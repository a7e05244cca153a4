from pathlib import Path

import pytest

from census_salary.config import find_config, load_settings
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


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[model]\nkindd = 'x'\n")
    with pytest.raises(ConfigError, match=r"census\.toml: model\.kindd: unknown key"):
        load_settings(path, environ={})


def test_wrong_type_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[split]\ntest_size = 'half'\n")
    with pytest.raises(ConfigError, match=r"split\.test_size"):
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
