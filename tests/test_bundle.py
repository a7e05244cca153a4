import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from bundle_edits import copy_bundle, make_pre_profile, save_metadata
from census_salary.bundle import (
    ALLOWED_TYPES,
    METADATA_FILE,
    MODEL_FILE,
    POINTER,
    TREES_FILE,
    Bundle,
    ScorerChoice,
    bundle_files,
    current_bundle_dir,
    load_bundle,
    load_bundle_dir,
    load_bundle_files,
    read_metadata,
    sha256_bytes,
)
from census_salary.config import MIN_BOOTSTRAP, Settings
from census_salary.contract import CATEGORICAL, EXAMPLE_ROW, NUMERICAL, check_records
from census_salary.data import CensusData
from census_salary.drift import PROFILE_FILE
from census_salary.errors import ModelError
from census_salary.model import build_pipeline
from census_salary.scoring import PipelineScorer
from census_salary.trees import TreeTables


def test_bundle_loads_with_its_metadata(small_settings: Settings) -> None:
    bundle = load_bundle(small_settings.artifacts_dir)
    assert bundle.metadata.version == current_bundle_dir(small_settings.artifacts_dir).name
    assert bundle.threshold == bundle.metadata.threshold


def test_metadata_records_schema_hashes_and_versions(small_settings: Settings) -> None:
    folder = current_bundle_dir(small_settings.artifacts_dir)
    meta = read_metadata(folder)
    assert set(meta.features.categorical) == set(CATEGORICAL)
    assert "Private" in meta.features.categorical["workclass"]
    assert meta.data.sha256 == sha256_bytes(small_settings.data_path.read_bytes())
    assert {"scikit-learn", "numpy", "pandas", "skops"} <= set(meta.library_versions)
    assert meta.config.model.kind == "hist_gradient_boosting"
    assert meta.schema_version == 3
    assert meta.profile_sha256 == sha256_bytes((folder / PROFILE_FILE).read_bytes())
    assert "serve" not in meta.config.model_dump()  # nor its API key


def test_metadata_with_an_unknown_key_is_refused(project_copy: Settings) -> None:
    folder, meta = _edit_metadata(project_copy)
    meta["config"]["model"]["kindd"] = "x"
    save_metadata(folder, meta)
    with pytest.raises(ModelError, match=r"not valid model metadata .*kindd"):
        load_bundle(project_copy.artifacts_dir)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (("threshold",), float("nan"), "finite number"),
        (("threshold",), 1.5, "less than or equal to 1"),
        (("self_test", "probability"), float("nan"), "finite number"),
        (("profile_sha256",), None, "every bundle of schema 3 has a drift profile"),
    ],
)
def test_metadata_with_a_value_no_model_has_is_refused(
    project_copy: Settings, key: tuple[str, ...], value: object, problem: str
) -> None:
    folder, meta = _edit_metadata(project_copy)
    *parents, last = key
    edited = meta
    for name in parents:
        edited = edited[name]
    edited[last] = value
    save_metadata(folder, meta)  # (json writes NaN as NaN, which Python's reader reads)
    with pytest.raises(ModelError, match=f"not valid model metadata .*{problem}"):
        load_bundle(project_copy.artifacts_dir)


def test_a_bundle_trained_with_fewer_resamples_than_now_allowed_still_loads(
    project_copy: Settings,
) -> None:
    folder, meta = _edit_metadata(project_copy)
    meta["config"]["slices"]["bootstrap"] = MIN_BOOTSTRAP - 1  # allowed before 838cbd6
    save_metadata(folder, meta)
    bundle = load_bundle(project_copy.artifacts_dir)
    assert bundle.metadata.config.slices.bootstrap == MIN_BOOTSTRAP - 1


def test_missing_model_says_to_train(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="Run `census train`"):
        load_bundle(tmp_path)


def test_changed_model_file_is_refused(project_copy: Settings) -> None:
    model = current_bundle_dir(project_copy.artifacts_dir) / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_bundle(project_copy.artifacts_dir, "pipeline")


def _replace_model(settings: Settings, pipeline: object) -> None:
    """Swap in another model and record its hash, as an attacker with write access could."""
    folder, meta = _edit_metadata(settings)
    sio.dump(pipeline, folder / MODEL_FILE)
    meta["model_sha256"] = sha256_bytes((folder / MODEL_FILE).read_bytes())
    save_metadata(folder, meta)


def test_model_with_a_type_outside_the_allow_list_is_refused(project_copy: Settings) -> None:
    _replace_model(project_copy, Pipeline([("encode", FunctionTransformer(os.system))]))
    with pytest.raises(ModelError, match=r"types this version does not allow: .*posix\.system"):
        load_bundle(project_copy.artifacts_dir, "pipeline")


def test_model_that_is_not_a_census_pipeline_is_refused(project_copy: Settings) -> None:
    _replace_model(project_copy, {"not": "a pipeline"})
    with pytest.raises(ModelError, match="does not hold a census pipeline"):
        load_bundle(project_copy.artifacts_dir, "pipeline")


def test_pipeline_without_our_encode_step_is_refused(project_copy: Settings) -> None:
    _replace_model(project_copy, Pipeline([("encode", FunctionTransformer())]))
    with pytest.raises(ModelError, match="does not hold a census pipeline"):
        load_bundle(project_copy.artifacts_dir, "pipeline")


def test_garbage_model_file_is_refused(project_copy: Settings) -> None:
    _replace_model(project_copy, None)
    folder, meta = _edit_metadata(project_copy)
    (folder / MODEL_FILE).write_bytes(b"not a zip")
    meta["model_sha256"] = sha256_bytes(b"not a zip")
    save_metadata(folder, meta)
    with pytest.raises(ModelError, match="not a readable skops file"):
        load_bundle(project_copy.artifacts_dir, "pipeline")


def _edit_metadata(settings: Settings) -> tuple[Path, dict[str, Any]]:
    """The current bundle's folder and its metadata, to change and `_save_metadata`."""
    folder = current_bundle_dir(settings.artifacts_dir)
    return folder, json.loads((folder / METADATA_FILE).read_text())


@pytest.mark.parametrize(
    ("scorer", "scorer_file"), [("pipeline", MODEL_FILE), ("trees", TREES_FILE)]
)
def test_self_test_mismatch_is_refused(
    project_copy: Settings, scorer: ScorerChoice, scorer_file: str
) -> None:
    folder, meta = _edit_metadata(project_copy)
    meta["self_test"]["probability"] += 0.01
    save_metadata(folder, meta)
    with pytest.raises(ModelError, match=rf"{scorer_file} loaded but scores its stored example"):
        load_bundle(project_copy.artifacts_dir, scorer)


@pytest.mark.parametrize("kind", ["hist_gradient_boosting", "random_forest", "logistic_regression"])
def test_allow_list_covers_every_model_kind(
    kind: str, census_data: CensusData, tmp_path: Path
) -> None:
    pipeline = build_pipeline(kind, {}, CATEGORICAL, NUMERICAL, seed=0)
    if kind == "random_forest":
        pipeline.set_params(model__classifier__n_estimators=3)
    if kind == "hist_gradient_boosting":  # a few trees hold every type a hundred would
        pipeline.set_params(model__max_iter=5)
    pipeline.fit(census_data.features.head(800), census_data.target.head(800))
    sio.dump(pipeline, tmp_path / MODEL_FILE)
    assert set(sio.get_untrusted_types(file=tmp_path / MODEL_FILE)) <= set(ALLOWED_TYPES)


def test_the_default_scorer_is_the_tree_tables(small_bundle: Bundle) -> None:
    assert isinstance(small_bundle.scorer, TreeTables)


def test_the_pipeline_scorer_can_be_chosen(pipeline_bundle: Bundle) -> None:
    assert isinstance(pipeline_bundle.scorer, PipelineScorer)


def test_changed_trees_file_is_refused(project_copy: Settings) -> None:
    trees = current_bundle_dir(project_copy.artifacts_dir) / TREES_FILE
    data = bytearray(trees.read_bytes())
    data[len(data) // 2] ^= 0xFF
    trees.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"trees\.npz does not match the SHA-256"):
        load_bundle(project_copy.artifacts_dir)


def test_a_bundle_without_trees_loads_the_pipeline(project_copy: Settings) -> None:
    folder, meta = _edit_metadata(project_copy)
    (folder / TREES_FILE).unlink()
    meta["trees_sha256"] = None
    save_metadata(folder, meta)
    assert isinstance(load_bundle(project_copy.artifacts_dir).scorer, PipelineScorer)


def test_trees_with_other_columns_than_the_metadata_are_refused(project_copy: Settings) -> None:
    folder, meta = _edit_metadata(project_copy)
    meta["features"]["numerical"] = dict(reversed(meta["features"]["numerical"].items()))
    save_metadata(folder, meta)
    with pytest.raises(ModelError, match="does not hold the columns"):
        load_bundle(project_copy.artifacts_dir)


def test_changed_profile_is_refused(project_copy: Settings) -> None:
    profile = current_bundle_dir(project_copy.artifacts_dir) / PROFILE_FILE
    profile.write_text(profile.read_text().replace('"rows": ', '"rows": 1', 1))
    with pytest.raises(ModelError, match=r"profile\.json does not match the SHA-256"):
        load_bundle(project_copy.artifacts_dir)


def test_a_bundle_from_before_profiles_loads_without_one(project_copy: Settings) -> None:
    make_pre_profile(current_bundle_dir(project_copy.artifacts_dir))
    bundle = load_bundle(project_copy.artifacts_dir)
    assert (bundle.metadata.schema_version, bundle.profile) == (2, None)


@pytest.mark.parametrize(
    ("scorer", "warned"),
    [("trees", ["numpy"]), ("pipeline", ["numpy", "scikit-learn"])],
)
def test_loading_warns_of_the_library_versions_its_scorer_reads_with(
    project_copy: Settings,
    caplog: pytest.LogCaptureFixture,
    scorer: ScorerChoice,
    warned: list[str],
) -> None:
    folder, meta = _edit_metadata(project_copy)
    meta["library_versions"].update({"numpy": "0.1", "scikit-learn": "0.2"})
    save_metadata(folder, meta)
    with caplog.at_level("WARNING", logger="census_salary.bundle"):
        load_bundle(project_copy.artifacts_dir, scorer)
    drifted = sorted(m.split()[4] for m in caplog.messages if "model was trained with" in m)
    assert drifted == warned, caplog.messages


def test_a_bundle_trained_with_the_installed_libraries_loads_without_a_warning(
    small_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="census_salary.bundle"):
        load_bundle(small_settings.artifacts_dir, "pipeline")
    assert not [m for m in caplog.messages if "trained with" in m], caplog.messages


def test_unknown_values_are_counted_by_value(small_bundle: Bundle) -> None:
    rows = [
        {**EXAMPLE_ROW, "race": race, "sex": sex}
        for race, sex in [("Martian", "male"), (" Martian ", "Male"), ("White", "male")]
    ]
    found = small_bundle.unknown_values(check_records(rows).columns)
    assert found == {"race": {"Martian": 2}, "sex": {"male": 2}}


def test_warnings_name_every_row_with_an_unknown_category(small_bundle: Bundle) -> None:
    columns = {
        **{name: np.array([None] * 4, dtype=object) for name in CATEGORICAL},
        "sex": np.array(["Male", "male", None, "male"], dtype=object),
        "race": np.array(["Martian", "White", "White", "Martian"], dtype=object),
    }
    warned = small_bundle.warnings(columns)
    assert warned == [
        ["race: unknown value 'Martian', scored as missing"],
        ["sex: unknown value 'male', scored as missing"],
        [],
        [
            "race: unknown value 'Martian', scored as missing",
            "sex: unknown value 'male', scored as missing",
        ],
    ]


@pytest.mark.parametrize(
    ("scorer", "model_file"), [("trees", TREES_FILE), ("pipeline", MODEL_FILE)]
)
def test_bundle_files_ship_what_loading_reads(
    small_settings: Settings, scorer: ScorerChoice, model_file: str
) -> None:
    folder = current_bundle_dir(small_settings.artifacts_dir)
    files = bundle_files(folder, scorer)
    names = (METADATA_FILE, model_file, PROFILE_FILE)
    assert files == {name: (folder / name).read_bytes() for name in names}
    shipped = load_bundle_files(files, str(folder), scorer)
    loaded = load_bundle_dir(folder, scorer)
    assert type(shipped.scorer) is type(loaded.scorer)
    assert shipped.metadata == loaded.metadata
    assert shipped.profile == loaded.profile
    assert shipped.profile is not None


def test_shipped_bytes_are_checked_as_a_folder_is(small_settings: Settings) -> None:
    folder = current_bundle_dir(small_settings.artifacts_dir)
    files = bundle_files(folder)
    trees = bytearray(files[TREES_FILE])
    trees[len(trees) // 2] ^= 0xFF
    with pytest.raises(ModelError, match=r"trees\.npz does not match the SHA-256"):
        load_bundle_files({**files, TREES_FILE: bytes(trees)}, str(folder))
    with pytest.raises(ModelError, match=r"trees\.npz was not shipped"):
        load_bundle_files({METADATA_FILE: files[METADATA_FILE]}, str(folder))


@pytest.mark.parametrize(
    "damage",
    [
        lambda pointer: pointer.write_bytes(b"\xff\xfe2026\n"),  # not UTF-8
        lambda pointer: (pointer.unlink(), pointer.mkdir()),  # a folder
        lambda pointer: pointer.write_bytes(b"2026\x00x\n"),  # a NUL
        lambda pointer: pointer.write_text("20261128T063655Z-d5691bba\nextra\n"),  # two lines
    ],
    ids=["not-utf8", "folder", "nul", "two-lines"],
)
def test_an_unreadable_latest_is_a_model_error_saying_census_use_repairs_it(
    project_copy: Settings, damage: Callable[[Path], object]
) -> None:
    pointer = project_copy.artifacts_dir / POINTER
    damage(pointer)
    with pytest.raises(ModelError, match=rf"^.*{pointer}.*run `census use VERSION`") as e:
        load_bundle(project_copy.artifacts_dir)
    assert "\n" not in str(e.value)


def test_a_bundle_in_a_folder_named_after_another_version_is_refused(
    project_copy: Settings,
) -> None:
    folder = current_bundle_dir(project_copy.artifacts_dir)
    copy = project_copy.artifacts_dir / "20990101T000000Z-00000000"
    shutil.copytree(folder, copy)
    with pytest.raises(
        ModelError, match=rf"is the metadata of model {folder.name}, but its folder is named"
    ):
        load_bundle_dir(copy)


def test_a_copied_bundle_renamed_in_its_metadata_loads(project_copy: Settings) -> None:
    folder = current_bundle_dir(project_copy.artifacts_dir)
    copy = copy_bundle(folder, project_copy.artifacts_dir / "20990101T000000Z-00000000")
    assert load_bundle_dir(copy).version == copy.name
