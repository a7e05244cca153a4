"""Streaming throughput and memory of `census predict` on large CSV, JSON Lines and Parquet
files.

Builds files in a temporary folder by repeating the rows of data/census.csv, then runs
`census --config census.toml predict --input FILE --output OUT` as a subprocess:

| figure                                                               | target          |
| -------------------------------------------------------------------- | --------------- |
| 1,000,000-row CSV to CSV, rows/s end to end (process start to exit)  | >= 250,000 /s   |
| peak RSS on that file                                                | <= 400 MB       |
| peak RSS on a 10,000,000-row CSV (with --huge-rows 10000000)         | <= 400 MB       |
| one JSON row, the whole process                                      | <= 0.8 s        |

Also printed, without a target: one CSV row, the rows/s net of the fixed cost, JSON
Lines rows/s, the peak RSS of a smaller file, the same rows as Parquet in and Parquet
out (typed columns, row groups of 100,000; run in turn with the timed CSV), and the same
figures of a floor measured in the same run: pandas `read_csv` + `to_csv` of the same
file in the same chunks (`read_json(lines=True)` + `to_json` for JSON Lines; pyarrow's
`iter_batches` + `ParquetWriter` for Parquet) in a fresh interpreter, i.e. pure parsing
and writing with no checking or scoring; for one row, `python -c pass`.

Peak RSS comes from `/usr/bin/time -v` where it exists, else from polling VmHWM.

    .venv/bin/python benchmarks/predict_stream.py                        # about 3 minutes
    .venv/bin/python benchmarks/predict_stream.py --huge-rows 10000000   # + about 3 minutes
    .venv/bin/python benchmarks/predict_stream.py --rows 20000 --large-rows 200000 --runs 1
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

from _http import CONFIG, ROOT, census_command, machine, median, print_table, spread, verdict

TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
NUMERIC = {"age", "fnlgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}

FLOOR = textwrap.dedent(
    """
    import sys
    import pandas as pd

    source, target, fmt, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if fmt == "parquet":
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(source).iter_batches(batch_size=chunk)
        first = next(batches)
        with pq.ParquetWriter(target, first.schema) as writer:
            writer.write_batch(first)
            for batch in batches:
                writer.write_batch(batch)
        sys.exit()
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


def write_parquet(path: Path, header: str, rows: list[str], n: int) -> None:
    """The rows as Parquet, typed as a data tool writes them: whole numbers int64, text
    without the spaces after the commas, row groups of 100,000 rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [name.strip() for name in header.split(",")]
    values = list(zip(*(line.split(",") for line in rows), strict=True))
    block = pa.table(
        {
            name: [int(v) for v in column] if name in NUMERIC else [v.strip() for v in column]
            for name, column in zip(names, values, strict=True)
        }
    )
    full, rest = divmod(n, len(rows))
    table = pa.concat_tables([block] * full + [block.slice(0, rest)])
    pq.write_table(table, path, row_group_size=100_000)


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
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the small CSV")
    parser.add_argument(
        "--large-rows", type=int, default=1_000_000, help="rows of the timed CSV (the target)"
    )
    parser.add_argument("--large-runs", type=int, default=5, help="runs on the timed CSV")
    parser.add_argument(
        "--huge-rows", type=int, default=0, help="rows of a CSV run once for its peak RSS (0: none)"
    )
    parser.add_argument("--jsonl-rows", type=int, default=100_000, help="rows of the JSONL file")
    parser.add_argument("--runs", type=int, default=5, help="runs of each other measurement")
    parser.add_argument("--chunk-size", type=int, default=50_000, help="--chunk-size given")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(f"census predict streaming benchmark (load average before: {load:.2f})", flush=True)
    header, rows = source_rows()
    with tempfile.TemporaryDirectory(prefix="census-bench-") as name:
        tmp = Path(name)
        files = {
            "one": tmp / "one.csv",
            "one_json": tmp / "one.json",
            "csv": tmp / "rows.csv",
            "large": tmp / "large.csv",
            "jsonl": tmp / "rows.jsonl",
            "parquet": tmp / "large.parquet",
        }
        write_csv(files["one"], header, rows, 1)
        write_jsonl(files["one_json"], header, rows, 1)
        write_csv(files["csv"], header, rows, args.rows)
        write_csv(files["large"], header, rows, args.large_rows)
        write_jsonl(files["jsonl"], header, rows, args.jsonl_rows)
        write_parquet(files["parquet"], header, rows, args.large_rows)
        size_mb = files["large"].stat().st_size / 1e6
        print(f"  files written ({args.large_rows:,} CSV rows = {size_mb:.0f} MB)", flush=True)

        def repeat(command: list[str], runs: int, label: str) -> list[Run]:
            results = [run(command, tmp) for _ in range(runs)]
            print(f"  {label}: {[round(r.seconds, 2) for r in results]} s", flush=True)
            return results

        chunk = args.chunk_size
        bare = repeat([sys.executable, "-c", "pass"], args.runs, "python -c pass")
        one_json = repeat(census_predict(files["one_json"], tmp, chunk), args.runs, "1 JSON row")
        one_csv = repeat(census_predict(files["one"], tmp, chunk), args.runs, "1 CSV row")
        # Ours and the floor in turn, so that a change of load touches both alike.
        large_runs: list[Run] = []
        floor_large: list[Run] = []
        parquet_runs: list[Run] = []
        floor_parquet: list[Run] = []
        for _ in range(args.large_runs):
            large_runs += repeat(
                census_predict(files["large"], tmp, chunk), 1, f"{args.large_rows:,} CSV"
            )
            floor_large += repeat(
                floor_command(files["large"], tmp, "csv", chunk), 1, "floor, same CSV"
            )
            parquet_runs += repeat(
                census_predict(files["parquet"], tmp, chunk), 1, "same rows, Parquet"
            )
            floor_parquet += repeat(
                floor_command(files["parquet"], tmp, "parquet", chunk), 1, "floor, same Parquet"
            )
        csv_runs = repeat(census_predict(files["csv"], tmp, chunk), args.runs, f"{args.rows:,} CSV")
        floor_csv = repeat(floor_command(files["csv"], tmp, "csv", chunk), args.runs, "floor CSV")
        jsonl_runs = repeat(
            census_predict(files["jsonl"], tmp, chunk), args.runs, f"{args.jsonl_rows:,} JSONL"
        )
        floor_jsonl = repeat(
            floor_command(files["jsonl"], tmp, "jsonl", chunk), args.runs, "floor JSONL"
        )
        huge_runs: list[Run] = []
        floor_huge: list[Run] = []
        if args.huge_rows:
            files["large"].unlink()  # room for the huge one
            huge = tmp / "huge.csv"
            write_csv(huge, header, rows, args.huge_rows)
            huge_runs = repeat(census_predict(huge, tmp, chunk), 1, f"{args.huge_rows:,} CSV")
            floor_huge = repeat(floor_command(huge, tmp, "csv", chunk), 1, "floor, same CSV")

    def secs(results: list[Run]) -> float:
        return median([r.seconds for r in results])

    def peak(results: list[Run]) -> float:
        return max(r.peak_mb for r in results)

    def rate(value: float) -> str:
        return f"{value:,.0f}"

    def ratio(ours: float, floor: float) -> str:
        return f"{ours / floor:.2f}x"

    def rates(results: list[Run], rows: int) -> str:
        """The runs' slowest and fastest rows/s."""
        times = [r.seconds for r in results]
        return f"{rate(rows / max(times))}-{rate(rows / min(times))}"

    def peaks(results: list[Run]) -> str:
        return spread([r.peak_mb for r in results], ".0f")

    def throughput(label: str, ours: list[Run], floor: list[Run], rows: int) -> list[object]:
        mine, base = rows / secs(ours), rows / secs(floor)
        span = rates(ours, rows)
        return [label, rate(mine), span, "rows/s", "", "", rate(base), ratio(mine, base)]

    def memory(label: str, ours: list[Run], floor: list[Run]) -> list[object]:
        mine, base = peak(ours), peak(floor)
        return [label, f"{mine:.0f}", peaks(ours), "MB", "", "", f"{base:.0f}", ratio(mine, base)]

    def target(row: list[object], text: str, ok: bool) -> list[object]:
        row[4:6] = [text, verdict(ok)]
        return row

    large, n = f"{args.large_rows:,}", args.large_rows
    net_rate = n / max(secs(large_runs) - secs(one_csv), 1e-9)
    table = [
        target(
            throughput(f"CSV {large} rows, end to end", large_runs, floor_large, n),
            ">= 250,000",
            n / secs(large_runs) >= 250_000,
        ),
        target(
            memory(f"peak RSS, CSV {large} rows", large_runs, floor_large),
            "<= 400",
            peak(large_runs) <= 400,
        ),
        throughput(f"Parquet {large} rows to Parquet, end to end", parquet_runs, floor_parquet, n),
        memory(f"peak RSS, Parquet {large} rows", parquet_runs, floor_parquet),
        [
            "one JSON row, whole process",
            f"{secs(one_json):.2f}",
            spread([r.seconds for r in one_json], ".2f"),
            "s",
            "<= 0.8",
            verdict(secs(one_json) <= 0.8),
            f"{secs(bare):.2f}",
            "",
        ],
        [
            "one CSV row, whole process",
            f"{secs(one_csv):.2f}",
            spread([r.seconds for r in one_csv], ".2f"),
            "s",
            "",
            "",
            f"{secs(bare):.2f}",
            "",
        ],
        [f"CSV {large} rows, net of one row", rate(net_rate), "", "rows/s", "", "", "", ""],
        throughput(f"CSV {args.rows:,} rows, end to end", csv_runs, floor_csv, args.rows),
        memory(f"peak RSS, CSV {args.rows:,} rows", csv_runs, floor_csv),
        throughput(
            f"JSONL {args.jsonl_rows:,} rows, end to end", jsonl_runs, floor_jsonl, args.jsonl_rows
        ),
        memory(f"peak RSS, JSONL {args.jsonl_rows:,} rows", jsonl_runs, floor_jsonl),
    ]
    if huge_runs:
        huge = f"{args.huge_rows:,}"
        table += [
            throughput(f"CSV {huge} rows, end to end", huge_runs, floor_huge, args.huge_rows),
            target(
                memory(f"peak RSS, CSV {huge} rows", huge_runs, floor_huge),
                "<= 400",
                peak(huge_runs) <= 400,
            ),
        ]
    print()
    print(
        f"census predict (chunk size {chunk:,}) vs pandas read+write floor; medians of "
        f"{args.runs} runs ({args.large_runs} on the timed file, each beside a floor run)"
    )
    print(machine(["pyarrow", "pandas", "numpy", "orjson"]))
    print_table(
        ("figure", "ours", "min-max", "unit", "target", "result", "floor", "ours/floor"), table
    )


if __name__ == "__main__":
    main()
