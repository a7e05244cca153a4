"""The fairness summary against hand-computed values, and against Fairlearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)

from census_salary.audit import held_out
from census_salary.bundle import Bundle
from census_salary.config import FairnessSettings, Settings
from census_salary.errors import GateError
from census_salary.fairness import FairnessSummary, fairness_summary

# Group A: 4 of 10 earn >50K; predicted: 3 of them and 1 of the others.
# Group B: 2 of 10 earn >50K; predicted: 1 of them and none of the others.
Y = [*(1, 1, 1, 1, 0, 0, 0, 0, 0, 0), *(1, 1, 0, 0, 0, 0, 0, 0, 0, 0)]
PRED = [*(1, 1, 1, 0, 1, 0, 0, 0, 0, 0), *(1, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
SEX = ["A"] * 10 + ["B"] * 10


def summary(
    copies: int = 1,
    min_rows: int = 1,
    bootstrap: int = 0,
    sex: list[str] = SEX,
    y: list[int] = Y,
    pred: list[int] = PRED,
    **limits: float,
) -> FairnessSummary:
    frame = pd.DataFrame({"sex": sex * copies})
    settings = FairnessSettings(sensitive=["sex"], **limits)
    return fairness_summary(
        frame,
        np.array(y * copies),
        np.array(pred * copies, dtype=float),
        0.5,
        settings,
        min_rows,
        bootstrap=bootstrap,
        seed=0,
    )


def test_group_rates_by_hand() -> None:
    (sex,) = summary().features
    a, b = sex.group("A"), sex.group("B")
    assert (a.rows, a.positives, a.selection_rate) == (10, 4, 0.4)
    assert (a.false_positive_rate, a.false_negative_rate) == (pytest.approx(1 / 6), 0.25)
    assert (b.selection_rate, b.false_positive_rate, b.false_negative_rate) == (0.1, 0.0, 0.5)


@pytest.mark.parametrize(
    ("measure", "value", "high", "low"),
    [
        ("demographic_parity_difference", 0.3, "A", "B"),
        ("demographic_parity_ratio", 0.25, "A", "B"),
        ("false_positive_rate_gap", 1 / 6, "A", "B"),
        ("false_negative_rate_gap", 0.25, "B", "A"),
        ("equalized_odds_difference", 0.25, "B", "A"),  # the larger gap, and its groups
    ],
)
def test_measures_by_hand(measure: str, value: float, high: str, low: str) -> None:
    d = summary().features[0].disparity(measure)  # type: ignore[arg-type]
    assert d.value == pytest.approx(value)
    assert (d.high, d.low) == (high, low)


def reference_data(groups: int = 3, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    rows = 3000
    group = rng.choice([f"g{i}" for i in range(groups)], size=rows, p=[0.5, 0.3, 0.2][:groups])
    y = rng.random(rows) < np.where(group == "g0", 0.35, 0.2)
    pred = np.where(y, rng.random(rows) < 0.7, rng.random(rows) < 0.15)
    return group, y, pred


def test_measures_match_fairlearn() -> None:
    group, y, pred = reference_data()
    settings = FairnessSettings(sensitive=["sex"])
    frame = pd.DataFrame({"sex": group})
    (ours,) = fairness_summary(frame, y, pred.astype(float), 0.5, settings, 1).features
    expected = {
        "demographic_parity_difference": demographic_parity_difference(
            y, pred, sensitive_features=group
        ),
        "demographic_parity_ratio": demographic_parity_ratio(y, pred, sensitive_features=group),
        "equalized_odds_difference": equalized_odds_difference(y, pred, sensitive_features=group),
    }
    for name, value in expected.items():
        assert ours.disparity(name).value == pytest.approx(value, abs=1e-12), name  # type: ignore[arg-type]


def test_group_rates_and_gaps_match_fairlearns_metric_frame() -> None:
    group, y, pred = reference_data()
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "false_positive_rate": false_positive_rate,
            "false_negative_rate": false_negative_rate,
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=group,
    )
    settings = FairnessSettings(sensitive=["sex"])
    (ours,) = fairness_summary(
        pd.DataFrame({"sex": group}), y, pred.astype(float), 0.5, settings, 1
    ).features
    for g in ours.groups:
        for name in ("selection_rate", "false_positive_rate", "false_negative_rate"):
            assert getattr(g, name) == pytest.approx(frame.by_group.loc[g.value, name], abs=1e-12)
    gaps = frame.difference()
    assert ours.disparity("false_positive_rate_gap").value == pytest.approx(
        gaps["false_positive_rate"], abs=1e-12
    )
    assert ours.disparity("false_negative_rate_gap").value == pytest.approx(
        gaps["false_negative_rate"], abs=1e-12
    )


def test_the_held_out_split_matches_fairlearn(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    x, y = held_out(small_settings, small_bundle.metadata)
    p = small_bundle.probabilities(x)
    pred = p >= small_bundle.threshold
    settings = FairnessSettings(sensitive=["sex"])
    (sex,) = fairness_summary(x, y.to_numpy(), p, small_bundle.threshold, settings, 1).features
    by = x["sex"].to_numpy()
    assert sex.disparity("demographic_parity_ratio").value == pytest.approx(
        demographic_parity_ratio(y, pred, sensitive_features=by), abs=1e-12
    )
    assert sex.disparity("equalized_odds_difference").value == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=by), abs=1e-12
    )


def test_groups_under_min_rows_are_left_out_and_named() -> None:
    (sex,) = summary(sex=[*SEX[:-2], "C", "C"], min_rows=5).features
    assert [g.value for g in sex.groups] == ["A", "B"]
    assert sex.left_out == ["C"]


def test_a_rate_with_a_small_denominator_is_not_compared() -> None:
    """Group B has 2 people who earn >50K: under min_rows 3, its false negative rate is not
    judged, and one group is left to compare on it."""
    (sex,) = summary(min_rows=3).features
    assert sex.group("B").false_negative_rate is None
    assert sex.group("B").false_positive_rate == 0.0
    assert sex.disparity("false_negative_rate_gap").verdict == "undefined"
    assert sex.disparity("false_positive_rate_gap").value == pytest.approx(1 / 6)


def test_one_group_has_nothing_to_compare() -> None:
    (sex,) = summary(sex=["A"] * 20).features
    assert {d.verdict for d in sex.disparities} == {"undefined"}
    assert {d.value for d in sex.disparities} == {None}


def test_without_a_bootstrap_the_value_is_judged() -> None:
    strict = summary(max_demographic_parity_difference=0.2).features[0]
    lenient = summary(max_demographic_parity_difference=0.4).features[0]
    assert strict.disparity("demographic_parity_difference").verdict == "breach"
    assert lenient.disparity("demographic_parity_difference").verdict == "within"


def test_the_parity_ratio_breaches_below_its_limit() -> None:
    low = summary(min_demographic_parity_ratio=0.3).features[0]
    high = summary(min_demographic_parity_ratio=0.2).features[0]
    assert low.disparity("demographic_parity_ratio").verdict == "breach"
    assert high.disparity("demographic_parity_ratio").verdict == "within"


@pytest.mark.parametrize(
    ("limit", "verdict"), [(0.05, "breach"), (0.3, "unclear"), (0.9, "within")]
)
def test_the_interval_decides_the_verdict(limit: float, verdict: str) -> None:
    s = summary(copies=10, bootstrap=200, max_demographic_parity_difference=limit)
    d = s.features[0].disparity("demographic_parity_difference")
    assert d.interval is not None
    assert d.interval.low < 0.3 < d.interval.high
    assert d.verdict == verdict


def test_a_constant_predictor_has_no_disparity_in_any_resample() -> None:
    s = summary(copies=5, bootstrap=100, pred=[1] * 20)
    sex = s.features[0]
    difference = sex.disparity("demographic_parity_difference")
    ratio = sex.disparity("demographic_parity_ratio")
    assert (difference.value, difference.interval.low, difference.interval.high) == (0, 0, 0)  # type: ignore[union-attr]
    assert (ratio.value, ratio.interval.low, ratio.interval.high) == (1, 1, 1)  # type: ignore[union-attr]


def test_the_gate_names_each_breach_and_its_setting() -> None:
    s = summary(max_demographic_parity_difference=0.2, min_demographic_parity_ratio=0.1)
    with pytest.raises(GateError, match=r"sex: demographic_parity_difference 0\.300 above "):
        s.check()
    with pytest.raises(GateError, match=r"max_demographic_parity_difference = 0\.2.*\[fairness\]"):
        s.check()


def test_the_gate_passes_within_the_limits() -> None:
    lenient = dict.fromkeys(
        [
            "max_demographic_parity_difference",
            "max_equalized_odds_difference",
            "max_false_positive_rate_gap",
            "max_false_negative_rate_gap",
        ],
        1.0,
    )
    summary(min_demographic_parity_ratio=0.0, **lenient).check()
