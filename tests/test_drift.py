from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from census_salary.bundle import Bundle
from census_salary.contract import COLUMNS, check_columns, columns_of_frame
from census_salary.drift import (
    MISSING,
    OTHER,
    SHARE_FLOOR,
    DriftCounts,
    DriftProfile,
    FeatureProfile,
    build_profile,
    drift_report,
    level,
    psi,
)


def _tiny_profile() -> DriftProfile:
    columns = {
        "age": np.array([20.0, 30.0, 30.0, 40.0]),
        "sex": np.array(["Male", "Female", None, "Male"], dtype=object),
    }
    return build_profile(
        columns, {"sex": ["Female", "Male"]}, np.array([True, False, False, False]), bins=2
    )


def test_psi_against_a_hand_computed_value() -> None:
    # shares 0.5/0.5 against 0.25/0.75: 0.25 ln 0.5 ... by hand, as below
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(np.array([2, 2]), np.array([1, 3])) == pytest.approx(expected)


def test_psi_of_the_same_shares_is_zero() -> None:
    assert psi(np.array([10, 30]), np.array([1, 3])) == 0.0


def test_psi_floors_an_empty_bin() -> None:
    expected = (SHARE_FLOOR - 0.5) * math.log(SHARE_FLOOR / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi(np.array([1, 1]), np.array([0, 5])) == pytest.approx(expected)


def test_psi_of_nothing_observed_is_none() -> None:
    assert psi(np.array([1, 1]), np.array([0, 0])) is None


@pytest.mark.parametrize(
    ("value", "expected"), [(0.05, "stable"), (0.2, "moderate"), (0.3, "major"), (None, None)]
)
def test_levels_follow_the_rule_of_thumb(value: float | None, expected: str | None) -> None:
    assert level(value) == expected


def test_profile_bins_numbers_by_the_slices_rule() -> None:
    age = _tiny_profile().features[0]
    # two quantile bins of 20, 30, 30, 40: the median 30 is the edge, closed on the right
    assert (age.labels, age.edges, age.counts) == (["<= 30", "> 30"], [30.0], [3, 1])


def test_profile_bins_categories_with_missing_and_other() -> None:
    sex = _tiny_profile().features[1]
    assert (sex.labels, sex.counts) == (["Female", "Male", MISSING, OTHER], [1, 2, 1, 0])


def test_profile_stores_the_predicted_positive_rate() -> None:
    assert _tiny_profile().predicted_positive_rate == 0.25


def test_zero_is_a_bin_of_its_own_where_most_values_are_0() -> None:
    gain = build_profile({"capital_gain": np.array([0.0, 0, 0, 5, 9])}, {}, np.zeros(5)).features[0]
    assert gain.zero_bin
    assert gain.counts[0] == 3
    assert gain.bins_of(np.array([0.0, 1.0, 100.0])).tolist()[0] == 0


def test_counting_puts_unseen_values_in_the_edge_and_other_bins() -> None:
    profile = _tiny_profile()
    counts = profile.count(
        {
            "age": np.array([5.0, 99.0, 30.0]),
            "sex": np.array(["Martian", None, "Male"], dtype=object),
        }
    )
    assert counts["age"].tolist() == [2, 1]
    assert counts["sex"].tolist() == [0, 1, 1, 1]


def test_report_compares_counts_with_training() -> None:
    profile = _tiny_profile()
    counts = DriftCounts(profile)
    counts.add({"age": np.array([35.0, 50.0]), "sex": np.array(["Male"] * 2)}, np.array([1, 0]))
    report = counts.report("v1")
    age = report.features[0]
    assert age.psi == pytest.approx(psi(np.array([3, 1]), np.array([0, 2])))
    assert (report.rows, report.predicted_positive_rate) == (2, 0.5)
    assert report.reference_positive_rate == 0.25
    assert [b.observed_rows for b in age.bins] == [0, 2]
    assert [f.feature for f in report.drifted(0.25)] == ["age", "sex"]


def test_report_of_no_rows_has_no_psi() -> None:
    report = drift_report(_tiny_profile(), {}, 0, "v1")
    assert report.rows == 0
    assert report.predicted_positive_rate is None
    assert all(f.psi is None for f in report.features)


def test_a_feature_profile_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        FeatureProfile.model_validate(
            {"feature": "age", "kind": "number", "labels": [], "counts": [], "raw": 1}
        )


def _report_of(bundle: Bundle, frame: pd.DataFrame) -> dict[str, float | None]:
    assert bundle.profile is not None
    checked = check_columns(columns_of_frame(frame))
    counts = DriftCounts(bundle.profile)
    counts.add(checked.columns, bundle.probabilities(checked.columns) >= bundle.threshold)
    return {f.feature: f.psi for f in counts.report(bundle.version).features}


def test_the_bundle_profile_covers_every_feature(small_bundle: Bundle) -> None:
    assert small_bundle.profile is not None
    assert [f.feature for f in small_bundle.profile.features] == COLUMNS
    assert small_bundle.profile.rows == small_bundle.metadata.data.rows_train


def test_a_resample_of_the_data_shows_no_drift(
    small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    resample = sample_frame.sample(n=2000, replace=True, random_state=1)
    report = _report_of(small_bundle, resample)
    assert max(v for v in report.values() if v is not None) < 0.1, report


def test_only_ages_over_60_drift_on_age(small_bundle: Bundle, sample_frame: pd.DataFrame) -> None:
    older = sample_frame[sample_frame["age"].astype(int) > 60]
    report = _report_of(small_bundle, older)
    assert (report["age"] or 0) > 0.25, report
    assert max(report, key=lambda name: report[name] or 0) == "age", report
