"""Shared fixtures: the real data, and a small model trained on a sample of it, fast."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pandas as pd
import pytest

from census_salary.bundle import Bundle, current_bundle_dir, load_bundle
from census_salary.config import Settings, load_settings
from census_salary.data import CensusData, read_census
from census_salary.download import MEMBER, ensure_census
from census_salary.errors import DataUnavailableError
from census_salary.figures import FIGURE_NAMES
from census_salary.train import TrainResult, train
from live_server import LiveServer, live_server

ROOT = Path(__file__).resolve().parents[1]
PROJECT_CONFIG = ROOT / "census.toml"
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

[train]
processes = 1  # the fast suite starts no helper process (tests/test_helpers.py does)

[slices]
min_rows = 20
"""


def ensure_census_csv(config: Path, environ: Mapping[str, str], say: Callable[[str], None]) -> Path:
    """The data file `census train` reads, downloaded as it downloads it when missing.

    Says when it downloads; offline, fails with the file to fetch and where to put it.
    """
    settings = load_settings(config, environ=environ)
    path, url = settings.data_path, settings.data.url
    if path.is_file():
        return path
    say(f"{path} is missing: downloading it from {url} (once; later runs reuse it)")
    try:
        ensure_census(path, url)
    except DataUnavailableError as exc:
        pytest.fail(
            f"The tests need the census data. {exc}\n"
            f"To fix: fetch {url}, take {MEMBER} out of that archive and save it as {path} "
            "(or copy a census.csv there); see data/README.md.",
            pytrace=False,
        )
    say(f"{path}: downloaded")
    return path


@pytest.fixture(scope="session")
def census_csv(request: pytest.FixtureRequest) -> Path:
    """The real census file, fetched once per session if it is missing (data/README.md)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def say(message: str) -> None:
        if reporter is not None:
            reporter.write_line(f"census_csv: {message}")
        else:
            warnings.warn(message, stacklevel=2)

    return ensure_census_csv(PROJECT_CONFIG, os.environ, say)


@pytest.fixture(scope="session")
def census_data(census_csv: Path) -> CensusData:
    """The real file as `read_census` reads it, read once per session: a test may take
    frames from it (pandas copies on write) but must not change it in place."""
    return read_census(census_csv)


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


def hand_back_figures(monkeypatch: pytest.MonkeyPatch, drawn: Mapping[str, bytes]) -> None:
    """`render_figures` hands back `drawn` instead of drawing (six figures cost ~1 s)."""
    monkeypatch.setattr(
        "census_salary.figures.render_figures",
        lambda data, names=FIGURE_NAMES: {name: drawn[name] for name in names},
    )


@pytest.fixture
def drawn_figures(monkeypatch: pytest.MonkeyPatch, small_settings: Settings) -> None:
    """Training hands back the session model's figures instead of drawing its own: for
    tests of training's other work. Drawing is tested in test_figures.py and by the
    session model, which draws for real."""
    bundle_dir = current_bundle_dir(small_settings.artifacts_dir)
    hand_back_figures(
        monkeypatch, {name: (bundle_dir / name).read_bytes() for name in FIGURE_NAMES}
    )


@pytest.fixture
def quick_copy(project_copy: Settings, drawn_figures: None) -> Settings:
    """`project_copy` set to train in a fraction of the time: a fixed threshold, so no
    out-of-fold fits (three of the four), and the figures handed back, not drawn; for
    tests of what training writes, not of the model it makes."""
    config = project_copy.source.read_text(encoding="utf-8")
    quick = config.replace("[threshold]\ncv = 3", '[threshold]\nobjective = "fixed"')
    assert quick != config, "SMALL_CONFIG's [threshold] section changed"
    project_copy.source.write_text(quick, encoding="utf-8")
    return load_settings(project_copy.source, environ={})


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
