"""Shared fixtures: the real data, and a small model trained on a sample of it, fast."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from census_salary.bundle import Bundle, load_bundle
from census_salary.config import Settings, load_settings
from census_salary.train import TrainResult, train
from live_server import LiveServer, live_server

ROOT = Path(__file__).resolve().parents[1]
CENSUS_CSV = ROOT / "data" / "census.csv"
SMALL_CONFIG = """
[data]
path = "census.csv"
url = "http://127.0.0.1:9/unreachable.zip"

[features]
numerical = ["age", "fnlgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
categorical = ["workclass", "education", "marital_status", "occupation",
               "relationship", "race", "sex", "native_country"]

[model]
kind = "hist_gradient_boosting"
[model.params.hist_gradient_boosting]
max_iter = 30

[threshold]
cv = 3

[slices]
min_rows = 20
"""


@pytest.fixture(scope="session")
def census_csv() -> Path:
    """The real census file (CI copies it from ../shared/data; see data/README.md)."""
    if not CENSUS_CSV.is_file():
        pytest.fail(
            f"{CENSUS_CSV} is missing: copy ../shared/data/census.csv there (see data/README.md)"
        )
    return CENSUS_CSV


@pytest.fixture(scope="session")
def sample_frame(census_csv: Path) -> pd.DataFrame:
    """3,000 raw rows of the real file, exactly as published (spaces, `?` and all)."""
    raw = pd.read_csv(census_csv, dtype=str, keep_default_na=False)
    return raw.sample(n=3000, random_state=0)


def make_project(folder: Path, sample: pd.DataFrame, config: str = SMALL_CONFIG) -> Settings:
    """A project folder with census.toml and a sample of the data; its settings."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "census.toml").write_text(config, encoding="utf-8")
    sample.to_csv(folder / "census.csv", index=False)
    return load_settings(folder / "census.toml", environ={})


@pytest.fixture(scope="session")
def trained_project(
    tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame
) -> TrainResult:
    """A small model trained once per session; tests must not change its folder."""
    settings = make_project(tmp_path_factory.mktemp("project"), sample_frame)
    return train(settings)


@pytest.fixture(scope="session")
def small_settings(trained_project: TrainResult) -> Settings:
    return load_settings(trained_project.bundle_dir.parent.parent / "census.toml", environ={})


@pytest.fixture(scope="session")
def small_bundle(small_settings: Settings) -> Bundle:
    """The small model as every door loads it: scored from its tree tables."""
    return load_bundle(small_settings.artifacts_dir)


@pytest.fixture(scope="session")
def pipeline_bundle(small_settings: Settings) -> Bundle:
    """The small model scored with its scikit-learn pipeline (`[model] scorer = "pipeline"`)."""
    return load_bundle(small_settings.artifacts_dir, "pipeline")


@pytest.fixture
def project_copy(tmp_path: Path, small_settings: Settings) -> Settings:
    """A private copy of the trained project, for tests that change files."""
    target = tmp_path / "project"
    shutil.copytree(small_settings.root, target)
    return load_settings(target / "census.toml", environ={})


@pytest.fixture(scope="session")
def open_server(
    small_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A real `census serve` process over the small model, without an API key."""
    log = tmp_path_factory.mktemp("open-server") / "serve.log"
    with live_server(small_settings.source, log) as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the root logger (as it should, at the edge); undo it per test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers = handlers
    root.setLevel(level)
