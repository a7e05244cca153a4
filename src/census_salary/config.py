"""Typed settings from census.toml, overridden by CENSUS_<SECTION>__<KEY> variables.

This is the only module that reads census.toml. Settings are built once at the edge (the
CLI callback, the app factory) and passed down as arguments.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from census_salary.errors import ConfigError
from census_salary.schema import CATEGORICAL, NUMERICAL

CONFIG_NAME = "census.toml"
ENV_PREFIX = "CENSUS_"
# Short names for settings that people set from the environment (secrets above all).
ENV_ALIASES = {"CENSUS_API_KEY": "CENSUS_SERVE__API_KEY"}

ModelKind = Literal["hist_gradient_boosting", "random_forest", "logistic_regression"]
ParamValue = bool | int | float | str | None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSettings(_Section):
    path: Path = Path("data/census.csv")
    url: str = "https://archive.ics.uci.edu/static/public/2/adult.zip"
    target: str = "salary"


class FeatureSettings(_Section):
    numerical: list[str]
    categorical: list[str]

    @model_validator(mode="after")
    def _known_and_once(self) -> FeatureSettings:
        for name in self.numerical:
            if name not in NUMERICAL:
                raise ValueError(f"{name!r} is not a numerical column; choose from {NUMERICAL}")
        for name in self.categorical:
            if name not in CATEGORICAL:
                raise ValueError(f"{name!r} is not a categorical column; choose from {CATEGORICAL}")
        if not self.numerical and not self.categorical:
            raise ValueError("at least one feature is needed")
        if len(set(self.all)) != len(self.all):
            raise ValueError("a feature is listed more than once")
        return self

    @property
    def all(self) -> list[str]:
        return [*self.categorical, *self.numerical]


class SplitSettings(_Section):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42


class ModelSettings(_Section):
    kind: ModelKind = "hist_gradient_boosting"
    params: dict[ModelKind, dict[str, ParamValue]] = {}

    @property
    def selected_params(self) -> dict[str, ParamValue]:
        return dict(self.params.get(self.kind, {}))


class SearchSettings(_Section):
    enabled: bool = False
    method: Literal["grid", "halving"] = "halving"
    cv: int = Field(3, ge=2)
    grid: dict[str, list[ParamValue]] = {}


class ThresholdSettings(_Section):
    objective: Literal["f1", "accuracy", "fixed"] = "f1"
    value: float = Field(0.5, ge=0, le=1)
    cv: int = Field(5, ge=2)


class SliceSettings(_Section):
    min_rows: int = Field(30, ge=1)
    features: list[str] = []

    @model_validator(mode="after")
    def _known(self) -> SliceSettings:
        unknown = [name for name in self.features if name not in [*CATEGORICAL, *NUMERICAL]]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; choose from {CATEGORICAL + NUMERICAL}")
        return self


class ArtifactSettings(_Section):
    dir: Path = Path("artifacts")
    model_card: Path = Path("ModelCard.md")
    keep_history: bool = True


class ServeSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    max_rows: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(5_000_000, ge=1024)
    # "trees": score from the bundle's trees.npz when it has one (fast start, no
    # scikit-learn in the server); "pipeline": always load model.skops.
    scorer: Literal["trees", "pipeline"] = "trees"
    # Set it with CENSUS_API_KEY, never in census.toml; unset (or empty), /predict is open.
    api_key: SecretStr | None = None

    @field_validator("api_key")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None


class Settings(_Section):
    """Everything census.toml can say, and the file it came from (`source`)."""

    source: Path
    data: DataSettings = DataSettings()
    features: FeatureSettings
    split: SplitSettings = SplitSettings()
    model: ModelSettings = ModelSettings()
    search: SearchSettings = SearchSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    slices: SliceSettings = SliceSettings()
    artifacts: ArtifactSettings = ArtifactSettings()
    serve: ServeSettings = ServeSettings()

    @property
    def root(self) -> Path:
        """The folder that relative paths in the configuration resolve against."""
        return self.source.parent

    def resolve(self, path: Path) -> Path:
        """A path from the configuration, made absolute against census.toml's folder."""
        return path if path.is_absolute() else (self.root / path).resolve()

    @property
    def data_path(self) -> Path:
        return self.resolve(self.data.path)

    @property
    def artifacts_dir(self) -> Path:
        return self.resolve(self.artifacts.dir)

    @property
    def model_card_path(self) -> Path:
        return self.resolve(self.artifacts.model_card)


def find_config(start: Path, environ: Mapping[str, str]) -> Path:
    """The configuration to use: $CENSUS_CONFIG, or census.toml here or in the nearest parent."""
    if explicit := environ.get("CENSUS_CONFIG"):
        return Path(explicit)
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"No {CONFIG_NAME} in {start} or any parent folder. Run census inside the project, "
        "or pass --config PATH (or set CENSUS_CONFIG)."
    )


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read census.toml at `path`, apply CENSUS_* overrides from `environ`, validate."""
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Configuration file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if "source" in raw:
        raise ConfigError(f"{path}: source: unknown key")
    if "api_key" in raw.get("serve", {}):
        raise ConfigError(
            f"{path}: serve.api_key: a secret does not belong in a file that is committed; "
            "set CENSUS_API_KEY in the environment instead."
        )
    sources = _apply_env_overrides(raw, environ)
    try:
        return Settings.model_validate({**raw, "source": path.resolve()})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, sources)) from None


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge CENSUS_SECTION__KEY=value into `raw`; return {dotted key: variable name}."""
    sources: dict[str, str] = {}
    for given, value in environ.items():
        name = ENV_ALIASES.get(given, given)
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            raise ConfigError(f"{name}: empty key; write CENSUS_<SECTION>__<KEY>.")
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(keys)} does not name a setting.")
            node = child
        node[keys[-1]] = value if given in ENV_ALIASES else _parse_env_value(value)
        sources[".".join(keys)] = given
    return sources


def _parse_env_value(value: str) -> Any:
    """JSON when it parses (numbers, booleans, lists), the plain string otherwise."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _describe(exc: ValidationError, path: Path, sources: dict[str, str]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        origin = next(
            (var for dotted, var in sources.items() if key == dotted or key.startswith(dotted)),
            None,
        )
        where = f"{origin} (overriding {path})" if origin else str(path)
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = error["msg"]
        lines.append(f"{where}: {key}: {message}")
    return "; ".join(lines)
