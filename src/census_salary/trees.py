"""A gradient-boosted model as plain arrays, scored with numpy alone.

`census train` exports the fitted HistGradientBoostingClassifier into a `trees.npz`
file beside `model.skops` (see `tree_export.export_trees`, which checks that the file, read
back, gives exactly the pipeline's probabilities on every row of the data and on probe
rows before it is saved). Every command scores from this file when the bundle has it
(`bundle.load_bundle`): it needs neither scikit-learn, scipy, pandas nor skops, so the
server is ready in a fraction of the time and memory, and the file is read with
`numpy.load(allow_pickle=False)`: arrays only, never code, and checked to be a
well-formed forest of bounded size and depth.

The layout. Each of the model's columns has a few *bins*: a category's bin is the index
the model's trees test it by; a number's bin is how many of the split thresholds on its
column lie below it; the last bin of every column is "missing or unknown".
Every node of every tree becomes one row of `go_right[node, bin]` (0 = left child,
1 = right child), and the two children of a node are stored side by side.
At load the forest is turned into bit masks of leaves (`_LeafMasks`, QuickScorer), so
a row's leaf in every tree is an AND over its columns' masks and a lowest set bit: a
few vectorised operations per block of rows, with no loop over depth.
The probability is the model's baseline plus the leaves' values, added tree by tree
in the model's order, through the logistic function computed as scikit-learn does.

Since format 2 the file also holds each node's *cover*: how many training rows reached
it. Scoring does not use it; `explain` needs it to weigh a split's two sides when a
column's value is unknown. Format 1 files (without covers) still load and score.
"""

from __future__ import annotations

import bisect
import io
import itertools
import math
import zipfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from census_salary.contract import Columns, distinct, row_count
from census_salary.errors import ModelError

_FORMAT = 2  # 2: with node covers
_FORMATS_READ = (1, 2)
MAX_DEPTH = 256  # levels a tree may have; bounds the work of one request
MAX_ARRAY_BYTES = 256 * 2**20  # what a trees.npz may unpack to (the default model's: 1 MB)
# A tree's leaf masks grow with its leaves, and their making with its leaves squared: a
# small file of one tree of 65,536 leaves would need gigabytes. scikit-learn grows 31
# leaves a tree by default (max_leaf_nodes); the default model's masks take 2 MB.
MAX_LEAVES = 2**13  # leaves a tree may have
MAX_MASK_BYTES = 512 * 2**20  # what the leaf masks may take, with a block being scored
MAX_MASK_WORK = 2**31  # words ANDed to make them, at most (about 6 s here; default model: 0.1M)
_BATCH_BYTES = 16 * 2**20  # the masks of splits made at a time at load
_BLOCK_ROWS = 2048  # rows scored at a time: the masks of a block stay in the CPU's cache
_FEW_ROWS = 16  # up to this many rows, numbers are binned value by value
_ACCUMULATED_ROWS = 64  # up to this many rows, leaves are summed by np.add.accumulate
_THREADED_ROWS = 16_384  # rows per thread, at least: 2 threads paid from about 32,768 rows
_EXP_LIMIT = 700.0  # math.exp overflows past 709.78


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
    cover: np.ndarray | None = None  # node -> training rows that reached it; None: format 1
    _masks: _LeafMasks = field(init=False, repr=False)
    _known: dict[str, dict[str, int]] = field(init=False, repr=False)  # column -> value -> bin
    _cut_lists: list[list[float]] = field(init=False, repr=False)  # `cuts` as lists
    # |log-odds| <= the baseline's plus each tree's largest |leaf|: if that is below
    # _EXP_LIMIT, no row's exp can overflow and the logistic function is vectorised.
    _exp_cannot_overflow: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        levels = self._check()
        masks = _LeafMasks.of(self, levels)
        object.__setattr__(self, "_masks", masks)
        bound = abs(self.baseline) + math.fsum(np.abs(masks.leaf_values).max(axis=1, initial=0))
        object.__setattr__(self, "_exp_cannot_overflow", bound < _EXP_LIMIT)
        known = {
            name: dict(zip(words, bins.tolist(), strict=True))
            for name, words, bins in zip(
                self.categorical, self.vocabularies, self.category_bins, strict=True
            )
        }
        object.__setattr__(self, "_known", known)
        object.__setattr__(self, "_cut_lists", [cuts.tolist() for cuts in self.cuts])

    @property
    def columns(self) -> tuple[str, ...]:
        return self.categorical + self.numerical

    def missing_bins(self) -> list[int]:
        """The "missing or unknown" bin of each column (its last)."""
        return [len(words) for words in self.vocabularies] + [len(cuts) + 1 for cuts in self.cuts]

    # --- scoring ---------------------------------------------------------------------

    def probabilities(self, columns: Columns, threads: int = 1) -> np.ndarray:
        """P(>50K) for rows given column by column (None or NaN for a missing value).

        With `threads` > 1, a large input's trees are walked by that many threads (for a
        caller that does not score from several threads already, as `predict` does)."""
        return self._probabilities_of_bins(self.bins(columns), threads)

    def log_odds(self, columns: Columns, threads: int = 1) -> np.ndarray:
        """The raw score behind `probabilities`: the baseline plus every tree's leaf value."""
        return self._log_odds_of_bins(self.bins(columns), threads)

    def bins(self, columns: Columns) -> np.ndarray:
        """(row, column) -> the bin the trees test; unknown and missing values in the last.

        A number's bin is how many of its column's cuts lie below it (`searchsorted`,
        or `bisect_left` value by value for a few rows, where numpy's calls cost more
        than the work).
        """
        n_rows = row_count(columns)
        missing = self.missing_bins()
        kept = [distinct(columns, name) for name in self.categorical]
        numbers = [np.asarray(columns[name], dtype=np.float64) for name in self.numerical]
        if n_rows <= _FEW_ROWS:
            by_column = [
                [bin_of.get(column.values[code], missing_bin) for code in column.codes.tolist()]
                for column, bin_of, missing_bin in zip(
                    kept, self._known.values(), missing, strict=False
                )
            ] + [
                [missing_bin if v != v else bisect.bisect_left(cuts, v) for v in values.tolist()]
                for values, cuts, missing_bin in zip(
                    numbers, self._cut_lists, missing[len(kept) :], strict=True
                )
            ]
            # Column by column in memory, as below: the transpose of one row per column.
            return np.array(by_column, dtype=np.intp).reshape(len(by_column), n_rows).T
        # Column by column in memory: scoring reads one column of a block of rows at a time.
        bins = np.empty((n_rows, len(self.columns)), dtype=np.intp, order="F")
        for j, (column, bin_of) in enumerate(zip(kept, self._known.values(), strict=True)):
            bins[:, j] = column.mapped(bin_of, missing[j])
        for j, (values, cuts) in enumerate(zip(numbers, self.cuts, strict=True), start=len(kept)):
            bins[:, j] = np.where(
                np.isnan(values), missing[j], np.searchsorted(cuts, values, side="left")
            )
        return bins

    def _probabilities_of_bins(self, bins: np.ndarray, threads: int = 1) -> np.ndarray:
        log_odds = self._log_odds_of_bins(bins, threads)
        if not self._exp_cannot_overflow:
            return np.array([_expit(x) for x in log_odds.tolist()])
        # The C library's exp element by element (see `_expit`), the rest vectorised: IEEE
        # addition and division are exactly rounded, so the bits are `_expit`'s.
        e = np.fromiter(map(math.exp, (-log_odds).tolist()), np.float64, len(log_odds))
        return 1.0 / (1.0 + e)

    def _log_odds_of_bins(self, bins: np.ndarray, threads: int = 1) -> np.ndarray:
        """Each tree's leaf by bit masks (QuickScorer), then the leaves added in order;
        with `threads` > 1 and enough rows, parts of the rows scored at once."""
        raw = np.empty(len(bins))
        bins = np.asfortranarray(bins)
        parts = min(threads, len(bins) // _THREADED_ROWS) if threads > 1 else 1
        if parts <= 1:
            self._score_into(bins, raw)
            return raw
        bounds = [len(bins) * i // parts for i in range(parts + 1)]
        pieces = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        # numpy lets go of the interpreter's lock in its gathers and arithmetic on blocks
        with ThreadPoolExecutor(parts - 1, thread_name_prefix="census-trees") as pool:
            others = [pool.submit(self._score_into, bins[p], raw[p]) for p in pieces[1:]]
            self._score_into(bins[pieces[0]], raw[pieces[0]])
            for other in others:
                other.result()
        return raw

    def _score_into(self, bins: np.ndarray, raw: np.ndarray) -> None:
        """`raw[i]` = the baseline plus row i's leaves, added in the model's order, as
        scikit-learn adds them (one tree after another, never pairwise)."""
        raw[:] = self.baseline
        if not len(self.roots):
            return
        for start in range(0, len(bins), _BLOCK_ROWS):
            values = self._masks.values(bins[start : start + _BLOCK_ROWS])
            block = raw[start : start + _BLOCK_ROWS]
            if len(block) <= _ACCUMULATED_ROWS:  # one call, not one per tree: a running
                values[0] += block  # sum down the trees, the same additions in order
                block[:] = np.add.accumulate(values, axis=0)[-1]
                continue
            block += values[0]
            for tree_values in values[1:]:
                block += tree_values

    # --- the file ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT if self.cover is not None else 1),
            "categorical": np.array(self.categorical, dtype=str),
            "numerical": np.array(self.numerical, dtype=str),
            "feature": self.feature.astype(np.int32),
            "child": self.child.astype(np.int32),
            "go_right": self.go_right.astype(np.uint8),
            "value": self.value,
            "roots": self.roots.astype(np.int32),
            "baseline": np.array(self.baseline),
        }
        if self.cover is not None:
            arrays["cover"] = self.cover
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
            return cls._read(data)
        except Exception as exc:  # numpy and zipfile raise many kinds on a damaged file
            raise ModelError(
                f"{source} is not a valid tree export ({type(exc).__name__}: {exc}); "
                "run `census train`."
            ) from None

    @classmethod
    def _read(cls, data: bytes) -> TreeTables:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
        if unpacked > MAX_ARRAY_BYTES:
            raise ValueError(f"it unpacks to {unpacked:,} bytes, over {MAX_ARRAY_BYTES:,}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return cls._from_arrays(npz)

    @classmethod
    def _from_arrays(cls, npz: Mapping[str, Any]) -> TreeTables:
        def array(name: str, ndim: int, kinds: str) -> np.ndarray:
            value = npz[name]
            if (
                not isinstance(value, np.ndarray)
                or value.ndim != ndim
                or value.dtype.kind not in kinds
            ):
                raise ValueError(f"{name} is not a {ndim}-d array of kind {kinds!r}")
            return value

        file_format = int(array("format", 0, "iu"))
        if file_format not in _FORMATS_READ:
            raise ValueError(f"format {file_format}, expected one of {_FORMATS_READ}")
        categorical = tuple(str(name) for name in array("categorical", 1, "U"))
        numerical = tuple(str(name) for name in array("numerical", 1, "U"))
        return cls(
            categorical=categorical,
            numerical=numerical,
            vocabularies=tuple(
                tuple(str(word) for word in array(f"vocabulary_{i}", 1, "U"))
                for i in range(len(categorical))
            ),
            category_bins=tuple(
                array(f"category_bins_{i}", 1, "iu").astype(np.intp)
                for i in range(len(categorical))
            ),
            cuts=tuple(
                array(f"cuts_{i}", 1, "f").astype(np.float64) for i in range(len(numerical))
            ),
            feature=array("feature", 1, "iu").astype(np.intp),
            child=array("child", 1, "iu").astype(np.intp),
            go_right=array("go_right", 2, "iu"),
            value=array("value", 1, "f").astype(np.float64),
            roots=array("roots", 1, "iu").astype(np.intp),
            baseline=float(array("baseline", 0, "f")),
            cover=array("cover", 1, "f").astype(np.float64) if file_format >= 2 else None,
        )

    def _check(self) -> list[np.ndarray]:
        """Refuse arrays that could index out of bounds, or that are not a forest; return
        the forest's levels (`_check_forest`)."""
        n_nodes, n_columns = len(self.child), len(self.columns)
        leaf = self.child == np.arange(n_nodes)
        one_d = (self.feature, self.child, self.value, self.roots, *self.category_bins, *self.cuts)
        checks = {
            "one-dimensional arrays": all(a.ndim == 1 for a in one_d) and self.go_right.ndim == 2,
            "one vocabulary and bin list per categorical column": len(self.vocabularies)
            == len(self.category_bins)
            == len(self.categorical)
            and all(
                len(words) == len(bins) and ((bins >= 0) & (bins < len(words))).all()
                for words, bins in zip(self.vocabularies, self.category_bins, strict=True)
            ),
            "ascending cuts per numerical column": len(self.cuts) == len(self.numerical)
            and all(np.all(np.diff(cuts) > 0) for cuts in self.cuts),
            "node arrays of one length": len(self.feature)
            == len(self.value)
            == len(self.go_right)
            == n_nodes,
            "a bin column for every bin": self.go_right.shape[1]
            > max(self.missing_bins(), default=0),
            "directions are 0 or 1": bool(((self.go_right == 0) | (self.go_right == 1)).all()),
            "features name columns": bool(((self.feature >= 0) & (self.feature < n_columns)).all()),
            "children are nodes": bool(
                (leaf | ((self.child >= 0) & (self.child + 1 < n_nodes))).all()
            ),
            "roots are nodes": bool(((self.roots >= 0) & (self.roots < n_nodes)).all()),
            "finite values": bool(np.isfinite(self.value).all()) and math.isfinite(self.baseline),
        }
        if self.cover is not None:
            checks["a cover per node"] = self.cover.shape == (n_nodes,)
            # A split with an empty side is never made, and explaining divides by covers.
            checks["positive finite covers"] = bool(
                (np.isfinite(self.cover) & (self.cover > 0)).all()
            )
        broken = [name for name, ok in checks.items() if not ok]
        if broken:
            raise ValueError("inconsistent arrays: " + "; ".join(broken))
        levels = self._check_forest(leaf)
        self._check_cover(leaf)
        self._check_size(levels, leaf)
        return levels

    def _check_size(self, levels: list[np.ndarray], leaf: np.ndarray) -> None:
        """The leaf masks (`_LeafMasks`) fit in MAX_MASK_BYTES, their trees in MAX_LEAVES."""
        tree = _trees_of(self.child, self.roots, levels, leaf)
        width = int(np.bincount(tree[leaf], minlength=len(self.roots)).max(initial=1))
        if width > MAX_LEAVES:
            raise ValueError(f"a tree with {width:,} leaves, over the limit of {MAX_LEAVES:,}")
        word, words = _mask_words(width)
        n_bins = np.array([b + 1 for b in self.missing_bins()], dtype=np.int64)
        # Per tree, a mask per bin of every column, and two per row of a block scored.
        bins = int(n_bins.sum())
        size = len(self.roots) * words * (_bits(word) // 8) * (bins + 2 * _BLOCK_ROWS)
        if size > MAX_MASK_BYTES:
            raise ValueError(
                f"{len(self.roots):,} trees of up to {width:,} leaves over {bins:,} bins need "
                f"{size:,} bytes of leaf masks, over the limit of {MAX_MASK_BYTES:,}"
            )
        # Each split's mask is ANDed into its column's masks of the bins it sends right.
        work = int(n_bins[self.feature[~leaf]].sum()) * words
        if work > MAX_MASK_WORK:
            raise ValueError(
                f"{len(self.roots):,} trees of up to {width:,} leaves take {work:,} steps to "
                f"make their leaf masks, over the limit of {MAX_MASK_WORK:,}"
            )

    def _check_cover(self, leaf: np.ndarray) -> None:
        """Every row that reaches a split goes on to one of its two children."""
        if self.cover is None:
            return
        splits = np.flatnonzero(~leaf)
        left = self.child[splits]
        children = self.cover[left] + self.cover[left + 1]
        if not np.allclose(self.cover[splits], children, rtol=1e-9, atol=0):
            raise ValueError("inconsistent arrays: a split's cover is not its children's sum")

    def _check_forest(self, leaf: np.ndarray) -> list[np.ndarray]:
        """Every node is reached from exactly one root, by one path of at most MAX_DEPTH steps.

        Returns the nodes level by level from the roots: each level's splits, left children
        first, then their right children, give the next."""
        reached = np.zeros(len(self.child), dtype=bool)
        level, levels, marked = self.roots, [], 0
        for _ in range(MAX_DEPTH + 1):
            again = reached[level].any()
            reached[level] = True
            marked += len(level)
            # (counted rather than np.unique, which imports numpy.ma: 15 ms of a launch)
            if again or np.count_nonzero(reached) < marked:
                raise ValueError("inconsistent arrays: a node is reached twice (not a forest)")
            levels.append(level)
            splits = level[~leaf[level]]
            if not splits.size:
                break
            level = np.concatenate([self.child[splits], self.child[splits] + 1])
        else:
            raise ValueError(f"inconsistent arrays: a tree deeper than {MAX_DEPTH} levels")
        if not reached.all():
            raise ValueError("inconsistent arrays: nodes no root reaches")
        return levels


class _LeafMasks:
    """The forest as bit masks of leaves, so that a row's leaf in every tree takes a few
    vectorised operations per column instead of one gather per level of depth.

    After Lucchese et al., "QuickScorer" (SIGIR 2015): number each tree's leaves from left
    to right. A split that sends a row right rules out the leaves of its left subtree.
    `survivors[column][bin, tree]` is the set of leaves no split on `column` rules out for
    a row in `bin`; AND them over the row's columns and the lowest leaf left is the one
    the row reaches (every leaf to its left lies under a split on the row's path that went
    right, and only splits on that path can rule the reached leaf out, and they do not).
    A set of leaves is `words` unsigned integers of the narrowest width that holds a
    tree's leaves in one word (8, 16, 32 or 64 bits; 64-bit words beyond 64 leaves): the
    default model's 31 leaves take 32 bits, half the memory traffic of 64.

    Columns with few bins are scored together: a *joint* table holds, for every pair (or
    triple...) of their bins, the AND of their survivors, so one gather does the work of
    several. Columns join while their table stays within `_JOINT_BYTES` (cache-sized).
    """

    def __init__(self, survivors: list[np.ndarray], leaf_values: np.ndarray) -> None:
        self.survivors = survivors  # per column: (bin, tree, word) unsigned
        self.leaf_values = leaf_values  # (tree, leaf) float64, padded with 0
        n_trees, width = leaf_values.shape
        self.flat_values = leaf_values.ravel()
        # where tree t's leaves start in `flat_values`, less one: see `values`
        self.first_leaf = np.arange(n_trees)[:, None] * width - 1
        self.joints = _joint_tables(survivors)
        # For a few rows, every joint table in one array, and each row's index into it
        # as one product: (row, column) bins @ `radix` + `starts` (see `values`).
        self.stacked = np.concatenate([table for _, _, table in self.joints]) if survivors else None
        self.radix = np.zeros((len(survivors), len(self.joints)), dtype=np.intp)
        for g, (columns, sizes, _) in enumerate(self.joints):
            for k, column in enumerate(columns):
                self.radix[column, g] = math.prod(sizes[k + 1 :])
        sizes_of = [len(table) for _, _, table in self.joints]
        self.starts = np.cumsum([0, *sizes_of[:-1]]).astype(np.intp)

    @classmethod
    def of(cls, tables: TreeTables, levels: list[np.ndarray]) -> _LeafMasks:
        """The masks of a checked forest, from its levels (`TreeTables._check_forest`)."""
        child, n_bins = tables.child, [b + 1 for b in tables.missing_bins()]
        is_leaf = child == np.arange(len(child))
        # Each node's tree, and its leaves' positions: from `first` to `first + n_leaves`.
        tree = _trees_of(child, tables.roots, levels, is_leaf)
        n_leaves, first = (np.zeros(len(child), dtype=np.intp) for _ in range(2))
        splits_of = [level[~is_leaf[level]] for level in levels]
        n_leaves[is_leaf] = 1
        for splits in reversed(splits_of):
            n_leaves[splits] = n_leaves[child[splits]] + n_leaves[child[splits] + 1]
        for splits in splits_of:
            left = child[splits]
            first[left] = first[splits]
            first[left + 1] = first[splits] + n_leaves[left]
        n_trees, width = len(tables.roots), int(n_leaves[tables.roots].max(initial=1))
        word, words = _mask_words(width)
        leaf_values = np.zeros((n_trees, width))
        leaves = np.flatnonzero(is_leaf)
        leaf_values[tree[leaves], first[leaves]] = tables.value[leaves]
        # A split that sends a row right rules out the leaves under its left child.
        splits = np.flatnonzero(~is_leaf)
        survivors = [np.full((n, n_trees, words), word(~word(0)), word) for n in n_bins]
        feature = tables.feature[splits]
        for column, n in enumerate(n_bins):
            on_column = splits[feature == column]
            # A batch of splits at a time: a mask per split, and per bin it sends right.
            batch = max(1, _BATCH_BYTES // (8 * words * (n + 4)))
            for start in range(0, len(on_column), batch):
                part = on_column[start : start + batch]
                left = child[part]
                ruled_out = _spans(first[left], first[left] + n_leaves[left], words, word)
                split, bin_ = np.nonzero(tables.go_right[part, :n])
                np.bitwise_and.at(survivors[column], (bin_, tree[part[split]]), ~ruled_out[split])
        return cls(survivors, leaf_values)

    def values(self, bins: np.ndarray) -> np.ndarray:
        """(tree, row) -> the value of the leaf each row of `bins` reaches in each tree."""
        # mode="clip" skips the bounds check (3x faster); bins are in range by design.
        if len(bins) <= _FEW_ROWS and self.stacked is not None:  # a few calls, not dozens
            index = bins @ self.radix + self.starts  # (row, joint table)
            tables = np.take(self.stacked, index, axis=0, mode="clip")
            alive = np.bitwise_and.reduce(tables, axis=1)  # (row, tree, word)
            ruled_in = np.empty_like(alive)
        else:
            (columns, sizes, table), *others = self.joints
            alive = np.take(table, _joint_index(bins, columns, sizes), axis=0, mode="clip")
            ruled_in = np.empty_like(alive)
            for columns, sizes, table in others:
                index = _joint_index(bins, columns, sizes)
                alive &= np.take(table, index, axis=0, out=ruled_in, mode="clip")
        if alive.shape[-1] == 1:  # one word per tree: the lowest set bit's position is
            bits = alive[..., 0]  # the count of ones in x ^ (x - 1), less one
            below = np.subtract(bits, bits.dtype.type(1), out=ruled_in[..., 0])
            leaf = np.bitwise_count(np.bitwise_xor(bits, below, out=below))
            return self.flat_values[leaf.T + self.first_leaf]
        return self.flat_values[self.exit_leaf(alive).T + (self.first_leaf + 1)]

    @staticmethod
    def exit_leaf(alive: np.ndarray) -> np.ndarray:
        """The lowest surviving leaf per (row, tree), from (row, tree, word) masks."""
        one = alive.dtype.type(1)
        word = np.argmax(alive != 0, axis=-1)
        bits = np.take_along_axis(alive, word[..., None], axis=-1)[..., 0]
        below_lowest = bits & (~bits + one)  # the lowest set bit...
        below_lowest -= one  # ...and then the ones under it
        return word * _bits(alive.dtype.type) + np.bitwise_count(below_lowest).astype(np.intp)


_JOINT_BYTES = 256 * 2**10  # the largest joint table: half the L2 cache of a core here


def _joint_tables(
    survivors: list[np.ndarray],
) -> list[tuple[tuple[int, ...], tuple[int, ...], np.ndarray]]:
    """Columns grouped, largest first, each into the fullest group it fits in; per group
    its columns, their numbers of bins and the table of their survivors ANDed, indexed by
    the bins in mixed radix (first column most significant)."""
    groups: list[list[int]] = []
    size = [len(s) for s in survivors]
    row_bytes = survivors[0][0].nbytes if survivors else 0

    def cells(group: list[int]) -> int:
        return math.prod(size[c] for c in group)

    for column in sorted(range(len(survivors)), key=lambda c: -size[c]):
        fits = [g for g in groups if cells(g) * size[column] * row_bytes <= _JOINT_BYTES]
        if fits:
            max(fits, key=cells).append(column)
        else:
            groups.append([column])
    joints = []
    for group in groups:
        table = survivors[group[0]]
        for column in group[1:]:
            other = survivors[column]
            table = (table[:, None] & other[None, :]).reshape(-1, *table.shape[1:])
        joints.append((tuple(group), tuple(size[c] for c in group), np.ascontiguousarray(table)))
    return joints


def _joint_index(bins: np.ndarray, columns: tuple[int, ...], sizes: tuple[int, ...]) -> np.ndarray:
    index = bins[:, columns[0]]
    for column, size in zip(columns[1:], sizes[1:], strict=True):
        index = index * size + bins[:, column]
    return index


def _trees_of(
    child: np.ndarray, roots: np.ndarray, levels: list[np.ndarray], leaf: np.ndarray
) -> np.ndarray:
    """node -> the index of its tree, from the forest's levels (`_check_forest`)."""
    tree = np.zeros(len(child), dtype=np.intp)
    tree[roots] = np.arange(len(roots))
    for level in levels:
        splits = level[~leaf[level]]
        tree[child[splits]] = tree[child[splits] + 1] = tree[splits]
    return tree


def _mask_words(width: int) -> tuple[type[np.unsignedinteger], int]:
    """The word type and count of a set of `width` leaves (see `_LeafMasks`)."""
    word = next((t for t in (np.uint8, np.uint16, np.uint32) if width <= _bits(t)), np.uint64)
    return word, -(-width // _bits(word))


def _spans(
    start: np.ndarray, stop: np.ndarray, words: int, word: type[np.unsignedinteger]
) -> np.ndarray:
    """(span, word) -> the leaf positions start..stop-1 of each span, as bits of `words`
    unsigned integers of type `word` (position p: bit p % width of word p // width)."""
    width = _bits(word)
    offset = np.arange(words) * width
    low = np.clip(start[:, None] - offset, 0, width).astype(np.uint64)
    high = np.clip(stop[:, None] - offset, 0, width).astype(np.uint64)
    return (_ones(high) & ~_ones(low)).astype(word)


def _ones(n: np.ndarray) -> np.ndarray:
    """The n lowest bits set, for 0 <= n <= 64, as uint64."""
    one = np.uint64(1)
    return np.where(n >= 64, ~np.uint64(0), (one << np.minimum(n, 63)) - one)


def _bits(word: type[np.unsignedinteger]) -> int:
    return np.iinfo(word).bits


def _expit(x: float) -> float:
    """1 / (1 + e^-x) with the C library's exp, as scikit-learn's `expit` computes it.

    numpy's vectorised exp may differ in the last bit, and these numbers must be the
    pipeline's exactly.
    """
    try:
        return 1.0 / (1.0 + math.exp(-x))
    except OverflowError:  # e^-x beyond the float range: the probability rounds to 0
        return 0.0
