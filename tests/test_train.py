"""Training end to end: the real data with the default configuration, and the options."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from census_salary.bundle import IMPORTANCE_FILE, load_bundle
from census_salary.cli import app
from census_salary.config import Settings, load_settings
from census_salary.contract import COLUMNS, EXAMPLE_ROW
from census_salary.errors import InputError
from census_salary.figures import FIGURE_NAMES
from census_salary.importance import ImportanceReport
from census_salary.metadata import BundleMetadata
from census_salary.train import TrainResult, _counted, train
from conftest import SMALL_CONFIG, hand_back_figures, make_project
from live_server import census_executable

ROOT = Path(__file__).resolve().parents[1]
SEARCH = """
[search]
enabled = true
method = "{method}"
cv = 2
n_jobs = {n_jobs}
[search.grid]
max_leaf_nodes = [7, 15]
"""


@pytest.fixture(scope="module")
def full_project(tmp_path_factory: pytest.TempPathFactory, census_csv: Path) -> Settings:
    """The project's own census.toml and the real data, with artifacts in a temp folder."""
    folder = tmp_path_factory.mktemp("full")
    shutil.copy(ROOT / "census.toml", folder / "census.toml")
    (folder / "data").mkdir()
    shutil.copy(census_csv, folder / "data" / "census.csv")
    return load_settings(folder / "census.toml", environ={})


@pytest.fixture(scope="module")
def full_result(full_project: Settings) -> TrainResult:
    return train(full_project)


@pytest.mark.slow
def test_default_model_meets_the_quality_floor(full_result: TrainResult) -> None:
    m = full_result.metadata.metrics
    assert (m.roc_auc or 0) >= 0.92, m
    assert (m.f1 or 0) >= 0.70, m
    assert m.accuracy >= 0.86, m


@pytest.mark.slow
def test_split_and_duplicates_are_recorded(full_result: TrainResult) -> None:
    data = full_result.metadata.data
    assert (data.rows_read, data.duplicates_dropped) == (32561, 24)
    assert data.rows_train + data.rows_test == 32561 - 24


@pytest.mark.slow
def test_cli_audits_and_scores_the_full_model(
    full_result: TrainResult, full_project: Settings
) -> None:
    runner = CliRunner()
    config = ["--config", str(full_project.source)]
    evaluated = runner.invoke(app, [*config, "evaluate", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["f1"] == full_result.metadata.metrics.f1
    sliced = runner.invoke(app, [*config, "slice-report", "--format", "json"])
    assert sliced.exit_code == 0, sliced.output
    assert len(json.loads(sliced.stdout)["slices"]) == len(full_result.slices.slices)
    predicted = runner.invoke(app, [*config, "predict", "-i", str(full_project.data_path)])
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.stdout.splitlines()) == 32561 + 1


@pytest.mark.slow
def test_same_data_and_seed_give_the_same_model(tmp_path: Path, sample_frame: pd.DataFrame) -> None:
    first = train(make_project(tmp_path / "a", sample_frame)).metadata
    second = train(make_project(tmp_path / "b", sample_frame)).metadata
    # The skops zip records write times, so compare what the model does, not its bytes.
    assert first.threshold == second.threshold
    assert first.metrics == second.metrics
    assert first.self_test.probability == second.self_test.probability


@pytest.mark.slow
@pytest.mark.parametrize("method", ["grid", "halving"])
def test_hyperparameter_search_records_its_choice(
    tmp_path: Path, sample_frame: pd.DataFrame, method: str
) -> None:
    config = SMALL_CONFIG + SEARCH.format(method=method, n_jobs=1)
    result = train(make_project(tmp_path, sample_frame, config))
    assert result.metadata.best_params["max_leaf_nodes"] in (7, 15)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["grid", "halving"])
def test_searching_in_two_processes_chooses_as_one_does(
    tmp_path: Path, sample_frame: pd.DataFrame, method: str
) -> None:
    chosen = []
    for n_jobs in (1, 2):
        config = SMALL_CONFIG + SEARCH.format(method=method, n_jobs=n_jobs)
        result = train(make_project(tmp_path / str(n_jobs), sample_frame, config))
        chosen.append((result.metadata.best_params, result.metadata.threshold))
    assert chosen[0] == chosen[1]


@pytest.mark.slow
def test_grid_search_reports_progress_from_its_processes(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    config = SMALL_CONFIG + SEARCH.format(method="grid", n_jobs=2)
    progress = Recorder()
    train(make_project(tmp_path, sample_frame, config), progress)
    assert progress.totals["Searching hyperparameters"] == 4
    assert progress.steps["Searching hyperparameters"] == 4
    assert progress.steps[FITTING] == 4


FITTING = "Fitting the model and 3 folds for the threshold"


class Recorder:
    def __init__(self) -> None:
        self.totals: dict[str, float | None] = {}
        self.current = ""
        self.steps: dict[str, float] = {}

    def start(self, description: str, total: float | None = None) -> None:
        self.current = description
        self.totals[description] = total

    def advance(self, amount: float = 1) -> None:
        self.steps[self.current] = self.steps.get(self.current, 0) + amount


@pytest.mark.usefixtures("drawn_figures")  # the fits, not the figures
def test_each_fit_and_fold_advances_the_progress_bar(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    progress = Recorder()
    train(make_project(tmp_path, sample_frame), progress)
    assert progress.totals[FITTING] == progress.steps[FITTING] == 4


@pytest.mark.slow
def test_census_train_in_two_processes_makes_the_bundle_one_makes(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    one = train(make_project(tmp_path / "one", sample_frame))
    config = SMALL_CONFIG.replace("processes = 1", "processes = 2")
    assert config != SMALL_CONFIG
    two = make_project(tmp_path / "two", sample_frame, config)
    done = subprocess.run(
        [str(census_executable()), "--config", str(two.source), "train", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    metadata = BundleMetadata.model_validate_json(done.stdout)
    assert metadata.threshold == one.metadata.threshold
    assert metadata.metrics == one.metadata.metrics
    assert metadata.trees_sha256 == one.metadata.trees_sha256
    assert metadata.profile_sha256 == one.metadata.profile_sha256
    folder = two.artifacts_dir / metadata.version
    for name in ["slices.json", IMPORTANCE_FILE, "evaluation.json"]:
        assert (folder / name).read_bytes() == (one.bundle_dir / name).read_bytes(), name
    for name in FIGURE_NAMES:  # (each names its model's version)
        assert (folder / name).read_bytes().startswith(b"\x89PNG\r\n"), name
    assert load_bundle(two.artifacts_dir).metadata.version == metadata.version


class Counted:
    def __init__(self, fail: bool = False) -> None:
        self.steps, self.fail = 0, fail

    def start(self, description: str, total: float | None = None) -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        if self.fail:
            raise RuntimeError("the bar broke")
        self.steps += amount


def search_readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "search-progress"]


def test_fold_counts_reach_the_progress_bar_and_the_reader_ends() -> None:
    progress = Counted()
    with _counted(progress) as counter:
        for _ in range(3):
            pickle.loads(pickle.dumps(counter)).send(1)  # as a worker process holds it
    assert progress.steps == 3
    assert not search_readers()


def count_twice(progress: Counted, then_fail: bool = False) -> None:
    with _counted(progress) as counter:
        counter.send(1)
        counter.send(1)
        if then_fail:
            raise ValueError("a fold failed")


def test_a_failed_search_leaves_no_reader_behind() -> None:
    with pytest.raises(ValueError, match="a fold failed"):
        count_twice(Counted(), then_fail=True)
    assert not search_readers()


def test_a_broken_progress_bar_is_raised_once_the_search_is_over() -> None:
    with pytest.raises(RuntimeError, match="the bar broke"):
        count_twice(Counted(fail=True))
    assert not search_readers()


@pytest.mark.usefixtures("drawn_figures")  # the model, not its figures
@pytest.mark.parametrize("kind", ["random_forest", "logistic_regression"])
def test_other_model_kinds_train_into_bundles(
    tmp_path: Path, sample_frame: pd.DataFrame, kind: str
) -> None:
    config = SMALL_CONFIG.replace('kind = "hist_gradient_boosting"', f'kind = "{kind}"')
    config += "\n[model.params.random_forest]\nn_estimators = 20\n"
    result = train(make_project(tmp_path, sample_frame, config))
    assert result.metadata.model_kind == kind
    assert result.metadata.metrics.roc_auc is not None
    assert result.metadata.metrics.roc_auc > 0.8


@pytest.mark.usefixtures("drawn_figures")  # the model, not its figures
def test_fixed_threshold_is_stored(tmp_path: Path, sample_frame: pd.DataFrame) -> None:
    config = SMALL_CONFIG.replace(
        "[threshold]\ncv = 3", '[threshold]\nobjective = "fixed"\nvalue = 0.42'
    )
    assert train(make_project(tmp_path, sample_frame, config)).metadata.threshold == 0.42


@pytest.mark.usefixtures("drawn_figures")  # the model, not its figures
def test_accuracy_threshold_objective(tmp_path: Path, sample_frame: pd.DataFrame) -> None:
    config = SMALL_CONFIG.replace(
        "[threshold]\ncv = 3", '[threshold]\nobjective = "accuracy"\ncv = 3'
    )
    result = train(make_project(tmp_path, sample_frame, config))
    assert result.metadata.threshold_objective == "accuracy"


def test_the_bundle_keeps_the_slice_report_with_intervals_and_fairness(
    trained_project: TrainResult,
) -> None:
    from census_salary.bundle import read_slices

    stored = read_slices(trained_project.bundle_dir)
    assert stored == trained_project.slices
    assert stored.bootstrap == 1000  # [slices] bootstrap by default
    assert stored.overall.intervals
    assert stored.fairness is not None
    assert [f.feature for f in stored.fairness.features] == ["sex", "race"]


def test_self_test_row_is_the_schema_example(small_settings: Settings) -> None:
    from census_salary.bundle import current_bundle_dir, read_metadata

    meta = read_metadata(current_bundle_dir(small_settings.artifacts_dir))
    assert meta.self_test.row == EXAMPLE_ROW


def test_the_bundle_holds_its_figures_and_importance(trained_project: TrainResult) -> None:
    folder = trained_project.bundle_dir
    for name in FIGURE_NAMES:
        assert (folder / name).read_bytes().startswith(b"\x89PNG\r\n"), name
    importance = ImportanceReport.model_validate_json((folder / IMPORTANCE_FILE).read_bytes())
    assert sorted(importance.features) == sorted(COLUMNS)


def labelled(sample_frame: pd.DataFrame, negatives: int, positives: int) -> pd.DataFrame:
    """The first rows of the sample labelled <=50K and >50K, as many as asked."""
    label = sample_frame.iloc[:, -1].str.strip()
    return pd.concat(
        [
            sample_frame[label == "<=50K"].head(negatives),
            sample_frame[label == ">50K"].head(positives),
        ]
    )


NEEDS = (
    r"Training needs rows of both classes in the held-out split \(\[split\] test_size = 0\.2\), "
    r"to evaluate the model on, and at least 3 of each class in the training split, so that "
    r"each of the 3 \[threshold\] cv folds holds both\. "
)


def test_a_file_with_a_header_and_no_rows_is_refused_saying_what_training_needs(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    settings = make_project(tmp_path, labelled(sample_frame, 0, 0))
    message = (
        rf"^{re.escape(str(settings.data_path))} holds no rows\. {NEEDS}Add rows: at least 4 "
        r"more labelled <=50K \(4 in all\) and 4 more labelled >50K \(4 in all\)\.$"
    )
    with pytest.raises(InputError, match=message):
        train(settings)


def test_a_file_of_three_rows_is_refused_naming_what_it_holds(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    settings = make_project(tmp_path, labelled(sample_frame, 2, 1))
    found = "holds too few rows to train on: 3 (2 labelled <=50K, 1 labelled >50K). "
    with pytest.raises(InputError, match=re.escape(f"{settings.data_path} {found}")):
        train(settings)


def test_rows_of_one_class_only_are_refused_before_any_fitting(
    tmp_path: Path, sample_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("census_salary.train.build_pipeline", fitting_is_not_reached)
    settings = make_project(tmp_path, labelled(sample_frame, 30, 0))
    message = rf"\(30 labelled <=50K, 0 labelled >50K\)\. {NEEDS}Add rows: at least 4 more "
    with pytest.raises(InputError, match=message + r"labelled >50K \(4 in all\)\.$"):
        train(settings)


def fitting_is_not_reached(*args: object, **kwargs: object) -> None:
    raise AssertionError("the model was built: the data was not refused before fitting")


def test_too_few_rows_of_a_class_for_the_threshold_folds_names_the_setting_to_lower(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    """103 rows: the split trains on 2 labelled >50K, fewer than the 3 folds (sklearn only
    warns, and folds without a row >50K choose the threshold)."""
    settings = make_project(tmp_path, labelled(sample_frame, 100, 3))
    split = "which the split deals out as 80 <=50K and 2 >50K for training, 20 and 1 held out. "
    advice = "Add rows: at least 1 more labelled >50K (4 in all), or lower [threshold] cv to 2."
    with pytest.raises(InputError, match=f"{re.escape(split)}{NEEDS}{re.escape(advice)}$"):
        train(settings)


def test_folds_far_beyond_the_rows_are_refused_naming_the_setting_without_counting_rows(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    """Counting the rows to add, one at a time, would take as many splits as folds asked."""
    config = SMALL_CONFIG.replace("[threshold]\ncv = 3", "[threshold]\ncv = 1000000")
    settings = make_project(tmp_path, labelled(sample_frame, 100, 10), config)
    with pytest.raises(InputError, match=r"holds both\. Lower \[threshold\] cv to 8\.$"):
        train(settings)


def test_too_few_rows_of_a_class_for_the_search_folds_is_refused_before_the_search(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    config = SMALL_CONFIG.replace("[threshold]\ncv = 3", '[threshold]\nobjective = "fixed"')
    config += SEARCH.format(method="grid", n_jobs=1).replace("cv = 2", "cv = 4")
    settings = make_project(tmp_path, labelled(sample_frame, 100, 4), config)
    needs = (
        "at least 4 of each class in the training split, so that each of the 4 [search] cv folds"
    )
    advice = "Add rows: at least 1 more labelled >50K (5 in all), or lower [search] cv to 3."
    with pytest.raises(InputError, match=f"{re.escape(needs)} holds both. {re.escape(advice)}$"):
        train(settings)


def test_a_halving_search_whose_samples_hold_one_class_says_what_to_do(
    tmp_path: Path, sample_frame: pd.DataFrame
) -> None:
    """Successive halving fits and scores its first candidates on samples of the folds,
    drawn regardless of class: the check before training cannot see what they hold."""
    config = SMALL_CONFIG.replace("[threshold]\ncv = 3", '[threshold]\nobjective = "fixed"')
    config += SEARCH.format(method="halving", n_jobs=1).replace("cv = 2", "cv = 3")
    config = config.replace("max_leaf_nodes = [7, 15]", "max_leaf_nodes = [7, 15, 31]")
    settings = make_project(tmp_path, labelled(sample_frame, 40, 4), config)
    advice = 'Add rows of the rarer class, lower [search] cv or use [search] method = "grid".'
    with pytest.raises(InputError, match=f"in the samples of its folds .*{re.escape(advice)}$"):
        train(settings)


def test_the_rows_a_refusal_asks_for_are_enough_to_train(
    tmp_path: Path, sample_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held out: 1 of each class, to evaluate on; trained on: 3 of each, one per fold."""
    hand_back_figures(monkeypatch, {name: b"" for name in FIGURE_NAMES})
    config = SMALL_CONFIG + "bootstrap = 0\n"  # (in [slices], the last section)
    short = r"Add rows: at least 1 more labelled >50K \(4 in all\)[,.]"
    with pytest.raises(InputError, match=short):
        train(make_project(tmp_path / "short", labelled(sample_frame, 4, 3), config))
    result = train(make_project(tmp_path / "enough", labelled(sample_frame, 4, 4), config))
    assert (result.metadata.data.rows_train, result.metadata.data.rows_test) == (6, 2)
