"""Rows/s of `census predict --engine spark|dask` in local mode, beside one machine.

Builds a Parquet input (`--rows`, default 1,000,000, in `--files` files) from the rows of
data/census.csv, and the same rows as one CSV file, then measures in this run:

| figure                                                    | what it is                       |
| --------------------------------------------------------- | -------------------------------- |
| census predict, one CSV file to CSV (the floor)           | the CLI, process start to exit   |
| one process, no engine: the Parquet files to Parquet parts | `partition.predict_files` with   |
|                                                           | `run_tasks` called in-process    |
| Spark local[1], local[2]; Dask LocalCluster 1 and 2 workers | `partition.predict_files` on the |
|                                                           | engine, its cluster already up   |
| start-up of each engine                                   | session or cluster, once         |

Each rows/s is the median of `--runs` runs (min and max beside it). The engines are
timed with their cluster already started (start-up is printed on its own line), since
on a real cluster it is paid once per job, not per row. The default model (artifacts/)
scores. No target: these figures feed docs/scaling.md.

    .venv/bin/python benchmarks/engines.py                     # about 3 minutes
    .venv/bin/python benchmarks/engines.py --rows 20000 --files 2 --runs 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import CONFIG, ROOT, census_command, machine, median, print_table

from census_salary.bundle import current_bundle_dir
from census_salary.config import load_settings
from census_salary.partition import Runner, predict_files, run_tasks


def write_inputs(folder: Path, rows: int, files: int) -> tuple[Path, Path]:
    """`rows` census rows as `files` Parquet files (numbers as integers, text trimmed)
    and as one CSV file as published; the Parquet folder and the CSV file."""
    import pandas as pd

    frame = pd.read_csv(ROOT / "data" / "census.csv", dtype=str, skipinitialspace=True)
    frame = frame.drop(columns="salary")
    text = (ROOT / "data" / "census.csv").read_text(encoding="utf-8").splitlines()
    header, lines = text[0], [line for line in text[1:] if line.strip()]
    repeats = -(-rows // len(frame))
    big = pd.concat([frame] * repeats, ignore_index=True).iloc[:rows]
    for name in ("age", "fnlgt", "education-num", "capital-gain", "capital-loss"):
        big[name] = big[name].astype("int64")
    big["hours-per-week"] = big["hours-per-week"].astype("int64")
    parquet = folder / "parquet"
    parquet.mkdir()
    size = -(-rows // files)
    for n in range(files):
        big.iloc[n * size : (n + 1) * size].to_parquet(parquet / f"rows-{n:03d}.parquet")
    csv = folder / "rows.csv"
    with csv.open("w", encoding="utf-8") as out:
        out.write(header.rsplit(",", 1)[0] + "\n")
        for i in range(rows):
            out.write(lines[i % len(lines)].rsplit(",", 1)[0] + "\n")
    return parquet, csv


def timed(action: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8, help="Parquet files (one task each)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"engines benchmark (load average before: {load:.2f})", flush=True)
    settings = load_settings(CONFIG, environ={})
    bundle_dir = current_bundle_dir(settings.artifacts_dir)
    table: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        parquet, csv = write_inputs(tmp, args.rows, args.files)
        outputs = iter(range(1_000_000))

        def engine(run: Runner) -> Callable[[], object]:
            def score() -> object:
                out = tmp / f"out-{next(outputs)}"
                problems = predict_files(run, bundle_dir, str(parquet), out)
                shutil.rmtree(out)
                return problems

            return score

        def census_predict() -> None:
            command = [*census_command(), "--config", str(CONFIG), "predict"]
            command += ["--input", str(csv), "--output", str(tmp / "out.csv")]
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

        def row(figure: str, times: list[float], floor: float | None = None) -> None:
            rate = args.rows / median(times)
            ratio = f"{rate / floor:.2f}" if floor else ""
            spread = f"{args.rows / max(times):,.0f}-{args.rows / min(times):,.0f}"
            table.append((figure, f"{rate:,.0f}", spread, "rows/s", "-", ratio))
            print(f"  {figure}: {rate:,.0f} rows/s", flush=True)

        floor_times = timed(census_predict, args.runs)
        floor = args.rows / median(floor_times)
        row("census predict, 1 CSV file (the floor)", floor_times)
        row("one process, no engine, Parquet", timed(engine(run_tasks), args.runs), floor)

        from census_salary.engines import spark

        for workers in (1, 2):
            started = time.perf_counter()
            session = spark.session(f"local[{workers}]")
            table.append(
                (
                    f"Spark local[{workers}] start-up",
                    f"{time.perf_counter() - started:.1f}",
                    "",
                    "s",
                    "-",
                    "",
                )
            )
            try:
                row(f"Spark local[{workers}]", timed(engine(spark.run), args.runs), floor)
            finally:
                session.stop()

        from distributed import Client, LocalCluster

        from census_salary.engines import dask

        for workers in (1, 2):
            started = time.perf_counter()
            with (
                LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as c,
                Client(c),
            ):
                table.append(
                    (
                        f"Dask {workers} worker(s) start-up",
                        f"{time.perf_counter() - started:.1f}",
                        "",
                        "s",
                        "-",
                        "",
                    )
                )
                row(
                    f"Dask LocalCluster, {workers} worker(s)",
                    timed(engine(dask.run), args.runs),
                    floor,
                )

    print(f"\n{args.rows:,} rows in {args.files} Parquet files; median of {args.runs} run(s)")
    print(machine(["pyspark", "dask", "distributed", "pyarrow", "pandas"]))
    print()
    print_table(("figure", "ours", "min-max", "unit", "target", "ours/floor"), table)


if __name__ == "__main__":
    main()
