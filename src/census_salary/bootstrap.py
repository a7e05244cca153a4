"""Confusion counts and the rates made of them, for a sample and its bootstrap resamples.

Each rate (precision, recall, F1, ...) is written once, in `RATES`, as a numerator and a
denominator of confusion counts; `evaluate`, the slice metrics and the fairness summary all
take it from here, for one confusion matrix or for arrays of them.

The bootstrap resamples the whole evaluation set jointly (rows drawn with replacement, as
many as it has), so every slice and every difference between groups is measured on the
same resamples. The counts of every group in every resample come from one matrix product
of resample weights (how often each row was drawn) and the groups' indicators of the four
confusion cells. Intervals are the 2.5th and 97.5th percentiles over the resamples. The
same seed gives the same resamples, and so the same intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

CONFIDENCE = 0.95
# Row draws made at a time: bounds memory (16 MB of indices), and blocks of this size are
# the fastest here.
_DRAWS_PER_BLOCK = 2_000_000
# Draws counted at a time: the counts (8 bytes each) stay in the cache as bincount adds to
# them at random places, 4-5x faster than counting a whole block at once.
_COUNTS_PER_PASS = 250_000

RateName = Literal[
    "positive_rate",
    "selection_rate",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "false_negative_rate",
]


class Confusion(Protocol):
    """Confusion counts: numbers (a `ConfusionMatrix`) or arrays of them (`GroupCounts`)."""

    @property
    def true_negative(self) -> Any: ...
    @property
    def false_positive(self) -> Any: ...
    @property
    def false_negative(self) -> Any: ...
    @property
    def true_positive(self) -> Any: ...


def _rows(c: Confusion) -> Any:
    return c.true_negative + c.false_positive + c.false_negative + c.true_positive


# Every rate as (numerator, denominator): undefined where the denominator is 0.
RATES: dict[RateName, Callable[[Confusion], tuple[Any, Any]]] = {
    "positive_rate": lambda c: (c.true_positive + c.false_negative, _rows(c)),
    "selection_rate": lambda c: (c.true_positive + c.false_positive, _rows(c)),
    "precision": lambda c: (c.true_positive, c.true_positive + c.false_positive),
    "recall": lambda c: (c.true_positive, c.true_positive + c.false_negative),
    "f1": lambda c: (
        2 * c.true_positive,
        2 * c.true_positive + c.false_positive + c.false_negative,
    ),
    "false_positive_rate": lambda c: (c.false_positive, c.false_positive + c.true_negative),
    "false_negative_rate": lambda c: (c.false_negative, c.false_negative + c.true_positive),
}


def cells(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Which confusion cell each row falls in: a (rows, 4) boolean array whose columns are
    true negative, false positive, false negative, true positive."""
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(y_pred).astype(bool)
    return np.stack([~y & ~pred, ~y & pred, y & ~pred, y & pred], axis=1)


def divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ratio; NaN where there is nothing to divide by, never a silent 0."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def defined(value: float) -> float | None:
    """A rate for a result model: None where it is undefined (NaN)."""
    return None if np.isnan(value) else float(value)


class Interval(BaseModel):
    """A 95% bootstrap percentile interval."""

    model_config = ConfigDict(frozen=True)

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class GroupCounts:
    """Confusion counts of groups of rows, each a (1 + resamples, groups) array: row 0 is
    the sample itself, the other rows its bootstrap resamples."""

    true_negative: np.ndarray
    false_positive: np.ndarray
    false_negative: np.ndarray
    true_positive: np.ndarray

    @property
    def resamples(self) -> int:
        return self.true_positive.shape[0] - 1

    def rate(self, name: RateName) -> np.ndarray:
        """The rate in the sample (row 0) and each resample; NaN where undefined."""
        return divide(*RATES[name](self))

    def columns(self, chosen: slice | list[int]) -> GroupCounts:
        """The counts of some of the groups only."""
        return GroupCounts(
            self.true_negative[:, chosen],
            self.false_positive[:, chosen],
            self.false_negative[:, chosen],
            self.true_positive[:, chosen],
        )


def group_counts(
    y_true: np.ndarray, y_pred: np.ndarray, masks: np.ndarray, resamples: int, seed: int
) -> GroupCounts:
    """Confusion counts of each group (a column of the (rows, groups) boolean `masks`) in
    the sample and in `resamples` bootstrap resamples of all rows, drawn with `seed`."""
    in_cell = cells(y_true, y_pred)
    rows, groups = masks.shape
    # float32 adds whole numbers exactly below 2**24, and is twice as fast as float64.
    dtype = np.float32 if rows < 2**24 else np.float64
    # Column 4 * group + cell: 1 where a row belongs to the group and falls in the cell.
    indicators = (masks[:, :, None] & in_cell[:, None, :]).reshape(rows, groups * 4).astype(dtype)
    blocks = [indicators.sum(axis=0, dtype=np.float64)[None, :]]
    rng = np.random.default_rng(seed)
    block = max(1, _DRAWS_PER_BLOCK // max(rows, 1))
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        drawn = rng.integers(0, rows, size=(size, rows))
        weights = np.empty((size, rows), dtype=dtype)
        step = max(1, _COUNTS_PER_PASS // max(rows, 1))
        for first in range(0, size, step):
            part = drawn[first : first + step]
            offsets = (np.arange(len(part)) * rows)[:, None]
            counts = np.bincount((part + offsets).ravel(), minlength=part.size)
            weights[first : first + step] = counts.reshape(part.shape)
        blocks.append(weights @ indicators)
    counts = np.concatenate(blocks).astype(np.float64).reshape(1 + resamples, groups, 4)
    return GroupCounts(*(counts[:, :, cell] for cell in range(4)))


def intervals(values: np.ndarray) -> list[Interval | None]:
    """The percentile interval of each column of a (1 + resamples, columns) array over its
    resamples (row 0, the sample, is left out); None where no resample defines it."""
    if values.shape[0] < 2:
        return [None] * values.shape[1]
    draws = np.sort(values[1:], axis=0)  # NaN sorts last
    defined_draws = np.sum(~np.isnan(draws), axis=0)
    columns = np.arange(draws.shape[1])
    tail = (1 - CONFIDENCE) / 2
    bounds = []
    for q in (tail, 1 - tail):
        # numpy's default ("linear") percentile, among the defined resamples only; done
        # by hand because nanpercentile loops over the columns where a NaN occurs.
        at = np.maximum(defined_draws - 1, 0) * q
        below = np.floor(at).astype(int)
        above = np.minimum(below + 1, np.maximum(defined_draws - 1, 0))
        low, high = draws[below, columns], draws[above, columns]
        bounds.append(low + (high - low) * (at - below))
    return [
        Interval(low=float(low), high=float(high)) if n else None
        for low, high, n in zip(bounds[0], bounds[1], defined_draws, strict=True)
    ]
