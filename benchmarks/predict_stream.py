"""Streaming throughput and memory of `census predict` on large CSV and JSON Lines files.

Builds files in a temporary folder by repeating the rows of data/census.csv, then runs
`census --config census.toml predict --input FILE --output OUT` as a subprocess:

| figure                                                          | target          |
| --------------------------------------------------------------- | --------------- |
| CSV rows/s, end to end (process start to exit), median of runs   | >= 150,000 /s   |
| peak RSS on the large file vs the small one (bounded memory)     | <= 1.25x        |

Also printed, without a target: the fixed cost of a run (a 1-row file: interpreter,
imports, model load), the rows/s net of that fixed cost, JSON Lines rows/s, and the
same figures of a floor measured in the same run: pandas `read_csv` + `to_csv` of the
same file in the same chunks (and `read_json(lines=True)` + `to_json` for JSON Lines)
in a fresh interpreter, i.e. pure parsing and writing with no checking or scoring.

Peak RSS comes from `/usr/bin/time -v` where it exists, else from polling VmHWM.

    .venv/bin/python benchmarks/predict_stream.py                     # about 2 minutes
    .venv/bin/python benchmarks/predict_stream.py --rows 100000 --large-rows 300000 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import CONFIG, ROOT, census_command, median, print_table, verdict

TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
NUMERIC = {"age", "fnlgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}

FLOOR = textwrap.dedent(
    """
    import sys
    import pandas as pd

    source, target, fmt, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with open(source, encoding="utf-8", newline="") as src, open(target, "w") as out:
        if fmt == "csv":
            reader = pd.read_csv(src, dtype=str, keep_default_na=False,
                                 skipinitialspace=True, chunksize=chunk)
            for i, frame in enumerate(reader):
                frame.to_csv(out, index=False, header=i == 0, lineterminator="\\n")
        else:
            for frame in pd.read_json(src, lines=True, chunksize=chunk):
                out.write(frame.to_json(orient="records", lines=True))
    """
)


@dataclass
class Run:
    seconds: float
    peak_mb: float


def source_rows() -> tuple[str, list[str]]:
    lines = (ROOT / "data" / "census.csv").read_text(encoding="utf-8").splitlines()
    return lines[0], [line for line in lines[1:] if line.strip()]


def write_csv(path: Path, header: str, rows: list[str], n: int) -> None:
    block = "\n".join(rows) + "\n"
    full, rest = divmod(n, len(rows))
    with path.open("w", encoding="utf-8") as out:
        out.write(header + "\n")
        for _ in range(full):
            out.write(block)
        if rest:
            out.write("\n".join(rows[:rest]) + "\n")


def write_jsonl(path: Path, header: str, rows: list[str], n: int) -> None:
    names = [name.strip() for name in header.split(",")]
    records = []
    for line in rows:
        values = [value.strip() for value in line.split(",")]
        record = {k: int(v) if k in NUMERIC else v for k, v in zip(names, values, strict=True)}
        record.pop("salary", None)
        records.append(json.dumps(record))
    block = "\n".join(records) + "\n"
    full, rest = divmod(n, len(records))
    with path.open("w", encoding="utf-8") as out:
        for _ in range(full):
            out.write(block)
        if rest:
            out.write("\n".join(records[:rest]) + "\n")


def run(command: list[str], tmp: Path) -> Run:
    """Wall time and peak RSS (MB) of one command; fails loudly if it fails."""
    report = tmp / "time.txt"
    if TIME:
        command = [TIME, "-v", "-o", str(report), *command]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak_kib = 0
    if not TIME:  # poll the high-water mark until the process exits
        while process.poll() is None:
            try:
                for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            except FileNotFoundError:
                break
            time.sleep(0.02)
    _, stderr = process.communicate(timeout=600)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {stderr[-2000:]}")
    if TIME:
        for line in report.read_text().splitlines():
            if "Maximum resident set size" in line:
                peak_kib = int(line.rsplit(":", 1)[1])
    return Run(seconds, peak_kib * 1024 / 1e6)


def census_predict(source: Path, tmp: Path, chunk_size: int | None) -> list[str]:
    target = tmp / ("out" + source.suffix)
    extra = ["--chunk-size", str(chunk_size)] if chunk_size else []
    return [
        *census_command(),
        "--config",
        str(CONFIG),
        "predict",
        "--input",
        str(source),
        "--output",
        str(target),
        *extra,
    ]


def floor_command(source: Path, tmp: Path, fmt: str, chunk: int) -> list[str]:
    script = tmp / "floor.py"
    script.write_text(FLOOR)
    return [sys.executable, str(script), str(source), str(tmp / "floor.out"), fmt, str(chunk)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the timed CSV")
    parser.add_argument("--large-rows", type=int, default=1_000_000, help="rows of the large CSV")
    parser.add_argument("--large-runs", type=int, default=1, help="runs on the large CSV")
    parser.add_argument("--jsonl-rows", type=int, default=100_000, help="rows of the JSONL file")
    parser.add_argument("--runs", type=int, default=3, help="runs of each other measurement")
    parser.add_argument("--chunk-size", type=int, default=50_000, help="--chunk-size given")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(f"census predict streaming benchmark (load average before: {load:.2f})", flush=True)
    header, rows = source_rows()
    with tempfile.TemporaryDirectory(prefix="census-bench-") as name:
        tmp = Path(name)
        files = {
            "one": tmp / "one.csv",
            "csv": tmp / "rows.csv",
            "large": tmp / "large.csv",
            "jsonl": tmp / "rows.jsonl",
        }
        write_csv(files["one"], header, rows, 1)
        write_csv(files["csv"], header, rows, args.rows)
        write_csv(files["large"], header, rows, args.large_rows)
        write_jsonl(files["jsonl"], header, rows, args.jsonl_rows)
        size_mb = files["large"].stat().st_size / 1e6
        print(f"  files written ({args.large_rows:,} CSV rows = {size_mb:.0f} MB)", flush=True)

        def repeat(command: list[str], runs: int, label: str) -> list[Run]:
            results = [run(command, tmp) for _ in range(runs)]
            print(f"  {label}: {[round(r.seconds, 2) for r in results]} s", flush=True)
            return results

        chunk = args.chunk_size
        fixed = repeat(census_predict(files["one"], tmp, chunk), args.runs, "1-row file")
        csv_runs = repeat(census_predict(files["csv"], tmp, chunk), args.runs, f"{args.rows:,} CSV")
        large_runs = repeat(
            census_predict(files["large"], tmp, chunk), args.large_runs, f"{args.large_rows:,} CSV"
        )
        jsonl_runs = repeat(
            census_predict(files["jsonl"], tmp, chunk), args.runs, f"{args.jsonl_rows:,} JSONL"
        )
        floor_csv = repeat(floor_command(files["csv"], tmp, "csv", chunk), args.runs, "floor CSV")
        floor_large = repeat(
            floor_command(files["large"], tmp, "csv", chunk), args.large_runs, "floor large CSV"
        )
        floor_jsonl = repeat(
            floor_command(files["jsonl"], tmp, "jsonl", chunk), args.runs, "floor JSONL"
        )

    def secs(results: list[Run]) -> float:
        return median([r.seconds for r in results])

    def peak(results: list[Run]) -> float:
        return max(r.peak_mb for r in results)

    fixed_s = secs(fixed)
    csv_rate = args.rows / secs(csv_runs)
    large_rate = args.large_rows / secs(large_runs)
    net_rate = args.rows / max(secs(csv_runs) - fixed_s, 1e-9)
    jsonl_rate = args.jsonl_rows / secs(jsonl_runs)
    floor_csv_rate = args.rows / secs(floor_csv)
    floor_large_rate = args.large_rows / secs(floor_large)
    floor_jsonl_rate = args.jsonl_rows / secs(floor_jsonl)
    growth = peak(large_runs) / peak(csv_runs)
    floor_growth = peak(floor_large) / peak(floor_csv)

    def rate(value: float) -> str:
        return f"{value:,.0f}"

    table = [
        (
            f"CSV {args.rows:,} rows, end to end",
            rate(csv_rate),
            "rows/s",
            ">= 150,000",
            verdict(csv_rate >= 150_000),
            rate(floor_csv_rate),
            f"{csv_rate / floor_csv_rate:.2f}x",
        ),
        (
            f"CSV {args.large_rows:,} rows, end to end",
            rate(large_rate),
            "rows/s",
            ">= 150,000",
            verdict(large_rate >= 150_000),
            rate(floor_large_rate),
            f"{large_rate / floor_large_rate:.2f}x",
        ),
        ("fixed cost (1-row file)", f"{fixed_s:.2f}", "s", "", "", "", ""),
        (f"CSV {args.rows:,} rows, net of fixed cost", rate(net_rate), "rows/s", "", "", "", ""),
        (
            f"JSONL {args.jsonl_rows:,} rows, end to end",
            rate(jsonl_rate),
            "rows/s",
            "",
            "",
            rate(floor_jsonl_rate),
            f"{jsonl_rate / floor_jsonl_rate:.2f}x",
        ),
        (
            f"peak RSS, CSV {args.rows:,} rows",
            f"{peak(csv_runs):.0f}",
            "MB",
            "",
            "",
            f"{peak(floor_csv):.0f}",
            f"{peak(csv_runs) / peak(floor_csv):.2f}x",
        ),
        (
            f"peak RSS, CSV {args.large_rows:,} rows",
            f"{peak(large_runs):.0f}",
            "MB",
            "",
            "",
            f"{peak(floor_large):.0f}",
            f"{peak(large_runs) / peak(floor_large):.2f}x",
        ),
        (
            "peak RSS growth, large / small",
            f"{growth:.2f}",
            "x",
            "<= 1.25",
            verdict(growth <= 1.25),
            f"{floor_growth:.2f}",
            "",
        ),
        (
            f"peak RSS, JSONL {args.jsonl_rows:,} rows",
            f"{peak(jsonl_runs):.0f}",
            "MB",
            "",
            "",
            f"{peak(floor_jsonl):.0f}",
            "",
        ),
    ]
    print()
    print(
        f"census predict (chunk size {chunk:,}) vs pandas read+write floor; medians of "
        f"{args.runs} runs ({args.large_runs} on the large file); "
        f"load average after: {os.getloadavg()[0]:.2f}"
    )
    print_table(("figure", "ours", "unit", "target", "result", "floor", "ours/floor"), table)


if __name__ == "__main__":
    main()
