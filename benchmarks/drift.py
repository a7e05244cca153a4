"""What counting input drift costs `POST /predict`, in process, on the committed model.

| figure                                                        | target     |
| ------------------------------------------------------------- | ---------- |
| the route's work with drift counting, 1 row, over the floor   | <= 1.05x   |
| the same, 100 rows                                            | <= 1.05x   |
| the same, 1,000 rows                                          | <= 1.05x   |

Floor, measured in the same run: the same work without drift counting, that is what
`/predict` did before (check the rows, score them, count rows, positives and unknown
categories in the Prometheus metrics). Ours adds `Telemetry.count_drift`, and ends each
timed loop of `--repeat` calls with `Telemetry.flush_drift` (the rows that wait are
binned and counted inside the timing, as the server does every second). Both run with
prometheus_client in multiprocess mode (`--workers N`), where each increment writes to
a file, unless `--single-process`. Each figure is the median of `--runs` runs, each the
mean of `--repeat` calls; in process, so the machine's load matters less than it does
to `serve.py`, whose `--baseline-env` measures the whole server.

    .venv/bin/python benchmarks/drift.py             # about 20 s
    .venv/bin/python benchmarks/drift.py --runs 3 --repeat 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import ROOT, median, print_table, verdict


def timed_pair(
    floor: Callable[[], object],
    ours: Callable[[], object],
    runs: int,
    repeat: int,
    settle: Callable[[], object],
) -> tuple[float, float, float]:
    """Medians of the floor's and our mean call time, and of their ratio per run; the two
    alternate within each run, so both meet the same load. `settle` ends each of our
    timed loops (inside the timing): what our calls left to do is done and counted."""
    floor(), ours(), settle()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for work, kept, done in ((floor, times[0], None), (ours, times[1], settle)):
            started = time.perf_counter()
            for _ in range(repeat):
                work()
            if done is not None:
                done()
            kept.append((time.perf_counter() - started) / repeat)
    ratios = [b / a for a, b in zip(*times, strict=True)]
    return median(times[0]), median(times[1]), median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each figure")
    parser.add_argument("--repeat", type=int, default=200, help="calls timed in a run")
    parser.add_argument("--single-process", action="store_true", help="no multiprocess mode")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        if not args.single_process:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        import numpy as np

        from census_salary.api.telemetry import Telemetry
        from census_salary.bundle import load_bundle
        from census_salary.contract import EXAMPLE_ROW, check_records

        bundle = load_bundle(ROOT / "artifacts")
        telemetry = Telemetry()
        telemetry.model_loaded(bundle.version, bundle.threshold, bundle.profile)
        other = {**EXAMPLE_ROW, "age": 52, "education": "Masters", "race": "Martian"}

        def floor(rows: list[dict]) -> object:
            columns = check_records(rows).columns
            probabilities = bundle.probabilities(columns)
            positive = int(np.count_nonzero(probabilities >= bundle.threshold))
            unknown = bundle.unknown_categories(columns)
            telemetry.scored(len(rows), positive, {n: len(r) for n, r in unknown.items()})
            return columns

        def ours(rows: list[dict]) -> None:
            telemetry.count_drift(floor(rows), len(rows))

        figures = []
        for size in (1, 100, 1000):
            rows = [EXAMPLE_ROW if i % 2 == 0 else other for i in range(size)]
            repeat = max(args.repeat // max(size // 100, 1), 5)
            figures.append(
                (
                    size,
                    *timed_pair(
                        lambda rows=rows: floor(rows),
                        lambda rows=rows: ours(rows),
                        args.runs,
                        repeat,
                        telemetry.flush_drift,
                    ),
                )
            )
    mode = "single process" if args.single_process else "multiprocess mode"
    print(
        f"POST /predict's work with and without drift counting, in process ({mode}); "
        f"median of {args.runs} runs; load average: {os.getloadavg()[0]:.2f}"
    )
    print_table(
        ("figure", "ours", "unit", "target", "result", "floor", "ours/floor"),
        [
            (
                f"{size:,} row{'s' if size > 1 else ''}, drift counted",
                f"{value * 1e3:.3f}",
                "ms",
                "<= 1.05x",
                verdict(ratio <= 1.05),
                f"{base * 1e3:.3f}",
                f"{ratio:.2f}x",
            )
            for size, base, value, ratio in figures
        ],
    )


if __name__ == "__main__":
    main()
