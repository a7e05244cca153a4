"""The fairness summary: how the model's selection rate and errors differ between the groups
of each sensitive feature (`[fairness] sensitive`), with bootstrap intervals, judged against
the limits in `[fairness]`.

The measures are Fairlearn's (a test checks them against it): the demographic parity
difference is the highest group selection rate minus the lowest, and the ratio the lowest
over the highest; the false positive (negative) rate gap is the highest group false
positive (negative) rate minus the lowest; the equalized-odds difference is the larger of
the two gaps (the true positive rates differ as the false negative rates do). Groups under
`[slices] min_rows` rows are left out and named, and a group's false positive (negative)
rate is only compared when at least `min_rows` of its rows earn <=50K (>50K): with five
people who earn >50K, a group's false negative rate is mostly noise. A measure breaches
its limit when its whole interval lies beyond it (without a bootstrap, when its value
does); it is unclear when the interval straddles the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel

from census_salary.bootstrap import (
    RATES,
    GroupCounts,
    Interval,
    defined,
    divide,
    group_counts,
    intervals,
)
from census_salary.config import FairnessSettings
from census_salary.errors import GateError
from census_salary.slicing import Group, groups_of

if TYPE_CHECKING:
    import pandas as pd

DisparityName = Literal[
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "false_positive_rate_gap",
    "false_negative_rate_gap",
]
GroupRateName = Literal["selection_rate", "false_positive_rate", "false_negative_rate"]
GROUP_RATES: tuple[GroupRateName, ...] = (
    "selection_rate",
    "false_positive_rate",
    "false_negative_rate",
)
Bound = Literal["max", "min"]
Verdict = Literal["within", "breach", "unclear", "undefined"]
# Each measure's limit in [fairness], and whether the measure may be at most or at least it.
LIMITS: dict[DisparityName, tuple[str, Bound]] = {
    "demographic_parity_difference": ("max_demographic_parity_difference", "max"),
    "demographic_parity_ratio": ("min_demographic_parity_ratio", "min"),
    "equalized_odds_difference": ("max_equalized_odds_difference", "max"),
    "false_positive_rate_gap": ("max_false_positive_rate_gap", "max"),
    "false_negative_rate_gap": ("max_false_negative_rate_gap", "max"),
}


class GroupRates(BaseModel):
    """One group of a sensitive feature: its rows and rates, with their intervals."""

    value: str
    rows: int
    positives: int  # rows that earn >50K
    # None where the rate's denominator (rows; rows <=50K; rows >50K) is under min_rows.
    selection_rate: float | None
    false_positive_rate: float | None
    false_negative_rate: float | None
    intervals: dict[GroupRateName, Interval] = {}


class Disparity(BaseModel):
    """One fairness measure of one feature, its interval, and its verdict against the limit."""

    name: DisparityName
    value: float | None
    interval: Interval | None = None
    limit: float
    bound: Bound  # "max": the value may be at most the limit; "min": at least
    verdict: Verdict
    high: str | None = None  # the group with the highest rate behind the value
    low: str | None = None  # the group with the lowest

    @property
    def setting(self) -> str:
        return LIMITS[self.name][0]


class FeatureFairness(BaseModel):
    feature: str
    groups: list[GroupRates]  # the groups compared (at least min_rows rows each)
    left_out: list[str] = []  # groups under min_rows rows
    disparities: list[Disparity]

    def disparity(self, name: DisparityName) -> Disparity:
        return next(d for d in self.disparities if d.name == name)

    def group(self, value: str) -> GroupRates:
        return next(g for g in self.groups if g.value == value)


class FairnessSummary(BaseModel):
    features: list[FeatureFairness]
    min_rows: int
    bootstrap: int = 0  # resamples behind the intervals; 0: none

    def breaches(self) -> list[tuple[str, Disparity]]:
        """(feature, measure) for every measure whose interval lies wholly beyond its limit."""
        return [
            (f.feature, d) for f in self.features for d in f.disparities if d.verdict == "breach"
        ]

    def check(self) -> None:
        """Raise GateError when a measure breaches its limit."""
        breaches = self.breaches()
        if breaches:
            said = "; ".join(
                f"{feature}: {d.name} {d.value:.3f}"
                + (f" (95% CI {d.interval.low:.3f}-{d.interval.high:.3f})" if d.interval else "")
                + (" above " if d.bound == "max" else " below ")
                + f"{d.setting} = {d.limit}"
                for feature, d in breaches
                if d.value is not None
            )
            raise GateError(
                f"Fairness limits breached: {said}. Change the limits under [fairness] in "
                "census.toml, or drop --fail-on-breach to report without failing."
            )


def fairness_summary(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    settings: FairnessSettings,
    min_rows: int,
    *,
    bins: int = 4,
    bootstrap: int = 0,
    seed: int = 0,
) -> FairnessSummary:
    """Compare the groups of each feature in `settings.sensitive` (see the module)."""
    per_feature = [(name, groups_of(frame, name, bins)) for name in settings.sensitive]
    masks = [g.mask for _, groups in per_feature for g in groups]
    counts = group_counts(
        y_true,
        np.asarray(probabilities) >= threshold,
        np.stack(masks, axis=1) if masks else np.zeros((len(frame), 0), dtype=bool),
        bootstrap,
        seed,
    )
    return summarise(per_feature, counts, settings, min_rows)


def summarise(
    per_feature: Sequence[tuple[str, list[Group]]],
    counts: GroupCounts,
    settings: FairnessSettings,
    min_rows: int,
) -> FairnessSummary:
    """The summary from the counts of every group, in `per_feature` order (the columns of
    `counts`; its other rows are resamples)."""
    features = []
    start = 0
    for feature, groups in per_feature:
        own = counts.columns(slice(start, start + len(groups)))
        features.append(_feature(feature, groups, own, settings, min_rows))
        start += len(groups)
    return FairnessSummary(features=features, min_rows=min_rows, bootstrap=counts.resamples)


@dataclass(frozen=True)
class _Compared:
    """One rate of the groups compared on it: (1 + resamples, groups), row 0 the sample."""

    values: np.ndarray
    labels: list[str]

    def spread(self) -> np.ndarray:
        """Highest minus lowest group rate in each row (NaN if any is; all NaN with fewer
        than two groups)."""
        if len(self.labels) < 2:
            return np.full(self.values.shape[0], np.nan)
        return self.values.max(axis=1) - self.values.min(axis=1)

    def ratio(self) -> np.ndarray:
        """Lowest over highest group rate in each row."""
        if len(self.labels) < 2:
            return np.full(self.values.shape[0], np.nan)
        return divide(self.values.min(axis=1), self.values.max(axis=1))

    def extremes(self) -> dict[str, str]:
        """The groups with the highest and lowest rate in the sample."""
        sample = self.values[0] if len(self.labels) >= 2 else np.array([np.nan])
        if np.isnan(sample).any():
            return {}
        return {
            "high": self.labels[int(np.argmax(sample))],
            "low": self.labels[int(np.argmin(sample))],
        }


def _feature(
    feature: str,
    groups: list[Group],
    counts: GroupCounts,
    settings: FairnessSettings,
    min_rows: int,
) -> FeatureFairness:
    sizes = [int(g.mask.sum()) for g in groups]
    kept = [i for i, size in enumerate(sizes) if size >= min_rows]
    counts = counts.columns(kept)
    labels = [groups[i].value for i in kept]
    compared: dict[GroupRateName, _Compared] = {}
    shown: dict[GroupRateName, np.ndarray] = {}
    for name in GROUP_RATES:
        # A rate is judged where its denominator (rows; rows <=50K; rows >50K) is big enough.
        _, denominator = RATES[name](counts)
        sized = denominator[0] >= min_rows
        values = counts.rate(name)
        shown[name] = np.where(sized, values, np.nan)
        compared[name] = _Compared(
            values[:, sized], [x for x, ok in zip(labels, sized, strict=True) if ok]
        )
    bounds = {name: intervals(values) for name, values in shown.items()}
    positives, _ = RATES["positive_rate"](counts)
    return FeatureFairness(
        feature=feature,
        groups=[
            GroupRates(
                value=label,
                rows=sizes[i],
                positives=int(positives[0, j]),
                **{name: defined(shown[name][0, j]) for name in GROUP_RATES},
                intervals={
                    name: bounds[name][j] for name in GROUP_RATES if bounds[name][j] is not None
                },
            )
            for j, (i, label) in enumerate(zip(kept, labels, strict=True))
        ],
        left_out=[g.value for g, size in zip(groups, sizes, strict=True) if size < min_rows],
        disparities=[
            _disparity(name, values, extremes, settings)
            for name, (values, extremes) in _measures(compared).items()
        ],
    )


def _measures(
    compared: dict[GroupRateName, _Compared],
) -> dict[DisparityName, tuple[np.ndarray, dict[str, str]]]:
    """Each measure in the sample (row 0) and each resample, and the groups behind it."""
    selection = compared["selection_rate"]
    fpr, fnr = compared["false_positive_rate"], compared["false_negative_rate"]
    fpr_gap, fnr_gap = fpr.spread(), fnr.spread()
    # The groups behind equalized odds are those of whichever gap is the larger.
    odds = fnr if fnr_gap[0] > fpr_gap[0] else fpr
    return {
        "demographic_parity_difference": (selection.spread(), selection.extremes()),
        "demographic_parity_ratio": (selection.ratio(), selection.extremes()),
        "equalized_odds_difference": (np.maximum(fpr_gap, fnr_gap), odds.extremes()),
        "false_positive_rate_gap": (fpr_gap, fpr.extremes()),
        "false_negative_rate_gap": (fnr_gap, fnr.extremes()),
    }


def _disparity(
    name: DisparityName,
    values: np.ndarray,
    extremes: dict[str, str],
    settings: FairnessSettings,
) -> Disparity:
    setting, bound = LIMITS[name]
    limit = float(getattr(settings, setting))
    value = defined(values[0])
    interval = intervals(values[:, None])[0]
    return Disparity(
        name=name,
        value=value,
        interval=interval,
        limit=limit,
        bound=bound,
        verdict=_verdict(value, interval, limit, bound),
        **(extremes if value is not None else {}),
    )


def _verdict(value: float | None, interval: Interval | None, limit: float, bound: Bound) -> Verdict:
    if value is None:
        return "undefined"
    low, high = (interval.low, interval.high) if interval is not None else (value, value)
    beyond = low > limit if bound == "max" else high < limit
    inside = high <= limit if bound == "max" else low >= limit
    return "breach" if beyond else "within" if inside else "unclear"
