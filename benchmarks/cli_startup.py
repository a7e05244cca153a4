"""Wall time of `census --help`: how long the CLI takes to answer at all.

| figure                        | target    |
| ----------------------------- | --------- |
| `census --help`, median of 10 | <= 0.25 s |

Floor, measured in the same run: `python -c pass` (interpreter start alone). Also shown
without a target: `census --version` and `census predict --help`, which must not import
pandas or scikit-learn either.

    .venv/bin/python benchmarks/cli_startup.py            # a few seconds
    .venv/bin/python benchmarks/cli_startup.py --runs 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import ROOT, census_command, machine, median, print_table, spread, verdict


def timed(command: list[str], runs: int) -> list[float]:
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True)  # warm the disk cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command")
    args = parser.parse_args()

    census = census_command()
    floor = timed([sys.executable, "-c", "pass"], args.runs)
    figures = [
        ("census --help", timed([*census, "--help"], args.runs), 0.25),
        ("census --version", timed([*census, "--version"], args.runs), None),
        ("census predict --help", timed([*census, "predict", "--help"], args.runs), None),
    ]
    print(f"CLI start-up, median of {args.runs} runs; floor: python -c pass")
    print(machine(["typer", "click", "rich"]))
    print_table(
        ("figure", "ours", "min-max", "unit", "target", "result", "floor", "ours/floor"),
        [
            (
                label,
                f"{median(runs):.3f}",
                spread(runs),
                "s",
                "" if limit is None else f"<= {limit}",
                "" if limit is None else verdict(median(runs) <= limit),
                f"{median(floor):.3f}",
                f"{median(runs) / median(floor):.1f}x",
            )
            for label, runs, limit in figures
        ],
    )


if __name__ == "__main__":
    main()
