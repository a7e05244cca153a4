from pathlib import Path

import pytest

from census_salary.audit import evaluate_bundle, held_out, slice_bundle
from census_salary.bundle import Bundle, load_bundle
from census_salary.config import MAX_BOOTSTRAP, MIN_BOOTSTRAP, Settings, load_settings
from census_salary.errors import DataUnavailableError, InputError, ModelError
from census_salary.figures import FIGURE_NAMES


def test_held_out_split_is_rebuilt_as_trained(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    _, y = held_out(small_settings, small_bundle.metadata)
    assert len(y) == small_bundle.metadata.data.rows_test
    metrics = evaluate_bundle(small_settings, small_bundle, None)
    assert metrics.model_dump() == small_bundle.metadata.metrics.model_dump()


def test_every_scorer_audits_alike(
    small_settings: Settings, small_bundle: Bundle, pipeline_bundle: Bundle
) -> None:
    assert evaluate_bundle(small_settings, small_bundle, None) == evaluate_bundle(
        small_settings, pipeline_bundle, None
    )


def test_changed_data_file_cannot_rebuild_the_split(project_copy: Settings) -> None:
    lines = project_copy.data_path.read_text().splitlines()
    project_copy.data_path.write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(ModelError, match="SHA-256 differs"):
        evaluate_bundle(project_copy, load_bundle(project_copy.artifacts_dir), None)


def test_a_labelled_file_can_be_audited(small_settings: Settings, small_bundle: Bundle) -> None:
    metrics = evaluate_bundle(small_settings, small_bundle, small_settings.data_path)
    assert (
        metrics.rows
        == small_bundle.metadata.data.rows_read - small_bundle.metadata.data.duplicates_dropped
    )


def test_slices_of_an_unknown_feature_are_refused(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    with pytest.raises(InputError, match=r"Unknown feature.*height"):
        slice_bundle(small_settings, small_bundle, None, ["height"])


def test_slices_cover_the_chosen_feature(small_settings: Settings, small_bundle: Bundle) -> None:
    report = slice_bundle(small_settings, small_bundle, None, ["sex"])
    assert {s.value for s in report.slices} == {"Female", "Male"}
    assert sum(s.rows for s in report.slices) == report.overall.rows


def test_a_cross_slice_covers_every_row_once(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    report = slice_bundle(small_settings, small_bundle, None, [("sex", "race")], bootstrap=0)
    assert {s.feature for s in report.slices} == {"sex & race"}
    assert "Female & White" in {s.value for s in report.slices}
    assert sum(s.rows for s in report.slices) == report.overall.rows


@pytest.mark.parametrize(
    "slicings",
    [["sex", "sex"], ["sex", ("sex",)], [("sex", "race"), ("race", "sex")]],
    ids=["feature-twice", "feature-and-by", "cross-in-either-order"],
)
def test_a_slicing_asked_for_twice_is_refused(
    small_settings: Settings, small_bundle: Bundle, slicings: list
) -> None:
    with pytest.raises(InputError, match=r"asked for twice"):
        slice_bundle(small_settings, small_bundle, None, slicings, bootstrap=0)


def test_a_cross_of_a_feature_with_itself_is_refused(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    with pytest.raises(InputError, match=r"sex,sex names a feature twice"):
        slice_bundle(small_settings, small_bundle, None, [("sex", "sex")])


def test_an_unknown_feature_in_a_cross_is_refused(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    with pytest.raises(InputError, match=r"Unknown feature.*height"):
        slice_bundle(small_settings, small_bundle, None, [("sex", "height")])


def test_the_bootstrap_can_be_set_per_report(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    none = slice_bundle(small_settings, small_bundle, None, ["sex"], bootstrap=0)
    some = slice_bundle(small_settings, small_bundle, None, ["sex"], bootstrap=50)
    assert (none.bootstrap, some.bootstrap) == (0, 50)
    assert not none.overall.intervals
    assert some.overall.intervals


@pytest.mark.parametrize("resamples", [-1, 1, MIN_BOOTSTRAP - 1, MAX_BOOTSTRAP + 1, 10**20])
def test_a_bootstrap_beyond_the_settings_bounds_is_refused_before_any_work(
    small_settings: Settings, small_bundle: Bundle, resamples: int
) -> None:
    expected = f"give 0 \\(no intervals\\) or from {MIN_BOOTSTRAP} to {MAX_BOOTSTRAP:,}"
    with pytest.raises(InputError, match=expected):
        slice_bundle(small_settings, small_bundle, None, ["sex"], bootstrap=resamples)


def test_slices_come_with_the_configured_fairness_summary(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    report = slice_bundle(small_settings, small_bundle, None, ["age"], bootstrap=0)
    assert report.fairness is not None
    assert [f.feature for f in report.fairness.features] == small_settings.fairness.sensitive


def test_missing_data_file_is_named(
    tmp_path: Path, small_settings: Settings, small_bundle: Bundle
) -> None:
    missing = tmp_path / "none.csv"
    with pytest.raises(DataUnavailableError, match=rf"No data file at {missing}.*data/README.md"):
        evaluate_bundle(small_settings, small_bundle, missing)


@pytest.mark.slow
def test_figures_of_the_committed_model_are_the_ones_in_its_bundle(
    census_csv: Path, tmp_path: Path
) -> None:
    """`census evaluate --figures` on the held-out split draws what training drew."""
    root = Path(__file__).resolve().parents[1]
    settings = load_settings(root / "census.toml", environ={})
    settings = settings.model_copy(
        update={"data": settings.data.model_copy(update={"path": census_csv})}
    )
    bundle = load_bundle(settings.artifacts_dir)
    evaluate_bundle(settings, bundle, None, tmp_path)
    bundle_dir = settings.artifacts_dir / bundle.version
    for name in FIGURE_NAMES:
        assert (tmp_path / name).read_bytes() == (bundle_dir / name).read_bytes(), name
