"""The tree tables every door scores with by default: safe to read, exact by their splits."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from census_salary import trees
from census_salary.bundle import Bundle
from census_salary.contract import EXAMPLE_ROW, check_records
from census_salary.data import CensusData
from census_salary.errors import ModelError
from census_salary.tree_export import _probe_rows
from census_salary.trees import MAX_DEPTH, TreeTables


def tables_of(bundle: Bundle) -> TreeTables:
    assert isinstance(bundle.scorer, TreeTables), "the default scorer should be the tree tables"
    return bundle.scorer


def test_file_round_trip_keeps_every_number(small_bundle: Bundle) -> None:
    tables = tables_of(small_bundle)
    again = TreeTables.from_bytes(tables.to_bytes(), "trees.npz")
    columns = check_records([{**EXAMPLE_ROW, "age": age} for age in range(17, 91)]).columns
    np.testing.assert_array_equal(again.probabilities(columns), tables.probabilities(columns))
    assert tables.cover is not None
    np.testing.assert_array_equal(again.cover, tables.cover)


def _format_of(data: bytes) -> int:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return int(npz["format"])


def test_a_format_1_file_without_covers_still_loads_and_scores(small_bundle: Bundle) -> None:
    tables = tables_of(small_bundle)
    old = replace(tables, cover=None).to_bytes()
    assert _format_of(old) == 1
    assert _format_of(tables.to_bytes()) == 2
    again = TreeTables.from_bytes(old, "trees.npz")
    assert again.cover is None
    columns = check_records([{**EXAMPLE_ROW, "age": age} for age in range(17, 91)]).columns
    np.testing.assert_array_equal(again.probabilities(columns), tables.probabilities(columns))


def test_a_file_of_a_later_format_is_refused(small_bundle: Bundle) -> None:
    with np.load(io.BytesIO(tables_of(small_bundle).to_bytes()), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    with pytest.raises(ModelError, match="format 3"):
        TreeTables.from_bytes(_npz(**{**arrays, "format": np.array(3)}), "trees.npz")


def test_a_format_2_file_without_covers_is_refused(small_bundle: Bundle) -> None:
    with np.load(io.BytesIO(tables_of(small_bundle).to_bytes()), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files if name != "cover"}
    with pytest.raises(ModelError, match=r"not a valid tree export.*cover"):
        TreeTables.from_bytes(_npz(**arrays), "trees.npz")


def _npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_a_file_that_is_not_an_export_is_refused() -> None:
    with pytest.raises(ModelError, match=r"x\.npz is not a valid tree export"):
        TreeTables.from_bytes(b"not a zip at all", "x.npz")
    with pytest.raises(ModelError, match="not a valid tree export"):
        TreeTables.from_bytes(_npz(format=np.array(1)), "x.npz")


def test_an_export_holding_python_objects_is_refused_unread() -> None:
    with pytest.raises(ModelError, match="not a valid tree export"):
        TreeTables.from_bytes(_npz(format=np.array([{"code": "here"}], dtype=object)), "x.npz")


def chain(splits: int) -> TreeTables:
    """One tree on `age` (cut at 30): each split sends age <= 30 left to a leaf worth its
    depth and the rest right to the next split; the last right child is worth -1."""
    n_nodes = 2 * splits + 1
    child = np.arange(n_nodes)
    value = np.zeros(n_nodes)
    for depth in range(splits):
        node = 2 * depth
        child[node] = node + 1
        value[node + 1] = depth + 1
    value[-1] = -1
    go_right = np.zeros((n_nodes, 3), dtype=np.uint8)
    go_right[0 : 2 * splits : 2, 1] = 1  # bin 1: above the cut; bin 2: missing goes left
    return TreeTables(
        categorical=(),
        numerical=("age",),
        vocabularies=(),
        category_bins=(),
        cuts=(np.array([30.0]),),
        feature=np.zeros(n_nodes, dtype=np.intp),
        child=child,
        go_right=go_right,
        value=value,
        roots=np.array([0]),
        baseline=0.5,
    )


def test_a_hand_built_tree_scores_by_its_splits() -> None:
    tables = chain(3)
    p = tables.probabilities({"age": [30, 31, None]})
    expected = [1 / (1 + np.exp(-(0.5 + leaf))) for leaf in (1, -1, 1)]
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-15)


def test_log_odds_are_the_baseline_plus_the_leaves() -> None:
    log_odds = chain(3).log_odds({"age": [30, 31, None]})
    np.testing.assert_array_equal(log_odds, [0.5 + 1, 0.5 - 1, 0.5 + 1])


def test_a_tree_deeper_than_the_limit_is_refused() -> None:
    assert chain(MAX_DEPTH).probabilities({"age": [99]}).shape == (1,)
    with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH}"):
        chain(MAX_DEPTH + 1)


def test_a_tree_with_more_leaves_than_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trees, "MAX_LEAVES", 4)
    assert chain(3).probabilities({"age": [99]}).shape == (1,)  # 4 leaves
    with pytest.raises(ValueError, match="a tree with 5 leaves, over the limit of 4"):
        chain(4)


def test_a_small_file_of_one_huge_tree_is_refused_before_its_masks_are_made() -> None:
    depth = 14  # 16,384 leaves in a 50 kB file: its masks would take a gigabyte to make
    n_leaves = 2**depth
    node = np.arange(2 * n_leaves - 1)
    data = _npz(
        format=np.array(1),
        categorical=np.array([], dtype=str),
        numerical=np.array(["age"]),
        feature=np.zeros(len(node), dtype=np.int32),
        child=np.where(node < n_leaves - 1, 2 * node + 1, node).astype(np.int32),
        go_right=np.zeros((len(node), 3), dtype=np.uint8),
        value=np.zeros(len(node)),
        roots=np.array([0], dtype=np.int32),
        baseline=np.array(0.0),
        cuts_0=np.array([0.5]),
    )
    with pytest.raises(ModelError, match=f"{n_leaves:,} leaves, over the limit of"):
        TreeTables.from_bytes(data, "trees.npz")


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("MAX_MASK_BYTES", "bytes of leaf masks"),
        ("MAX_MASK_WORK", "steps to make their leaf masks"),
    ],
)
def test_a_forest_whose_leaf_masks_are_too_big_to_make_is_refused(
    small_bundle: Bundle, monkeypatch: pytest.MonkeyPatch, limit: str, message: str
) -> None:
    data = tables_of(small_bundle).to_bytes()
    monkeypatch.setattr(trees, limit, 1000)
    with pytest.raises(ModelError, match=rf"{message}, over the limit of 1,000"):
        TreeTables.from_bytes(data, "trees.npz")


def test_an_export_unpacking_to_too_much_is_refused(
    small_bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tables_of(small_bundle).to_bytes()
    monkeypatch.setattr(trees, "MAX_ARRAY_BYTES", 1000)
    with pytest.raises(ModelError, match="unpacks to"):
        TreeTables.from_bytes(data, "trees.npz")


def test_an_export_member_that_is_not_an_array_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("format.npy", b"not an array")
    with pytest.raises(ModelError, match="not a valid tree export"):
        TreeTables.from_bytes(buffer.getvalue(), "x.npz")


def _with(array: np.ndarray, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    changed = array.copy()
    changed[at] = values
    return changed


def _split_to_root(t: TreeTables) -> dict[str, object]:
    child = t.child.copy()
    split = int(np.flatnonzero(child != np.arange(len(child)))[-1])
    child[split] = t.roots[0]
    return {"child": child}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_split_to_root, "reached twice"),
        (lambda t: {"roots": np.concatenate([t.roots[:1], t.roots[:-1]])}, "reached twice"),
        (lambda t: {"roots": t.roots[:-1]}, "nodes no root reaches"),
        (lambda t: {"child": t.child + len(t.child)}, "children are nodes"),
        (lambda t: {"feature": t.feature + 100}, "features name columns"),
        (lambda t: {"go_right": t.go_right * 2}, "directions are 0 or 1"),
        (lambda t: {"roots": t.roots + len(t.child)}, "roots are nodes"),
        (lambda t: {"value": np.full_like(t.value, np.nan)}, "finite values"),
        (lambda t: {"cuts": tuple(c[::-1] for c in t.cuts)}, "ascending cuts"),
        (lambda t: {"category_bins": tuple(b[None, :] for b in t.category_bins)}, "one-dim"),
        (lambda t: {"go_right": t.go_right[:, :2]}, "a bin column for every bin"),
        (lambda t: {"cover": t.cover[:-1]}, "a cover per node"),
        (lambda t: {"cover": t.cover[None, :]}, "a cover per node"),
        (lambda t: {"cover": -t.cover}, "positive finite covers"),
        (lambda t: {"cover": np.where(t.child == np.arange(len(t.child)), 0, t.cover)}, "positive"),
        (lambda t: {"cover": np.full_like(t.cover, np.inf)}, "positive finite covers"),
        (lambda t: {"cover": _with(t.cover, t.roots, t.cover[t.roots] + 1)}, "children's sum"),
    ],
)
def test_inconsistent_arrays_are_refused(small_bundle: Bundle, change, problem: str) -> None:
    tables = tables_of(small_bundle)
    with pytest.raises(ValueError, match=problem):
        replace(tables, **change(tables))


def staircase(splits: int) -> TreeTables:
    """One tree on `age` with cuts at 0, 1, ..., splits - 1: the split at depth d sends
    ages up to d left to a leaf worth d + 1 and the rest right. Its splits + 1 leaves fill
    8-, 16-, 32- or 64-bit words, and span several 64-bit words once splits > 63."""
    n_nodes = 2 * splits + 1
    child = np.arange(n_nodes)
    value = np.zeros(n_nodes)
    go_right = np.zeros((n_nodes, splits + 2), dtype=np.uint8)
    for depth in range(splits):
        node = 2 * depth
        child[node] = node + 1
        value[node + 1] = depth + 1
        go_right[node, depth + 1 : splits + 1] = 1  # bins above the cut; missing goes left
    value[-1] = -1
    return TreeTables(
        categorical=(),
        numerical=("age",),
        vocabularies=(),
        category_bins=(),
        cuts=(np.arange(splits, dtype=np.float64),),
        feature=np.zeros(n_nodes, dtype=np.intp),
        child=child,
        go_right=go_right,
        value=value,
        roots=np.array([0]),
        baseline=0.0,
    )


@pytest.mark.parametrize("splits", [3, 7, 8, 15, 16, 31, 32, 63, 64, 100, 200])
def test_a_row_reaches_its_leaf_however_many_leaves_a_tree_has(splits: int) -> None:
    tables = staircase(splits)
    ages = [0, 1, splits // 2, splits - 1, splits + 5, None]
    expected_leaf = [1, 2, splits // 2 + 1, splits, -1, 1]
    expected = [1 / (1 + np.exp(-leaf)) for leaf in expected_leaf]
    np.testing.assert_allclose(tables.probabilities({"age": ages}), expected, rtol=0, atol=1e-15)


def test_a_few_rows_are_binned_as_many_are(small_bundle: Bundle) -> None:
    tables = tables_of(small_bundle)
    probes = _probe_rows(tables)  # every category, missing and unseen ones, every threshold
    probes.loc[::7, list(tables.numerical)] = np.nan
    columns = {name: probes[name].to_numpy() for name in tables.columns}
    together = tables.bins(columns)
    few = 3
    apart = [
        tables.bins({name: values[start : start + few] for name, values in columns.items()})
        for start in range(0, len(probes), few)
    ]
    assert len(probes) > 16 * few
    np.testing.assert_array_equal(np.vstack(apart), together)


def _data_columns(census_data: CensusData) -> dict[str, object]:
    features = census_data.features
    return {name: features[name].to_numpy() for name in features.columns}


def test_scoring_in_two_threads_gives_the_pipeline_s_probabilities_on_every_row(
    small_bundle: Bundle,
    pipeline_bundle: Bundle,
    census_data: CensusData,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trees, "_THREADED_ROWS", 1000)
    columns = _data_columns(census_data)
    expected = pipeline_bundle.probabilities(columns)
    np.testing.assert_array_equal(tables_of(small_bundle).probabilities(columns, 2), expected)
    np.testing.assert_array_equal(small_bundle.probabilities(columns, threads=2), expected)


def test_columns_scored_alone_or_in_joint_tables_give_the_same_bits(
    small_bundle: Bundle, census_data: CensusData, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = tables_of(small_bundle)
    assert any(len(columns) > 1 for columns, _, _ in tables._masks.joints)
    monkeypatch.setattr(trees, "_JOINT_BYTES", 0)
    alone = replace(tables)
    assert all(len(columns) == 1 for columns, _, _ in alone._masks.joints)
    columns = _data_columns(census_data)
    np.testing.assert_array_equal(alone.log_odds(columns), tables.log_odds(columns))


def test_the_vectorised_logistic_function_is_the_scalar_one_to_the_bit() -> None:
    log_odds = np.concatenate([np.linspace(-40, 40, 10_001), [745.0, 700.0, -700.0, 0.0, 1e-300]])
    tables = chain(1)
    bins = np.zeros((len(log_odds), 1), dtype=np.intp)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TreeTables, "_log_odds_of_bins", lambda self, bins, threads=1: log_odds)
        got = tables._probabilities_of_bins(bins)
    np.testing.assert_array_equal(got, [trees._expit(x) for x in log_odds.tolist()])


def test_log_odds_past_exp_s_range_fall_back_to_the_scalar_path() -> None:
    tables = replace(chain(1), value=np.array([0.0, -800.0, 5.0]))  # exp(800) overflows
    assert not tables._exp_cannot_overflow
    assert chain(1)._exp_cannot_overflow
    np.testing.assert_array_equal(tables.probabilities({"age": [30, 31]}), [0.0, trees._expit(5.5)])


def test_a_few_rows_score_to_the_bit_as_many_do(small_bundle: Bundle) -> None:
    tables = tables_of(small_bundle)
    probes = _probe_rows(tables)
    columns = {name: probes[name].to_numpy() for name in tables.columns}
    together = tables.probabilities(columns)  # blocks of thousands: leaves added tree by tree
    few = 5  # (a running sum down the trees, in one call)
    apart = [
        tables.probabilities(
            {name: values[start : start + few] for name, values in columns.items()}
        )
        for start in range(0, len(probes), few)
    ]
    assert len(probes) > trees._ACCUMULATED_ROWS
    np.testing.assert_array_equal(np.concatenate(apart), together)
