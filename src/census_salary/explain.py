"""Why a row scores what it scores: per-column contributions (SHAP values) in log-odds.

For each row, `explain` splits the model's raw score (the log-odds behind the probability)
into a base value, the same for every row, plus one contribution per column:

    log_odds[row] == base_value + values[row].sum()      (to rounding, ~1e-14)

The contributions are the exact path-dependent TreeSHAP values of Lundberg et al.,
"Consistent individualized feature attribution for tree ensembles" (2018), the ones
`shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")` gives. They
answer: if the model did not know this column, what would it expect? A tree that does
not know the column a split tests follows both sides, weighted by how many training rows
went each way (the nodes' *covers*, stored in `trees.npz` since format 2). A column's
contribution is its Shapley value in that game: its average effect over every order in
which the columns could be revealed. The base value is what the model expects knowing
nothing: the baseline plus each tree's leaf values weighted by their covers.

How it is computed (an exact equivalent of the paper's Algorithm 2, in numpy alone):

1. Each tree is cut into its root-to-leaf paths. Along a path, a column may be tested
   several times. Per (path, column) two numbers: the *zero fraction* z, the share of the
   training rows that the path's splits on this column let through (the product of
   child cover / parent cover), and the *one fraction* o, 1 if the row's own value
   passes all of them, else 0. A leaf of value v then adds, for a set S of known
   columns, v * prod(o for columns in S) * prod(z for the others) to the tree's
   expectation.
2. That product is multilinear in the path's columns, so its Shapley value has a closed
   form, the integral that weighs every subset by |S|! (d - |S| - 1)! / d!:

       phi[k] = v * (o[k] - z[k]) * integral over t in [0, 1] of
                prod over the path's other columns j of (z[j] * (1 - t) + o[j] * t)

   The integrand is a polynomial of degree d - 1 (d: the path's distinct columns, at
   most 14), so Gauss-Legendre quadrature with ceil(d / 2) points gives it exactly.
3. A path's values depend on the row only through its *pattern*: which of the path's d
   columns the row passes (d bits). So at a model's first explanation, every path's
   values for all 2^d patterns are worked out and tabled (`_Paths`, kept while the
   tables live; ~18 MB for the default model), and explaining a row is a lookup per
   path: its pattern is OR-ed together from one bit table per column, as the scorer's
   leaf masks are. Paths testing so many columns that their tables would not fit in
   `_TABLE_BYTES` are computed per row by the same formula instead (since o is 0 or 1,
   the product at each quadrature point is exp of a sum of logs: a matrix product).
   Paths are grouped by d and rows taken in blocks, so no Python loop runs per row,
   per tree or per node: 1,000 rows take ~0.1 s with 200 trees of 31 leaves.

Rows are binned exactly as `TreeTables` scores them: an unknown category or a missing
value goes to its column's "missing" bin, so it is explained as it is scored.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from census_salary.contract import COLUMNS, Columns
from census_salary.errors import ModelError
from census_salary.trees import TreeTables

if TYPE_CHECKING:
    from census_salary.bundle import Bundle

_BLOCK_ROWS = 128  # rows explained at a time: the work arrays stay in the CPU's cache
# Paths' values for every pattern are tabled, paths of fewest columns first, while the
# tables fit in this; the rest are computed row by row (about 4 times slower).
_TABLE_BYTES = 32 * 2**20
_PATHS: weakref.WeakKeyDictionary[TreeTables, _Paths] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class Explanation:
    """Per-row contributions of each column to the log-odds of P(>50K).

    `values[row, j]` is the contribution of `columns[j]` (the contract's order); a column
    the model does not use contributes 0. For every row,
    `base_value + values[row].sum() == log_odds[row]` to rounding, and
    `log_odds[row]` is exactly the raw score the bundle's probability is the logistic of.
    """

    base_value: float
    columns: tuple[str, ...]
    values: np.ndarray  # (row, column), log-odds
    log_odds: np.ndarray  # (row,)

    def contributions(self, row: int) -> dict[str, float]:
        """One row's contributions by column name, in the contract's order."""
        return dict(zip(self.columns, self.values[row].tolist(), strict=True))


def explain(model: Bundle | TreeTables, columns: Columns) -> Explanation:
    """The SHAP values of checked rows (`contract.check_columns(...).columns`) in log-odds.

    `model` is a loaded bundle (see `tables_of` for which ones can be explained) or tree
    tables. Raises ModelError when there are no trees to explain, or they were exported
    without covers (before format 2).
    """
    tables = model if isinstance(model, TreeTables) else tables_of(model)
    if tables.cover is None:
        raise ModelError(
            "This model's trees.npz was exported before explanations existed (format 1, "
            "without node covers), so it cannot be explained. Retrain with `census train`."
        )
    unknown = [name for name in tables.columns if name not in COLUMNS]
    if unknown:
        raise ModelError(
            f"The model uses columns the row contract does not have: {', '.join(unknown)}; "
            "retrain with `census train`."
        )
    bins = tables.bins(columns)
    paths = _paths_of(tables)
    by_model_column = paths.contributions(bins)
    values = np.zeros((len(bins), len(COLUMNS)))
    values[:, [COLUMNS.index(name) for name in tables.columns]] = by_model_column
    return Explanation(
        base_value=paths.base_value,
        columns=tuple(COLUMNS),
        values=values,
        log_odds=tables.log_odds(columns),
    )


def tables_of(bundle: Bundle) -> TreeTables:
    """The tree tables behind a bundle: its scorer, or else its folder's `trees.npz`.

    A bundle scored with its pipeline (`[model] scorer = "pipeline"`) is explained from
    the `trees.npz` beside it, checked against the SHA-256 its metadata records. Other
    model kinds have no trees to explain, and a remote bundle none on this machine.
    """
    if isinstance(bundle.scorer, TreeTables):
        return bundle.scorer
    from census_salary.bundle import TREES_FILE  # here: bundle may come to import this module

    metadata = bundle.metadata
    if metadata.trees_sha256 is None and metadata.model_kind != "hist_gradient_boosting":
        raise ModelError(
            f"The model in {bundle.source} is a {metadata.model_kind}, and only gradient-"
            'boosted trees can be explained. Set [model] kind = "hist_gradient_boosting" '
            "in census.toml and run `census train`."
        )
    if metadata.trees_sha256 is None:
        raise ModelError(
            f"The model in {bundle.source} has no {TREES_FILE} (its trees could not be "
            "exported when it was trained), so it cannot be explained. Run `census train`."
        )
    path = Path(bundle.source) / TREES_FILE
    if not path.is_file():
        raise ModelError(
            f"Explanations are computed from the model's {TREES_FILE}, and {bundle.source} "
            "has none on this machine. Explain with a model bundle on this machine (not a "
            "server's), or run `census train`."
        )
    tables = _read_tables(str(path), metadata.trees_sha256)
    if (tables.categorical, tables.numerical) != (
        tuple(metadata.features.categorical),
        tuple(metadata.features.numerical),
    ):
        raise ModelError(
            f"{path} does not hold the columns its metadata lists; run `census train`."
        )
    return tables


@functools.lru_cache(maxsize=4)
def _read_tables(path: str, sha256: str) -> TreeTables:
    from census_salary.bundle import sha256_bytes

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if sha256_bytes(data) != sha256:
        raise ModelError(
            f"{path} does not match the SHA-256 recorded in its bundle's metadata: the file "
            "was changed or damaged, so it will not be loaded. Run `census train` or restore it."
        )
    return TreeTables.from_bytes(data, path)


def _paths_of(tables: TreeTables) -> _Paths:
    """The path tables of a model, made at its first explanation and kept while it lives."""
    paths = _PATHS.get(tables)
    if paths is None:
        if tables.cover is None:
            raise ModelError("explaining needs node covers (trees.npz format 2)")
        paths = _PATHS[tables] = _Paths.of(tables, tables.cover)
    return paths


@dataclass(frozen=True, eq=False)
class _PathGroup:
    """The P root-to-leaf paths that test d = `depth` distinct columns, as arrays.

    Pair (p, k) is path p's k-th column. With Q = ceil(d / 2) quadrature points t and
    weights w, a1 = z + (1 - z) t and a0 = z (1 - t) are a pair's factor in the product
    when the row passes or fails the path's splits on that column.
    """

    depth: int
    columns: np.ndarray  # (P * d,) the model column of each pair
    pass_bits: tuple[tuple[int, np.ndarray], ...]  # (column, (bin, P) bit k if pair passes)
    log_fail_all: np.ndarray  # (P, 1, Q) sum of log a0 over the path's columns
    log_pass_gain: np.ndarray  # (P, d, Q) log a1 - log a0
    weights: np.ndarray  # (P, Q, 2d) v (1 - z) w / a1, then v z w / a0
    table: np.ndarray | None  # (P * 2^d, d) the pairs' values for every pattern, or None

    @property
    def n_paths(self) -> int:
        return len(self.log_fail_all)

    def patterns(self, bins: np.ndarray) -> np.ndarray:
        """(row, path) -> which of the path's columns the row passes, as d bits."""
        found = np.zeros((len(bins), self.n_paths), dtype=np.uint16)
        for column, bits in self.pass_bits:
            found |= bits[bins[:, column]]
        return found

    def add_contributions(self, bins: np.ndarray, out: np.ndarray) -> None:
        """Add these paths' contributions for rows of `bins` to `out` (row, model column)."""
        patterns = self.patterns(bins)
        if self.table is not None:
            first_row = np.arange(self.n_paths) * (1 << self.depth)
            pair_values = np.take(self.table, first_row + patterns, axis=0)
        else:
            passes = (patterns.T[:, :, None] >> np.arange(self.depth, dtype=np.uint16)) & 1
            pair_values = self.shapley(passes.astype(np.float64)).transpose(1, 0, 2)
        # Each pair's value to its row and column (bincount: no BLAS threads to contend).
        n_rows, n_columns = out.shape
        slots = (np.arange(n_rows)[:, None] * n_columns + self.columns).ravel()
        added = np.bincount(slots, weights=pair_values.ravel(), minlength=out.size)
        out += added.reshape(n_rows, n_columns)

    def shapley(self, passes: np.ndarray) -> np.ndarray:
        """(path, row, k) -> the pair's Shapley value, given (path, row, k) -> o (0 or 1).

        v (o - z) times the integral of the product of the other pairs' factors: the
        product of all factors (a sum of logs, since o picks a1 or a0), divided by the
        pair's own factor at each quadrature point, weighted, for o = 1 and o = 0.
        """
        product = np.exp(passes @ self.log_pass_gain + self.log_fail_all)  # (P, row, Q)
        both = product @ self.weights
        when_pass, when_fail = both[..., : self.depth], both[..., self.depth :]
        return passes * (when_pass + when_fail) - when_fail


@dataclass(frozen=True, eq=False)
class _Paths:
    """Every root-to-leaf path of a model, grouped by how many columns it tests."""

    n_columns: int
    groups: tuple[_PathGroup, ...]
    base_value: float

    def contributions(self, bins: np.ndarray) -> np.ndarray:
        """(row, model column) -> the column's contribution, summed over every path."""
        out = np.zeros((len(bins), self.n_columns))
        for start in range(0, len(bins), _BLOCK_ROWS):
            block = slice(start, start + _BLOCK_ROWS)
            for group in self.groups:
                group.add_contributions(bins[block], out[block])
        return out

    @classmethod
    def of(cls, tables: TreeTables, cover: np.ndarray) -> _Paths:
        if len(tables.columns) > 16:  # a path's pattern is 16 bits (the contract has 14)
            raise ModelError("explanations take models of at most 16 columns")
        child, feature = tables.child, tables.feature
        is_leaf = child == np.arange(len(child))
        base = tables.baseline
        by_depth: dict[int, list[_Path]] = defaultdict(list)
        for root in tables.roots.tolist():
            stack = [_Path(root, {})]
            while stack:
                node, splits = stack.pop()
                if is_leaf[node]:
                    base += float(tables.value[node]) * float(cover[node] / cover[root])
                    if splits:
                        by_depth[len(splits)].append(_Path(node, splits))
                    continue
                column, left = int(feature[node]), int(child[node])
                for right in (0, 1):
                    taken = {**splits, column: [*splits.get(column, []), (node, right)]}
                    stack.append(_Path(left + right, taken))
        groups, table_bytes = [], 0
        for depth in sorted(by_depth):
            size = len(by_depth[depth]) * (1 << depth) * depth * 8
            with_table = table_bytes + size <= _TABLE_BYTES
            table_bytes += size if with_table else 0
            groups.append(_group(tables, cover, depth, by_depth[depth], with_table))
        return cls(len(tables.columns), tuple(groups), base)


class _Path(NamedTuple):
    """A path from a root: where it is, and per column the splits it took (node, right)."""

    node: int
    splits: dict[int, list[tuple[int, int]]]


def _group(
    tables: TreeTables, cover: np.ndarray, depth: int, paths: list[_Path], with_table: bool
) -> _PathGroup:
    """The arrays of the paths to a leaf that test `depth` distinct columns."""
    n_paths, n_pairs = len(paths), len(paths) * depth
    columns = np.empty(n_pairs, dtype=np.intp)
    pair_of, node_of, side_of = [], [], []
    for p, (_, splits) in enumerate(paths):
        for k, (column, taken) in enumerate(sorted(splits.items())):
            columns[p * depth + k] = column
            for node, right in taken:
                pair_of.append(p * depth + k)
                node_of.append(node)
                side_of.append(right)
    node, side = np.array(node_of), np.array(side_of)
    first = np.flatnonzero(np.diff(pair_of, prepend=-1))  # each pair's first split
    # The share of training rows the pair's splits let through, and the bins they refuse.
    zero = np.multiply.reduceat(cover[tables.child[node] + side] / cover[node], first)
    fails = np.logical_or.reduceat(tables.go_right[node] != side[:, None], first, axis=0)
    pass_bits = []
    bit = (np.uint16(1) << (np.arange(n_pairs) % depth).astype(np.uint16))[:, None]
    for column, n_bins in enumerate(b + 1 for b in tables.missing_bins()):
        on_column = np.flatnonzero(columns == column)
        if on_column.size:
            bits = np.zeros((n_bins, n_paths), dtype=np.uint16)
            bits[:, on_column // depth] = (~fails[on_column, :n_bins] * bit[on_column]).T
            pass_bits.append((column, bits))
    points, weights = np.polynomial.legendre.leggauss(math.ceil(depth / 2))
    t, w = (points + 1) / 2, weights / 2  # from [-1, 1] to [0, 1]
    z = zero.reshape(n_paths, depth, 1)
    v = tables.value[[leaf for leaf, _ in paths]].reshape(-1, 1, 1)
    factor_pass, factor_fail = z + (1 - z) * t, z * (1 - t)
    log_fail = np.log(factor_fail)
    both = np.concatenate([v * (1 - z) * w / factor_pass, v * z * w / factor_fail], axis=1)
    group = _PathGroup(
        depth=depth,
        columns=columns,
        pass_bits=tuple(pass_bits),
        log_fail_all=log_fail.sum(axis=1, keepdims=True),
        log_pass_gain=np.log(factor_pass) - log_fail,
        weights=np.ascontiguousarray(both.transpose(0, 2, 1)),
        table=None,
    )
    if not with_table:
        return group
    every = (np.arange(1 << depth)[:, None] >> np.arange(depth)) & 1  # (pattern, k)
    passes = np.broadcast_to(every.astype(np.float64), (n_paths, *every.shape))
    table = group.shapley(passes).reshape(-1, depth)  # (path * pattern, k)
    return replace(group, table=table)
