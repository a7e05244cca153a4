"""A gradient-boosted model as plain arrays, scored with numpy alone.

`census train` exports the fitted HistGradientBoostingClassifier into a `trees.npz`
file beside `model.skops` (see `model.export_trees`, which checks the export gives
exactly the pipeline's probabilities on every training and held-out row before it is
saved). `census serve` scores from this file: it needs neither scikit-learn, scipy,
pandas nor skops, so the server is ready in a fraction of the time and memory, and
the file is read with `numpy.load(allow_pickle=False)`: arrays only, never code.

The layout. Each of the model's columns has a few *bins*: a category's bin is its
index in the model's vocabulary; a number's bin is how many of the split thresholds
on its column lie below it; the last bin of every column is "missing or unknown".
Every node of every tree becomes one row of `go_right[node, bin]` (0 = left child,
1 = right child) and the two children of a node are stored side by side, so one
step for all (tree, row) pairs at once is `node = child[node] + go_right[node, bin]`.
The probability is the model's baseline plus the leaves' values, added tree by tree
in the model's order, through the logistic function computed as scikit-learn does.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from census_salary.errors import ModelError
from census_salary.schema import CensusRow

_FORMAT = 1


@dataclass(frozen=True, eq=False)
class TreeTables:
    """The arrays of an exported model; `probabilities` scores rows with them."""

    categorical: tuple[str, ...]
    numerical: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]  # per categorical column: known values
    category_bins: tuple[np.ndarray, ...]  # per categorical column: the bin of each value
    cuts: tuple[np.ndarray, ...]  # per numerical column: split thresholds, ascending
    feature: np.ndarray  # node -> column (categorical columns first)
    child: np.ndarray  # node -> its left child (right = left + 1); a leaf -> itself
    go_right: np.ndarray  # (node, bin) -> 0 or 1
    value: np.ndarray  # node -> leaf value (0 for split nodes)
    roots: np.ndarray  # tree -> its root node, in the model's order
    baseline: float
    _is_leaf: np.ndarray = field(init=False, repr=False)
    _codes: list[dict[str, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._check()
        object.__setattr__(self, "_is_leaf", self.child == np.arange(len(self.child)))
        codes = [
            dict(zip(words, bins.tolist(), strict=True))
            for words, bins in zip(self.vocabularies, self.category_bins, strict=True)
        ]
        object.__setattr__(self, "_codes", codes)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.categorical + self.numerical

    def missing_bins(self) -> list[int]:
        """The "missing or unknown" bin of each column (its last)."""
        return [len(words) for words in self.vocabularies] + [len(cuts) + 1 for cuts in self.cuts]

    # --- scoring ---------------------------------------------------------------------

    def probabilities(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """P(>50K) for rows given column by column (None or NaN for a missing value)."""
        return self._probabilities_of_bins(self._bins(columns))

    def probabilities_of_rows(self, rows: Sequence[CensusRow]) -> np.ndarray:
        return self.probabilities(
            {name: [getattr(row, name) for row in rows] for name in self.columns}
        )

    def _bins(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        n_rows = len(columns[self.columns[0]]) if self.columns else 0
        bins = np.empty((n_rows, len(self.columns)), dtype=np.intp)
        missing = self.missing_bins()
        for j, (name, codes) in enumerate(zip(self.categorical, self._codes, strict=True)):
            bins[:, j] = [codes.get(value, missing[j]) for value in columns[name]]
        for j, (name, cuts) in enumerate(
            zip(self.numerical, self.cuts, strict=True), start=len(self.categorical)
        ):
            values = np.asarray(columns[name], dtype=np.float64)
            bins[:, j] = np.where(
                np.isnan(values), missing[j], np.searchsorted(cuts, values, side="left")
            )
        return bins

    def _probabilities_of_bins(self, bins: np.ndarray) -> np.ndarray:
        n_rows, width = bins.shape
        if n_rows == 0:
            return np.empty(0)
        flat = bins.ravel()
        node = np.repeat(self.roots, n_rows)  # one walker per (tree, row), tree-major
        row_start = np.tile(np.arange(n_rows, dtype=np.intp) * width, len(self.roots))
        is_leaf = self._is_leaf
        walking = np.flatnonzero(~is_leaf[node])
        while walking.size:  # each step goes one level down, so this ends
            at = node[walking]
            step = self.go_right[at, flat[row_start[walking] + self.feature[at]]]
            node[walking] = self.child[at] + step
            walking = walking[~is_leaf[node[walking]]]
        leaves = self.value[node].reshape(len(self.roots), n_rows)
        raw = np.full(n_rows, self.baseline)
        for tree in leaves:  # in the model's order, as scikit-learn adds them
            raw += tree
        return np.array([_expit(x) for x in raw.tolist()])

    def unknown_categories(self, row: CensusRow) -> list[str]:
        """Fields whose value the model never saw in training (scored as missing)."""
        return [
            name
            for name, codes in zip(self.categorical, self._codes, strict=True)
            if (value := getattr(row, name)) is not None and value not in codes
        ]

    # --- the file ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT),
            "categorical": np.array(self.categorical, dtype=str),
            "numerical": np.array(self.numerical, dtype=str),
            "feature": self.feature.astype(np.int32),
            "child": self.child.astype(np.int32),
            "go_right": self.go_right.astype(np.uint8),
            "value": self.value,
            "roots": self.roots.astype(np.int32),
            "baseline": np.array(self.baseline),
        }
        for i, (words, bins) in enumerate(zip(self.vocabularies, self.category_bins, strict=True)):
            arrays[f"vocabulary_{i}"] = np.array(words, dtype=str)
            arrays[f"category_bins_{i}"] = bins.astype(np.int32)
        for i, cuts in enumerate(self.cuts):
            arrays[f"cuts_{i}"] = cuts
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> TreeTables:
        """Read a `trees.npz`; anything but a well-formed export is a ModelError."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return cls._from_arrays({name: npz[name] for name in npz.files})
        except (KeyError, OSError, TypeError, ValueError, zipfile.BadZipFile) as exc:
            raise ModelError(
                f"{source} is not a valid tree export ({exc}); run `census train`."
            ) from None

    @classmethod
    def _from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> TreeTables:
        if int(arrays["format"]) != _FORMAT:
            raise ValueError(f"format {int(arrays['format'])}, expected {_FORMAT}")
        categorical = tuple(str(name) for name in arrays["categorical"])
        numerical = tuple(str(name) for name in arrays["numerical"])
        return cls(
            categorical=categorical,
            numerical=numerical,
            vocabularies=tuple(
                tuple(str(word) for word in arrays[f"vocabulary_{i}"])
                for i in range(len(categorical))
            ),
            category_bins=tuple(
                arrays[f"category_bins_{i}"].astype(np.intp) for i in range(len(categorical))
            ),
            cuts=tuple(arrays[f"cuts_{i}"].astype(np.float64) for i in range(len(numerical))),
            feature=arrays["feature"].astype(np.intp),
            child=arrays["child"].astype(np.intp),
            go_right=arrays["go_right"].astype(np.uint8),
            value=arrays["value"].astype(np.float64),
            roots=arrays["roots"].astype(np.intp),
            baseline=float(arrays["baseline"]),
        )

    def _check(self) -> None:
        """Refuse arrays that could index out of bounds or walk in circles."""
        n_nodes, n_columns = len(self.child), len(self.columns)
        nodes = np.arange(n_nodes)
        leaf = self.child == nodes
        checks = {
            "one vocabulary and bin list per categorical column": len(self.vocabularies)
            == len(self.category_bins)
            == len(self.categorical)
            and all(
                len(words) == len(bins) and ((bins >= 0) & (bins < len(words))).all()
                for words, bins in zip(self.vocabularies, self.category_bins, strict=True)
            ),
            "ascending cuts per numerical column": len(self.cuts) == len(self.numerical)
            and all(np.all(np.diff(cuts) > 0) for cuts in self.cuts),
            "node arrays of one length": self.feature.shape
            == self.value.shape
            == self.child.shape
            == (n_nodes,)
            and self.go_right.ndim == 2
            and len(self.go_right) == n_nodes,
            "every column has a bin column": self.go_right.shape[1]
            >= max(self.missing_bins(), default=0) + 1,
            "directions are 0 or 1": bool(np.isin(self.go_right, (0, 1)).all()),
            "features name columns": bool(((self.feature >= 0) & (self.feature < n_columns)).all()),
            "children come after their parent": bool(
                (leaf | ((self.child > nodes) & (self.child + 1 < n_nodes))).all()
            ),
            "leaves never turn right": not self.go_right[leaf].any(),
            "roots are nodes": bool(((self.roots >= 0) & (self.roots < n_nodes)).all()),
            "finite values": bool(np.isfinite(self.value).all()) and math.isfinite(self.baseline),
        }
        broken = [name for name, ok in checks.items() if not ok]
        if broken:
            raise ValueError("inconsistent arrays: " + "; ".join(broken))


def _expit(x: float) -> float:
    """1 / (1 + e^-x) with the C library's exp, as scikit-learn's `expit` computes it.

    numpy's vectorised exp may differ in the last bit, and these numbers must be the
    pipeline's exactly.
    """
    try:
        return 1.0 / (1.0 + math.exp(-x))
    except OverflowError:  # e^-x beyond the float range: the probability rounds to 0
        return 0.0
