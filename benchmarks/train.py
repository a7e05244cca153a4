"""Wall time of `census train` on the full data/census.csv, into a temporary artifacts folder.

| figure                                         | target   |
| ---------------------------------------------- | -------- |
| `census train`, process start to exit, median   | <= 10 s  |

Floor, measured in the same run: `python -c "import census_salary.train"` (interpreter
start and the imports training needs), so the ratio shows how much is the work itself.

The committed model is never touched: CENSUS_ARTIFACTS__DIR and
CENSUS_ARTIFACTS__MODEL_CARD point into a temporary folder, and the script checks that
artifacts/LATEST and ModelCard.md are byte for byte as before.

    .venv/bin/python benchmarks/train.py             # about a minute
    .venv/bin/python benchmarks/train.py --runs 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import CONFIG, ROOT, census_command, median, print_table, verdict

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="training runs timed")
    parser.add_argument("--floor-runs", type=int, default=5, help="import-only runs timed")
    args = parser.parse_args()

    before = fingerprint()
    print(f"census train benchmark (load average before: {os.getloadavg()[0]:.2f})", flush=True)
    floor = [
        timed([sys.executable, "-c", "import census_salary.train"], {})
        for _ in range(args.floor_runs)
    ]
    runs = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="census-train-") as name:
            tmp = Path(name)
            env = {
                "CENSUS_ARTIFACTS__DIR": str(tmp / "artifacts"),
                "CENSUS_ARTIFACTS__MODEL_CARD": str(tmp / "ModelCard.md"),
            }
            command = [*census_command(), "--config", str(CONFIG), "train", "--json"]
            runs.append(timed(command, env))
            if not (tmp / "artifacts" / "LATEST").exists():
                raise RuntimeError("census train did not write into the temporary folder")
        print(f"  run {n + 1}: {runs[-1]:.2f} s", flush=True)
    if fingerprint() != before:
        raise RuntimeError("the committed artifacts or ModelCard.md changed during the benchmark!")

    wall, base = median(runs), median(floor)
    print()
    print(
        f"census train on data/census.csv; median of {args.runs} runs (floor: "
        f"{args.floor_runs}); load average after: {os.getloadavg()[0]:.2f}"
    )
    print_table(
        ("figure", "ours", "unit", "target", "result", "floor", "ours/floor"),
        [
            (
                "census train, wall",
                f"{wall:.2f}",
                "s",
                "<= 10",
                verdict(wall <= 10),
                f"{base:.2f}",
                f"{wall / base:.1f}x",
            ),
            ("census train minus import floor", f"{wall - base:.2f}", "s", "", "", "", ""),
        ],
    )
    print(f"\nruns: {[round(r, 2) for r in runs]} s; floor runs: {[round(r, 3) for r in floor]} s")


if __name__ == "__main__":
    main()
