"""The library's scorer in process: rows per second, one thread and two, committed model.

| figure                                                          | target            |
| --------------------------------------------------------------- | ----------------- |
| `Bundle.probabilities` on checked columns, 1,000,000 rows, 1 thread | >= 500,000 rows/s |
| the same in 2 threads                                           | more than 1 thread |

Also printed: 1,000 and 100,000 rows, and the kernel from bins alone (the tree tables'
`_probabilities_of_bins`: leaves by bit masks, their sum, the logistic function), so
the part that turns values into bins shows up as the difference. The rows are the
data's, repeated to each size.

Floor, measured in the same run, alternating with ours: the same number of float64
values (rows x trees) gathered from the model's leaf table by a fixed index and added
tree by tree, in 2,048-row blocks: the memory work any per-tree scorer does, with no
tree walked. Each figure is the median of `--runs` runs, with min and max.

    .venv/bin/python benchmarks/scorer.py                  # about a minute
    .venv/bin/python benchmarks/scorer.py --sizes 1000 --runs 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import ROOT, machine, median, print_table, verdict

TARGET = 500_000  # rows/s, one thread


def timed(works: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Seconds per run of each work, the works alternating within each run."""
    for work in works.values():
        work()
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(runs):
        for name, work in works.items():
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each figure")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000], help="rows scored"
    )
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "census.csv")
    args = parser.parse_args()

    import numpy as np

    from census_salary.bundle import load_bundle
    from census_salary.contract import (
        ColumnTable,
        DistinctColumn,
        check_columns,
        columns_of_frame,
    )
    from census_salary.data import read_census
    from census_salary.trees import TreeTables

    bundle = load_bundle(ROOT / "artifacts")
    tables = bundle.scorer
    if not isinstance(tables, TreeTables):
        raise SystemExit("the committed bundle has no tree tables")
    checked = check_columns(columns_of_frame(read_census(args.data).features)).columns
    data = {name: checked.kept(name) for name in tables.columns}  # as every door checks them
    leaf_values = tables._masks.leaf_values
    n_trees, width = leaf_values.shape
    block = 2048
    index = np.random.default_rng(0).integers(0, width, (n_trees, block))
    index += np.arange(n_trees)[:, None] * width
    flat = leaf_values.ravel()

    def floor(n_rows: int) -> None:
        raw = np.empty(n_rows)
        for start in range(0, n_rows, block):
            values = flat[index[:, : min(block, n_rows - start)]]
            part = raw[start : start + block]
            part[:] = values[0]
            for tree_values in values[1:]:
                part += tree_values

    table = []
    for n_rows in args.sizes:
        columns = ColumnTable(
            {
                name: DistinctColumn(kept.values, np.resize(kept.codes, n_rows))
                if isinstance(kept, DistinctColumn)
                else np.resize(kept, n_rows)
                for name, kept in data.items()
            }
        )
        bins = tables.bins(columns)
        times = timed(
            {
                "floor": lambda n=n_rows: floor(n),
                "bundle 1": lambda c=columns: bundle.probabilities(c),
                "bundle 2": lambda c=columns: bundle.probabilities(c, threads=2),
                "kernel 1": lambda b=bins: tables._probabilities_of_bins(b),
                "kernel 2": lambda b=bins: tables._probabilities_of_bins(b, 2),
            },
            args.runs,
        )
        base = median(times["floor"])
        for name, label in (
            ("bundle 1", "Bundle.probabilities, 1 thread"),
            ("bundle 2", "Bundle.probabilities, 2 threads"),
            ("kernel 1", "kernel from bins, 1 thread"),
            ("kernel 2", "kernel from bins, 2 threads"),
        ):
            seconds = times[name]
            target = ""
            if name == "bundle 1":
                target = f">= {TARGET:,}"
                result = verdict(n_rows / median(seconds) >= TARGET)
            elif name == "bundle 2":
                target = "> 1 thread"
                result = verdict(median(seconds) < median(times["bundle 1"]))
            else:
                result = ""
            table.append(
                (
                    f"{n_rows:,} rows, {label}",
                    f"{n_rows / median(seconds):,.0f}",
                    f"{n_rows / max(seconds):,.0f}-{n_rows / min(seconds):,.0f}",
                    "rows/s",
                    target,
                    result,
                    f"{n_rows / base:,.0f}",
                    f"{median(seconds) / base:.2f}x",
                )
            )
    print(
        f"The library's scorer in process, committed model ({n_trees} trees); median of "
        f"{args.runs} runs"
    )
    print(machine(["numpy"]))
    print_table(
        (
            "figure",
            "ours",
            "min-max",
            "unit",
            "target",
            "result",
            "floor rows/s",
            "time/floor",
        ),
        table,
    )


if __name__ == "__main__":
    main()
