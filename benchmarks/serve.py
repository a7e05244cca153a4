"""How fast `census serve` answers, over loopback, one worker, the committed model.

Measures, for our server and for a floor measured in the same run (a bare uvicorn +
FastAPI app written by this script, whose POST /predict reads the body, decodes it with
the standard library's `json.loads` and returns a constant JSON: issue #10's floor, "a
bare FastAPI app that decodes the same body"):

| figure                                                   | target      |
| -------------------------------------------------------- | ----------- |
| single-row POST /predict, 1,000 sequential requests, p50 | <= 1 ms     |
| the same, p99                                            | <= 10 ms    |
| requests/s, 16 concurrent keep-alive clients, 5 x 6 s   | >= 1,500 /s |
| one 1,000-row POST /predict, median of 20                | <= 5 ms     |
| launch to the first successful prediction, median of 5   | <= 0.6 s    |
| server RSS after the load                                | <= 250 MB   |

`--baseline-env KEY=VALUE` also measures `census serve` with that environment, so a
setting's cost is measured in the same run (`CENSUS_SERVE__METRICS=off`: no counting).
`--rounds N` measures every server N times, in turn, and pools the runs: a change in the
machine's load then meets them all alike (the RSS figures are the last round's).

Latencies are medians over `--runs` runs of the sequential loop. Every request is sent
with one `sendall` by the raw client in `_http.py`. All traffic goes to 127.0.0.1 and
every loop is bounded by a count or a deadline.

    .venv/bin/python benchmarks/serve.py            # about 2 minutes
    .venv/bin/python benchmarks/serve.py --duration 5 --requests 300 --runs 1   # quick
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from census_salary.contract import EXAMPLE_ROW, NUMERICAL, canonical_name

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import (
    HOST,
    ROOT,
    Client,
    HttpError,
    free_port,
    machine,
    median,
    percentile,
    print_table,
    rss_mb,
    serve_command,
    start_process,
    stop_process,
    verdict,
    wait_for,
)

FLOOR_APP = textwrap.dedent(
    """
    import json

    from fastapi import FastAPI, Request

    app = FastAPI()
    ANSWER = {"predictions": ["<=50K"], "probabilities": [0.01], "warnings": [[]],
              "model_version": "floor", "threshold": 0.5, "model_lib_version": "0",
              "timestamp": "2026-01-01T00:00:00+00:00"}

    @app.get("/ready")
    def ready() -> dict:
        return {"status": "ready"}

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        json.loads(await request.body())
        return ANSWER
    """
)


def data_rows(n: int) -> list[dict]:
    """The first n rows of data/census.csv as JSON rows (hyphenated names, no label)."""
    rows = []
    with (ROOT / "data" / "census.csv").open(newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        for record in reader:
            row = {k.strip(): v.strip() for k, v in record.items() if k.strip() != "salary"}
            rows.append(
                {k: int(v) if canonical_name(k) in NUMERICAL else v for k, v in row.items()}
            )
            if len(rows) == n:
                break
    return rows


@dataclass
class Figures:
    name: str
    launch_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    load_p50_ms: list[float] = field(default_factory=list)
    load_p99_ms: list[float] = field(default_factory=list)
    errors: int = 0
    batch_ms: list[float] = field(default_factory=list)
    rss_idle_mb: float = 0.0
    rss_after_mb: float = 0.0


def launch(command: list[str], env: dict | None, body: bytes, port: int):
    """Start the server; return (process, seconds from Popen to the first 200 on /predict)."""
    started = time.perf_counter()
    process = start_process(command, env=env)
    try:
        wait_for(HOST, port, "/predict", method="POST", body=body, timeout=60, process=process)
    except BaseException:
        stop_process(process)
        raise
    return process, time.perf_counter() - started


def sequential(port: int, request: bytes, count: int) -> list[float]:
    """Latencies (s) of `count` requests one after another on one connection."""
    times = []
    with Client(HOST, port) as client:
        for _ in range(min(50, count)):  # warm-up
            client.send_raw(request)
        for _ in range(count):
            t0 = time.perf_counter()
            response = client.send_raw(request)
            times.append(time.perf_counter() - t0)
            if response.status != 200:
                raise RuntimeError(f"status {response.status}: {response.body[:200]!r}")
    return times


def concurrent(port: int, request: bytes, clients: int, duration: float):
    """(requests/s, latencies, errors) of `clients` threads looping until the deadline."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        with Client(HOST, port) as client:
            client.send_raw(request)  # connect and warm up outside the timed window
            start.wait(timeout=60)
            while (t0 := time.perf_counter()) < deadline[0]:
                try:
                    status = client.send_raw(request).status
                except (OSError, HttpError):
                    status = 0
                latencies[i].append(time.perf_counter() - t0)
                if status != 200:
                    errors[i] += 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + duration
    start.wait(timeout=60)  # a client that failed to warm up breaks the barrier: we stop
    for thread in threads:
        thread.join(timeout=duration + 30)
    elapsed = time.perf_counter() - began
    every = [t for per in latencies for t in per]
    return len(every) / elapsed, every, sum(errors)


def measure(
    name: str, command: list[str], env: dict | None, port: int, args, figures: Figures | None = None
) -> Figures:
    """Measure one server; with `figures`, add this round's runs to those."""
    figures = figures or Figures(name)
    one = Client.build("POST", "/predict", HOST, json.dumps({"inputs": [EXAMPLE_ROW]}).encode())
    many_body = json.dumps({"inputs": data_rows(args.rows)}).encode()
    many = Client.build("POST", "/predict", HOST, many_body)
    first_body = json.dumps({"inputs": [EXAMPLE_ROW]}).encode()
    process = None
    try:
        for n in range(args.launches):
            process, seconds = launch(command, env, first_body, port)
            figures.launch_s.append(seconds)
            if n < args.launches - 1:
                stop_process(process)
        print(f"  {name}: launched {args.launches}x", flush=True)
        figures.rss_idle_mb = rss_mb(process.pid)
        for _ in range(args.runs):
            times = sequential(port, one, args.requests)
            figures.p50_ms.append(percentile(times, 50) * 1e3)
            figures.p99_ms.append(percentile(times, 99) * 1e3)
        print(f"  {name}: sequential done", flush=True)
        with Client(HOST, port) as client:
            client.send_raw(many)
            for _ in range(args.batch_runs):
                t0 = time.perf_counter()
                response = client.send_raw(many)
                figures.batch_ms.append((time.perf_counter() - t0) * 1e3)
                if response.status != 200:
                    raise RuntimeError(f"batch status {response.status}: {response.body[:200]!r}")
        print(f"  {name}: batch done", flush=True)
        for _ in range(args.throughput_runs):
            rps, latencies, errors = concurrent(port, one, args.clients, args.duration)
            figures.rps.append(rps)
            figures.load_p50_ms.append(percentile(latencies, 50) * 1e3)
            figures.load_p99_ms.append(percentile(latencies, 99) * 1e3)
            figures.errors += errors
        print(f"  {name}: throughput done", flush=True)
        figures.rss_after_mb = rss_mb(process.pid)
    finally:
        if process is not None:
            stop_process(process)
    return figures


def floor_server(tmp: Path, port: int) -> tuple[list[str], dict]:
    (tmp / "floor_app.py").write_text(FLOOR_APP)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "floor_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return command, {"PYTHONPATH": str(tmp)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests a run")
    parser.add_argument("--runs", type=int, default=5, help="runs of the sequential loop")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load a run")
    parser.add_argument("--throughput-runs", type=int, default=5, help="runs of the load")
    parser.add_argument("--rows", type=int, default=1000, help="rows in the batch request")
    parser.add_argument("--batch-runs", type=int, default=20, help="batch requests timed")
    parser.add_argument("--launches", type=int, default=5, help="server launches timed")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare FastAPI floor")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of our server, to try a setting (e.g. OMP_NUM_THREADS=1)",
    )
    parser.add_argument(
        "--baseline-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also measure census serve with this environment (repeat), to see what a "
        "setting costs in the same run: CENSUS_SERVE__METRICS=off counts nothing",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every server this many times, in turn; figures pool all rounds' runs",
    )
    args = parser.parse_args()
    server_env = dict(item.split("=", 1) for item in args.server_env)

    print(
        f"Benchmarking census serve (1 worker) and a bare FastAPI floor on {HOST} "
        f"(load average before: {os.getloadavg()[0]:.2f})..."
    )
    port = free_port()
    if server_env:
        print(f"  our server's extra environment: {server_env}")
    ours = floor = baseline = None
    baseline_env = {**server_env, **dict(item.split("=", 1) for item in args.baseline_env)}
    # Round by round, each server in turn, so a change in the machine's load meets them all.
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"  round {round_ + 1} of {args.rounds}", flush=True)
        port = free_port()
        ours = measure("census serve", serve_command(port), server_env, port, args, ours)
        if not args.no_floor:
            with tempfile.TemporaryDirectory() as tmp:
                port = free_port()
                command, env = floor_server(Path(tmp), port)
                floor = measure("floor", command, env, port, args, floor)
        if args.baseline_env:
            port = free_port()
            baseline = measure("baseline", serve_command(port), baseline_env, port, args, baseline)
    assert ours is not None

    def ratio(a: float, b: float | None) -> str:
        return f"{a / b:.2f}x" if b else "-"

    def num(value: float | None) -> str:
        return "-" if value is None else (f"{value:.3f}" if value < 10 else f"{value:.1f}")

    # label, unit, a server's runs of the figure, target text, limit, "le"/"ge" (None: no target)
    lines = [
        ("POST /predict 1 row, p50", "ms", lambda f: f.p50_ms, "<= 1", 1.0, "le"),
        ("POST /predict 1 row, p99", "ms", lambda f: f.p99_ms, "<= 10", 10.0, "le"),
        (f"throughput, {args.clients} clients", "req/s", lambda f: f.rps, ">= 1500", 1500.0, "ge"),
        ("  latency under load, p50", "ms", lambda f: f.load_p50_ms, "", None, ""),
        ("  latency under load, p99", "ms", lambda f: f.load_p99_ms, "", None, ""),
        (f"POST /predict {args.rows} rows, median", "ms", lambda f: f.batch_ms, "<= 5", 5.0, "le"),
        ("launch to first prediction, median", "s", lambda f: f.launch_s, "<= 0.6", 0.6, "le"),
        ("RSS idle after launch", "MB", lambda f: [f.rss_idle_mb], "", None, ""),
        ("RSS after the load", "MB", lambda f: [f.rss_after_mb], "<= 250", 250.0, "le"),
    ]
    rows = []
    for label, unit, runs, target, limit, kind in lines:
        value = median(runs(ours))
        ok = "" if limit is None else verdict(value <= limit if kind == "le" else value >= limit)
        span = f"{num(min(runs(ours)))}-{num(max(runs(ours)))}"
        row = [label, num(value), span, unit, target, ok]
        for other in (floor, baseline):
            if other is not None:
                row += [num(median(runs(other))), ratio(value, median(runs(other)))]
        rows.append(row)
    headers = ["figure", "ours", "min-max", "unit", "target", "result"]
    if floor is not None:
        headers += ["floor", "ours/floor"]
    if baseline is not None:
        headers += ["baseline", "ours/baseline"]
    print()
    print(
        "census serve vs a bare FastAPI floor"
        + (f" and census serve with {' '.join(args.baseline_env)}" if baseline else "")
        + (f"; {args.rounds} rounds, each server in turn" if args.rounds > 1 else "")
        + f"; sequential: median of {args.runs} runs x {args.requests}; load: median of "
        f"{args.throughput_runs} x {args.duration:g} s; batch: median of {args.batch_runs}; "
        f"launch: median of {args.launches}"
    )
    print(machine(["fastapi", "starlette", "uvicorn", "pydantic", "orjson", "numpy"]))
    print_table(headers, rows)
    print()
    for figures in (ours, floor, baseline):
        if figures is not None:
            print(
                f"{figures.name} runs: p50 ms {[round(x, 3) for x in figures.p50_ms]}, "
                f"p99 ms {[round(x, 3) for x in figures.p99_ms]}, "
                f"launch s {[round(x, 3) for x in figures.launch_s]}, "
                f"req/s {[round(x, 1) for x in figures.rps]}, "
                f"batch ms {[round(x, 2) for x in figures.batch_ms]}, "
                f"errors under load {figures.errors}"
            )


if __name__ == "__main__":
    main()
