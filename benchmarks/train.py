"""Wall time of `census train` on the full data/census.csv, into a temporary artifacts folder.

| figure                                                        | target   |
| ------------------------------------------------------------- | -------- |
| `census train`, process start to exit, median                 | <= 6 s   |
| the same with a search of 24 candidates (`--search-runs N`)   | <= 60 s  |

The search is census.toml's `[search]` (successive halving, 3 folds) over `SEARCH_GRID`:
census.toml's 2 learning rates x 3 leaf counts, x 2 L2 penalties x 2 minimum leaf sizes,
set through `CENSUS_SEARCH__*`.

Floor, measured in the same run: `python -c "import census_salary.train"` (interpreter
start and the imports training needs), so the ratio shows how much is the work itself.

With `--one-process`, each run is followed by one with `[train] processes = 1` (no helper
process), so what the helper gains is measured in the same run, on the same machine load.

The committed model is never touched: CENSUS_ARTIFACTS__DIR and
CENSUS_ARTIFACTS__MODEL_CARD point into a temporary folder, and the script checks that
artifacts/LATEST and ModelCard.md are byte for byte as before.

    .venv/bin/python benchmarks/train.py             # about a minute and a half
    .venv/bin/python benchmarks/train.py --runs 1
    .venv/bin/python benchmarks/train.py --one-process   # and in one process, alternating
    .venv/bin/python benchmarks/train.py --runs 1 --search-runs 3   # about 3 minutes more
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import CONFIG, ROOT, census_command, machine, median, print_table, spread, verdict

SEARCH_GRID = {  # census.toml's grid, and two values of each regularisation: 24 candidates
    "learning_rate": [0.05, 0.1],
    "max_leaf_nodes": [15, 31, 63],
    "l2_regularization": [0.0, 1.0],
    "min_samples_leaf": [20, 50],
}
GUARDED = [ROOT / "artifacts" / "LATEST", ROOT / "artifacts" / "runs.jsonl", ROOT / "ModelCard.md"]


def fingerprint() -> dict[Path, str]:
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"
        for path in GUARDED
    }


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    return seconds


def train_once(n: int, what: str, extra: dict[str, str]) -> float:
    """One `census train` into a temporary folder; its wall time."""
    with tempfile.TemporaryDirectory(prefix="census-train-") as name:
        tmp = Path(name)
        env = {
            "CENSUS_ARTIFACTS__DIR": str(tmp / "artifacts"),
            "CENSUS_ARTIFACTS__MODEL_CARD": str(tmp / "ModelCard.md"),
            **extra,
        }
        command = [*census_command(), "--config", str(CONFIG), "train", "--json"]
        seconds = timed(command, env)
        if not (tmp / "artifacts" / "LATEST").exists():
            raise RuntimeError("census train did not write into the temporary folder")
    print(f"  {what}run {n + 1}: {seconds:.2f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="training runs timed")
    parser.add_argument("--floor-runs", type=int, default=5, help="import-only runs timed")
    parser.add_argument(
        "--search-runs", type=int, default=0, help="trainings with the 24-candidate search timed"
    )
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="also time census train with [train] processes = 1, alternating with the default",
    )
    args = parser.parse_args()

    before = fingerprint()
    print(f"census train benchmark (load average before: {os.getloadavg()[0]:.2f})", flush=True)
    floor = [
        timed([sys.executable, "-c", "import census_salary.train"], {})
        for _ in range(args.floor_runs)
    ]
    runs, alone = [], []
    for n in range(args.runs):
        runs.append(train_once(n, "", {}))
        if args.one_process:
            alone.append(train_once(n, "one process, ", {"CENSUS_TRAIN__PROCESSES": "1"}))
    search = {
        "CENSUS_SEARCH__ENABLED": "true",
        "CENSUS_SEARCH__GRID": json.dumps(SEARCH_GRID),
    }
    searches = [train_once(n, "search, ", search) for n in range(args.search_runs)]
    if fingerprint() != before:
        raise RuntimeError("the committed artifacts or ModelCard.md changed during the benchmark!")

    wall, base = median(runs), median(floor)
    print()
    print(f"census train on data/census.csv; median of {args.runs} runs (floor: {args.floor_runs})")
    print(machine(["scikit-learn", "numpy", "pandas", "skops", "matplotlib"]))
    rows = [
        (
            "census train, wall",
            f"{wall:.2f}",
            spread(runs, ".2f"),
            "s",
            "<= 6",
            verdict(wall <= 6),
            f"{base:.2f}",
            f"{wall / base:.1f}x",
        ),
        ("census train minus import floor", f"{wall - base:.2f}", "", "s", "", "", "", ""),
    ]
    if alone:
        rows.append(
            (
                "the same in one process ([train] processes = 1)",
                f"{median(alone):.2f}",
                spread(alone, ".2f"),
                "s",
                "",
                "",
                f"{base:.2f}",
                f"{median(alone) / base:.1f}x",
            )
        )
    if searches:
        searched = median(searches)
        rows.append(
            (
                f"with a search of {math.prod(map(len, SEARCH_GRID.values()))} candidates, wall",
                f"{searched:.2f}",
                spread(searches, ".2f"),
                "s",
                "<= 60",
                verdict(searched <= 60),
                f"{base:.2f}",
                f"{searched / base:.1f}x",
            )
        )
    print_table(
        ("figure", "ours", "min-max", "unit", "target", "result", "floor", "ours/floor"), rows
    )
    print(f"floor runs: {spread(floor)} s")


if __name__ == "__main__":
    main()
