"""Typed settings from census.toml, overridden by CENSUS_<SECTION>__<KEY> variables.

This is the only module that reads census.toml. Settings are built once at the edge (the
CLI callback, the app factory) and passed down as arguments.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from census_salary.contract import CATEGORICAL, NUMERICAL
from census_salary.errors import ConfigError

CONFIG_NAME = "census.toml"
ENV_PREFIX = "CENSUS_"
# Short names for settings that people set from the environment (secrets above all).
ENV_ALIASES = {"CENSUS_API_KEY": "CENSUS_SERVE__API_KEY"}
# Settings that moved: {old dotted key: new dotted key}. Saying the old one is an error that
# names the new place, rather than a bare "unknown key".
MOVED_KEYS = {"serve.scorer": "model.scorer"}
# Settings that were removed: {old dotted key: what replaced it}, said when one is still set.
REMOVED_KEYS = {
    "artifacts.keep_history": "removed: every training run is recorded in runs.jsonl, and "
    "[artifacts] keep now says how many model bundles `census train` keeps; remove it",
}

ModelKind = Literal["hist_gradient_boosting", "random_forest", "logistic_regression"]


def _one_value(value: object) -> object:
    # One error for a list or a table, rather than one per member of the union.
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError("must be one number, string or boolean (not a list or a table)")


# A scikit-learn parameter as the file or a variable gives it; model.py checks it further.
ParamValue = Annotated[
    bool | int | float | str | None,
    PlainValidator(_one_value, json_schema_input_type=bool | int | float | str | None),
]


def _not_empty(value: object) -> object:
    # An empty path would be the folder census.toml is in (Path("") is "."), never meant.
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty; give a path (relative ones are to census.toml's folder)")
    if isinstance(value, str) and "\0" in value:
        raise ValueError("holds a NUL character, which no path can")
    return value


# A path setting: never empty. Numbers (StrictInt, StrictFloat) take no booleans either:
# CENSUS_ARTIFACTS__KEEP=true is a mistake, not 1.
SettingPath = Annotated[Path, BeforeValidator(_not_empty)]


class _Section(BaseModel):
    # Infinity stays Infinity in JSON (not null), so a snapshot reads back as it was.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


class DataSettings(_Section):
    path: SettingPath = Path("data/census.csv")
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
    test_size: StrictFloat = Field(0.2, gt=0, lt=1)
    seed: StrictInt = 42


class ModelSettings(_Section):
    kind: ModelKind = "hist_gradient_boosting"
    params: dict[ModelKind, dict[str, ParamValue]] = {}
    # How every command scores (predict, evaluate, slice-report, serve). "trees": from the
    # bundle's trees.npz when it has one (fast start, no scikit-learn needed); "pipeline":
    # always load model.skops. Both give the same numbers.
    scorer: Literal["trees", "pipeline"] = "trees"

    @property
    def selected_params(self) -> dict[str, ParamValue]:
        return dict(self.params.get(self.kind, {}))


class SearchSettings(_Section):
    enabled: bool = False
    method: Literal["grid", "halving"] = "halving"
    cv: StrictInt = Field(3, ge=2)
    # Processes fitting candidates at once (-1: one per core); the result is the same.
    n_jobs: StrictInt = -1
    grid: dict[str, list[ParamValue]] = {}

    @field_validator("n_jobs")
    @classmethod
    def _some_jobs(cls, value: int) -> int:
        if value < 1 and value != -1:
            raise ValueError(
                f"{value} processes cannot search; give 1 or more, or -1 for one per core"
            )
        return value


class ThresholdSettings(_Section):
    objective: Literal["f1", "accuracy", "fixed"] = "f1"
    value: StrictFloat = Field(0.5, ge=0, le=1)
    cv: StrictInt = Field(3, ge=2)


def _known_features(names: list[str]) -> list[str]:
    unknown = [name for name in names if name not in [*CATEGORICAL, *NUMERICAL]]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; choose from {CATEGORICAL + NUMERICAL}")
    if len(set(names)) != len(names):
        raise ValueError("a feature is listed more than once")
    return names


# Bootstrap resamples: 0 (no intervals), or enough for a 95% interval's 2.5th and 97.5th
# percentiles to lie between resamples (fewer give an interval of one or two draws' values).
MIN_BOOTSTRAP = 50
MAX_BOOTSTRAP = 100_000


class SliceSettings(_Section):
    min_rows: StrictInt = Field(30, ge=1)
    features: list[str] = []
    # Quantile bins per numerical feature (fewer where values repeat; 0 apart where most are 0).
    bins: StrictInt = Field(4, ge=2)
    # Bootstrap resamples behind the 95% intervals (0: no intervals); 100,000 take ~15 s.
    bootstrap: StrictInt = Field(1000, ge=0, le=MAX_BOOTSTRAP)
    # A slice whose F1 interval is wider than this is too uncertain to rank.
    max_f1_width: StrictFloat = Field(0.2, gt=0)
    seed: StrictInt = 42  # of the bootstrap resamples

    _known = field_validator("features")(_known_features)


def bootstrap_problem(resamples: int) -> str | None:
    """What is wrong with a number of bootstrap resamples, or None."""
    if resamples == 0 or MIN_BOOTSTRAP <= resamples <= MAX_BOOTSTRAP:
        return None
    return f"give 0 (no intervals) or from {MIN_BOOTSTRAP} to {MAX_BOOTSTRAP:,}"


class FairnessSettings(_Section):
    """The groups compared for fairness, and the limits `slice-report --fail-on-breach` keeps.

    Differences are between the groups' highest and lowest rate (0 to 1); the ratio is the
    lowest selection rate over the highest. The defaults are common rules of thumb (a 0.8
    ratio is the "four-fifths rule"); the 1994 data breaches them for sex and race.
    """

    sensitive: list[str] = ["sex", "race"]
    max_demographic_parity_difference: StrictFloat = Field(0.1, ge=0, le=1)
    min_demographic_parity_ratio: StrictFloat = Field(0.8, ge=0, le=1)
    max_equalized_odds_difference: StrictFloat = Field(0.1, ge=0, le=1)
    max_false_positive_rate_gap: StrictFloat = Field(0.1, ge=0, le=1)
    max_false_negative_rate_gap: StrictFloat = Field(0.1, ge=0, le=1)

    _known = field_validator("sensitive")(_known_features)


class ArtifactSettings(_Section):
    dir: SettingPath = Path("artifacts")
    # None: ModelCard.md beside the artifacts folder, so a model trained into another
    # folder (CENSUS_ARTIFACTS__DIR) is described there, not in the project's card.
    model_card: SettingPath | None = None
    # `census train` keeps the newest `keep` bundles, and never removes the current one
    # or one that git tracks; `census use VERSION` makes a kept one current again.
    keep: StrictInt = Field(5, ge=1)


# Worker processes of `census serve`, however given: --workers, $WEB_CONCURRENCY, [serve].
MAX_WORKERS = 1024


class ServeSettings(_Section):
    host: str = "127.0.0.1"
    port: StrictInt = Field(8000, ge=0, le=65535)
    workers: StrictInt = Field(1, ge=1, le=MAX_WORKERS)
    max_rows: StrictInt = Field(10_000, ge=1)
    max_body_bytes: StrictInt = Field(5_000_000, ge=1024)
    # Seconds a request body may take to arrive in full; slower ones get a 408 and the
    # connection is closed, so a slow or stalled client cannot hold a worker's slot.
    body_timeout: StrictFloat = Field(30, gt=0)
    # GET /metrics (Prometheus): "open" like /health, "key" behind the API key, or "off".
    metrics: Literal["open", "key", "off"] = "open"
    # Set it with CENSUS_API_KEY, never in census.toml; unset (or empty), /predict is open.
    api_key: SecretStr | None = None

    @field_validator("api_key")
    @classmethod
    def _empty_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not (key := value.get_secret_value()):
            return None
        # Clients send it in an HTTP header, which carries printable ASCII only (servers
        # read other bytes as Latin-1) and loses spaces at either end: such a key could
        # never be matched, so every request would be refused.
        if not (key.isascii() and key.isprintable()) or key != key.strip():
            raise ValueError(
                "must be printable ASCII (letters, digits, punctuation) with no spaces at "
                "either end, as an HTTP header can carry it; choose another key"
            )
        return value


class TrainSettings(_Section):
    # Processes `census train` works in: with 2, a helper process fits most of the
    # threshold's folds, saves the model, measures the permutation importance and draws half
    # the figures while this one fits the final model and evaluates it (the same bundle,
    # sooner on two cores); 1: this process alone.
    processes: StrictInt = Field(2, ge=1)


class TrainingConfig(_Section):
    """The sections that define a trained model; the bundle keeps a copy in its metadata.

    It round-trips through `model_dump(mode="json")` and `model_validate` unchanged.
    """

    data: DataSettings = DataSettings()
    features: FeatureSettings
    split: SplitSettings = SplitSettings()
    model: ModelSettings = ModelSettings()
    search: SearchSettings = SearchSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    slices: SliceSettings = SliceSettings()
    fairness: FairnessSettings = FairnessSettings()


class Settings(TrainingConfig):
    """Everything census.toml can say, and the file it came from (`source`)."""

    source: Path
    artifacts: ArtifactSettings = ArtifactSettings()
    train: TrainSettings = TrainSettings()
    serve: ServeSettings = ServeSettings()
    # {dotted key: the CENSUS_* variable that set it}, so later checks name the variable too.
    _overrides: dict[str, str] = PrivateAttr(default_factory=dict)

    def origin_of(self, key: str) -> str:
        """Where the value at dotted `key` came from: the file, or the variable overriding it."""
        return _where(key, self.source, self._overrides)

    @property
    def training(self) -> TrainingConfig:
        """Only the sections that define a trained model (what the bundle records)."""
        return TrainingConfig(**{name: getattr(self, name) for name in TrainingConfig.model_fields})

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
        card = self.artifacts.model_card
        return self.artifacts_dir.parent / "ModelCard.md" if card is None else self.resolve(card)


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
        raw = tomllib.loads(_config_text(path))
    except FileNotFoundError:
        raise ConfigError(f"Configuration file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if "source" in raw:
        raise ConfigError(f"{path}: source: unknown key")
    if isinstance(raw.get("serve"), dict) and "api_key" in raw["serve"]:
        raise ConfigError(
            f"{path}: serve.api_key: a secret does not belong in a file that is committed; "
            "set CENSUS_API_KEY in the environment instead."
        )
    sources = _apply_env_overrides(raw, environ)
    _refuse_moved_keys(raw, path, sources)
    try:
        settings = Settings.model_validate({**raw, "source": path.resolve()})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, sources)) from None
    # Not a rule of SliceSettings: a bundle trained when fewer resamples were allowed
    # records them in its metadata, and must still load.
    if problem := bootstrap_problem(settings.slices.bootstrap):
        key = "slices.bootstrap"
        raise ConfigError(f"{_where(key, path, sources)}: {key}: {problem}")
    settings._overrides = sources
    return settings


MAX_CONFIG_BYTES = 1 << 20  # census.toml takes a few kilobytes


def _config_text(path: Path) -> str:
    """The text of a configuration file: a regular file (not a pipe or a device, which
    could block or never end) of at most MAX_CONFIG_BYTES."""
    # Opened without waiting: opening a pipe would wait for a writer.
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ConfigError(
                f"Configuration file {path} is not a regular file; give the path of census.toml."
            )
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Configuration file {path} is larger than {MAX_CONFIG_BYTES:,} bytes; "
            "give the path of census.toml."
        )
    return data.decode("utf-8")


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
        for depth, key in enumerate(keys[:-1]):
            keys[depth] = key = _file_spelling(node, key)
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(keys)} does not name a setting.")
            node = child
        keys[-1] = _file_spelling(node, keys[-1])
        node[keys[-1]] = value if given in ENV_ALIASES else _parse_env_value(value)
        sources[".".join(keys)] = given
    return sources


def _file_spelling(node: dict[str, Any], key: str) -> str:
    """`key` as the file spells it: variable names have no case, but LogisticRegression's C has."""
    return next((given for given in node if given.lower() == key), key)


def _parse_env_value(value: str) -> Any:
    """JSON when it parses (numbers, booleans, lists), the plain string otherwise."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _refuse_moved_keys(raw: dict[str, Any], path: Path, sources: dict[str, str]) -> None:
    for old, new in MOVED_KEYS.items():
        section, key = old.split(".")
        if isinstance(raw.get(section), dict) and key in raw[section]:
            new_section, new_key = new.split(".")
            variable = f"{ENV_PREFIX}{new_section.upper()}__{new_key.upper()}"
            raise ConfigError(
                f"{_where(old, path, sources)}: {old}: moved to [{new_section}] {new_key}; "
                f"set it there (or with {variable}) instead."
            )
    for old, replacement in REMOVED_KEYS.items():
        section, key = old.split(".")
        if isinstance(raw.get(section), dict) and key in raw[section]:
            raise ConfigError(f"{_where(old, path, sources)}: {old}: {replacement}.")


def _where(key: str, path: Path, sources: dict[str, str]) -> str:
    """The file, or the variables that overrode the file, behind the value at `key`."""
    # A variable is behind `key` when it set it, a section around it (CENSUS_SEARCH__GRID),
    # or a key inside it (CENSUS_SERVEE__PORT is behind the unknown section `servee`).
    origins = sorted(
        variable
        for dotted, variable in sources.items()
        if key == dotted or key.startswith(f"{dotted}.") or dotted.startswith(f"{key}.")
    )
    return f"{', '.join(origins)} (overriding {path})" if origins else str(path)


def _describe(exc: ValidationError, path: Path, sources: dict[str, str]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        where = _where(key, path, sources)
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])  # without pydantic's "Value error, "
        else:
            message = error["msg"]
        lines.append(f"{where}: {key}: {message}")
    return "; ".join(lines)
