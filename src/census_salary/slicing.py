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
    """The groups of `QuantileBins.of(values, bins)`: each bin's label and its rows."""
    binning = QuantileBins.of(values, bins)
    if binning is None:
        return []
    index = binning.index(values)
    return [(label, index == i) for i, label in enumerate(binning.labels)]


@dataclass(frozen=True)
class QuantileBins:
    """The numerical binning rule, learned from some values and applied to any others.

    Bins are closed on the right: bin i holds the values in (edges[i-1], edges[i]], the
    first is open below and the last above, so every number has a bin. With `zero_bin`,
    bin 0 holds exactly 0 and the bins over the edges follow it. Drift profiles store
    these, to count served rows in the training data's bins.
    """

    edges: tuple[float, ...]  # upper edges of all but the last bin (0 excepted)
    zero_bin: bool
    labels: tuple[str, ...]  # one per bin, in order

    @classmethod
    def of(cls, values: np.ndarray, bins: int) -> QuantileBins | None:
        """Quantile bins closed on the right, each up to a quantile that occurs (so it
        holds at least that value); 0 alone where most values are 0. None for no values."""
        if values.size == 0:
            return None
        zero_bin = bool(np.mean(values == 0) > 0.5)
        part = values[values != 0] if zero_bin else values
        head = ("0",) if zero_bin else ()
        if part.size == 0:
            return cls((), zero_bin, head)
        lowest, highest = float(part.min()), float(part.max())
        quantiles = np.quantile(part, np.arange(1, bins) / bins, method="inverted_cdf")
        edges = tuple(float(edge) for edge in np.unique(quantiles) if edge < highest)
        if not edges:
            only = (
                _number(lowest) if lowest == highest else f"[{_number(lowest)}, {_number(highest)}]"
            )
            return cls(edges, zero_bin, (*head, only))
        labels = (
            _first_label(edges[0], lowest, zero_bin),
            *(f"({_number(low)}, {_number(high)}]" for low, high in itertools.pairwise(edges)),
            f"> {_number(edges[-1])}",
        )
        return cls(edges, zero_bin, (*head, *labels))

    def index(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin, vectorised."""
        found = np.searchsorted(np.asarray(self.edges, dtype=float), values, side="left")
        if self.zero_bin:
            return np.where(values == 0, 0, found + 1)
        return found


def _first_label(edge: float, lowest: float, zero_bin: bool) -> str:
    """The first bin is open below, but says so when 0 was taken out of it."""
    if not zero_bin:
        return f"<= {_number(edge)}"
    if lowest > 0:
        return f"(0, {_number(edge)}]"
    return f"[{_number(lowest)}, {_number(edge)}] except 0"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"
