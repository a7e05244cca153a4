"""Which rows form each slice: the groups of one feature, or of several crossed.

A categorical feature gives one group per category (missing values form their own, `?`).
A numerical one gives quantile bins closed on the right (as `pandas.qcut` makes them)
whose upper edges are values that occur, so no bin is empty: fewer bins where values
repeat. Where most values are 0 (capital_gain, capital_loss), 0 is a bin of its own and
the other values are binned among themselves. Crossing features gives every combination
of their groups that has rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from census_salary.contract import NUMERICAL

if TYPE_CHECKING:
    import pandas as pd

MISSING = "?"
CROSS = " & "  # joins the features, and the values, of a cross-slice


@dataclass(frozen=True)
class Group:
    feature: str  # one feature, or several joined by CROSS
    value: str
    mask: np.ndarray  # which rows belong to it


def groups_of(frame: pd.DataFrame, features: str | Sequence[str], bins: int) -> list[Group]:
    """The groups of one feature, or of the combinations of several (a cross-slice)."""
    names = [features] if isinstance(features, str) else list(features)
    per_feature = [_feature_groups(frame[name], name in NUMERICAL, bins) for name in names]
    groups = []
    for combination in itertools.product(*per_feature):
        mask = np.logical_and.reduce([mask for _, mask in combination])
        if mask.any():
            value = CROSS.join(label for label, _ in combination)
            groups.append(Group(CROSS.join(names), value, mask))
    return groups


def _feature_groups(values: pd.Series, numerical: bool, bins: int) -> list[tuple[str, np.ndarray]]:
    if numerical:
        return _bins(values.to_numpy(dtype=float), bins)
    labels = values.fillna(MISSING).astype(str).to_numpy()
    return [(label, labels == label) for label in sorted(set(labels))]


def _bins(values: np.ndarray, bins: int) -> list[tuple[str, np.ndarray]]:
    """Quantile bins closed on the right, each up to a quantile that occurs (so it holds at
    least that value); 0 alone where most values are 0."""
    if values.size == 0:
        return []
    groups: list[tuple[str, np.ndarray]] = []
    rest = np.ones(values.size, dtype=bool)
    zero_bin = bool(np.mean(values == 0) > 0.5)
    if zero_bin:
        rest = values != 0
        groups.append(("0", ~rest))
        if not rest.any():
            return groups
    part = values[rest]
    lowest, highest = float(part.min()), float(part.max())
    quantiles = np.quantile(part, np.arange(1, bins) / bins, method="inverted_cdf")
    edges = [float(edge) for edge in np.unique(quantiles) if edge < highest]
    if not edges:
        label = _number(lowest) if lowest == highest else f"[{_number(lowest)}, {_number(highest)}]"
        return [*groups, (label, rest)]
    labels = [
        _first_label(edges[0], lowest, zero_bin),
        *(f"({_number(low)}, {_number(high)}]" for low, high in itertools.pairwise(edges)),
        f"> {_number(edges[-1])}",
    ]
    bounds = [-np.inf, *edges, np.inf]
    for label, (low, high) in zip(labels, itertools.pairwise(bounds), strict=True):
        groups.append((label, rest & (values > low) & (values <= high)))
    return groups


def _first_label(edge: float, lowest: float, zero_bin: bool) -> str:
    """The first bin is open below, but says so when 0 was taken out of it."""
    if not zero_bin:
        return f"<= {_number(edge)}"
    if lowest > 0:
        return f"(0, {_number(edge)}]"
    return f"[{_number(lowest)}, {_number(edge)}] except 0"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"
