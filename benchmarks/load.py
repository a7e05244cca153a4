"""Sustained mixed load on `census serve`: nothing lost, nothing crashes, memory stays flat.

Starts `census serve` (one worker, the committed model, an API key that every request
sends) and drives it over loopback with 32 concurrent keep-alive clients for 60 s, three
runs back to back against the same process. Each client sends a seeded mix: 70% one-row
`POST /predict`, 20% 100-row (real rows of data/census.csv), 10% invalid (half a value out
of range, answered 422; half a body that is not JSON, answered 400).

| figure                                                                   | target  |
| ------------------------------------------------------------------------ | ------- |
| 5xx responses, all runs                                                  | 0       |
| dropped connections (a request that got no complete response), all runs | 0       |
| wrong answers (valid: not a 200 with one prediction a row; invalid: not a 4xx) | 0 |
| server RSS after the last run / after the first                          | <= 1.10 |

Printed per run: requests served, requests/s, counts by status, p50/p99 latency, dropped
connections and the server's RSS (VmRSS, with any child processes). Dropped connections
are counted, never retried: the client reconnects for its next request. There is no floor:
this checks behaviour over time, not speed; the RSS idle after launch is the reference.
All traffic goes to 127.0.0.1; every loop is bounded by a count and a deadline.

    .venv/bin/python benchmarks/load.py                              # about 3.5 minutes
    .venv/bin/python benchmarks/load.py --duration 10 --runs 2       # quick
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from census_salary.contract import EXAMPLE_ROW

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import (
    HOST,
    Client,
    HttpError,
    Response,
    free_port,
    machine,
    percentile,
    print_table,
    rss_mb,
    serve_command,
    start_process,
    stop_process,
    verdict,
    wait_for,
)
from serve import data_rows

API_KEY = "load-benchmark-key"
MAX_REQUESTS_PER_CLIENT = 1_000_000  # a bound besides the deadline
RSS_GROWTH_LIMIT = 1.10
# kind: (weight, rows a 200 must carry, or 0 when the request must be refused with a 4xx)
KINDS = {"one row": (70, 1), "100 rows": (20, 100), "out of range": (5, 0), "not JSON": (5, 0)}


class StrictClient(Client):
    """The shared keep-alive client without its one silent retry: a drop is counted."""

    def send_once(self, request: bytes) -> Response:
        if self._sock is None:
            self.connect()
        self._sock.sendall(request)  # type: ignore[union-attr]
        return self._read_response()


def request_catalog() -> dict[str, bytes]:
    """The prepared bytes of each kind of request."""
    headers = {"X-API-Key": API_KEY}

    def post(body: bytes) -> bytes:
        return Client.build("POST", "/predict", HOST, body, headers)

    out_of_range = {**EXAMPLE_ROW, "age": 500}
    return {
        "one row": post(json.dumps({"inputs": [EXAMPLE_ROW]}).encode()),
        "100 rows": post(json.dumps({"inputs": data_rows(100)}).encode()),
        "out of range": post(json.dumps({"inputs": [out_of_range]}).encode()),
        "not JSON": post(b'{"inputs": [{"age": 39,'),
    }


@dataclass
class Tally:
    """What one client saw in one run."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    statuses: Counter[int] = field(default_factory=Counter)
    dropped: int = 0
    wrong: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < 3:
            self.notes.append(text)


def right_answer(kind: str, response: Response) -> bool:
    rows = KINDS[kind][1]
    if rows == 0:
        return 400 <= response.status < 500
    if response.status != 200:
        return False
    try:
        return len(json.loads(response.body)["predictions"]) == rows
    except (ValueError, KeyError, TypeError):
        return False


def client_loop(
    index: int,
    port: int,
    catalog: dict[str, bytes],
    tally: Tally,
    start: threading.Barrier,
    deadline: list[float],
) -> None:
    chooser = random.Random(index)
    kinds = list(KINDS)
    weights = [KINDS[k][0] for k in kinds]
    with StrictClient(HOST, port) as client:
        client.send_once(catalog["one row"])  # connect and warm up outside the timed window
        start.wait(timeout=60)
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if (t0 := time.perf_counter()) >= deadline[0]:
                break
            kind = chooser.choices(kinds, weights)[0]
            try:
                response = client.send_once(catalog[kind])
            except (OSError, HttpError) as exc:
                client.close()  # the next request opens a new connection
                tally.dropped += 1
                tally.note(f"{kind}: {exc!r}")
                continue
            tally.latencies[kind].append(time.perf_counter() - t0)
            tally.statuses[response.status] += 1
            if not right_answer(kind, response):
                tally.wrong += 1
                tally.note(f"{kind}: {response.status} {response.body[:200]!r}")


@dataclass
class RunFigures:
    seconds: float
    latencies: dict[str, list[float]]
    statuses: Counter[int]
    dropped: int
    wrong: int
    notes: list[str]
    rss_mb: float

    @property
    def served(self) -> int:
        return sum(self.statuses.values())

    @property
    def every_latency(self) -> list[float]:
        return [t for times in self.latencies.values() for t in times]

    def count(self, low: int, high: int) -> int:
        return sum(n for status, n in self.statuses.items() if low <= status < high)


def run_load(
    port: int, pid: int, catalog: dict[str, bytes], clients: int, duration: float
) -> RunFigures:
    tallies = [Tally() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [float("inf")]
    threads = [
        threading.Thread(
            target=client_loop,
            args=(i, port, catalog, tallies[i], start, deadline),
            daemon=True,
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + duration
    began = time.perf_counter()
    start.wait(timeout=60)  # a client that failed to warm up breaks the barrier: we stop
    for thread in threads:
        thread.join(timeout=duration + 60)
    seconds = time.perf_counter() - began
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a client did not finish within its deadline")
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    statuses: Counter[int] = Counter()
    for tally in tallies:
        for kind, times in tally.latencies.items():
            latencies[kind] += times
        statuses += tally.statuses
    return RunFigures(
        seconds=seconds,
        latencies=latencies,
        statuses=statuses,
        dropped=sum(t.dropped for t in tallies),
        wrong=sum(t.wrong for t in tallies),
        notes=[note for t in tallies for note in t.notes][:5],
        rss_mb=rss_mb(pid),
    )


def ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def print_runs(runs: list[RunFigures], idle_mb: float) -> None:
    statuses = sorted({status for run in runs for status in run.statuses})
    header = ["run", "served", "req/s", *map(str, statuses), "dropped", "wrong", "p50 ms"]
    header += ["p99 ms", "RSS MB"]
    rows: list[list[object]] = [["idle", "", "", *[""] * len(statuses), "", "", "", ""]]
    rows[0].append(f"{idle_mb:.1f}")
    for n, run in enumerate(runs, 1):
        every = run.every_latency
        rows.append(
            [
                n,
                run.served,
                f"{run.served / run.seconds:.0f}",
                *(run.statuses.get(status, 0) for status in statuses),
                run.dropped,
                run.wrong,
                ms(percentile(every, 50)),
                ms(percentile(every, 99)),
                f"{run.rss_mb:.1f}",
            ]
        )
    print_table(header, rows)
    print()
    kind_rows = []
    for kind in KINDS:
        times = [t for run in runs for t in run.latencies[kind]]
        kind_rows.append([kind, len(times), ms(percentile(times, 50)), ms(percentile(times, 99))])
    print_table(["request", "served", "p50 ms", "p99 ms"], kind_rows)


def print_verdicts(runs: list[RunFigures]) -> None:
    server_errors = sum(run.count(500, 600) for run in runs)
    dropped = sum(run.dropped for run in runs)
    wrong = sum(run.wrong for run in runs)
    growth = runs[-1].rss_mb / runs[0].rss_mb
    last = f"run {len(runs)}"
    rows = [
        ("5xx responses, all runs", server_errors, "", "0", verdict(server_errors == 0)),
        ("dropped connections, all runs", dropped, "", "0", verdict(dropped == 0)),
        ("wrong answers, all runs", wrong, "", "0", verdict(wrong == 0)),
        (
            f"RSS after {last} / after run 1",
            f"{growth:.3f}",
            "x",
            f"<= {RSS_GROWTH_LIMIT:.2f}",
            verdict(growth <= RSS_GROWTH_LIMIT),
        ),
    ]
    print_table(("figure", "ours", "unit", "target", "result"), rows)
    notes = [note for run in runs for note in run.notes][:5]
    if notes:
        print()
        print("first problems seen:")
        for note in notes:
            print(f"  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive clients")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load a run")
    parser.add_argument("--runs", type=int, default=3, help="runs back to back, one server")
    args = parser.parse_args()
    if args.clients < 1 or args.runs < 1 or args.duration <= 0:
        parser.error("--clients and --runs must be at least 1 and --duration above 0")

    catalog = request_catalog()
    print(
        f"Load on census serve (1 worker, committed model) at {HOST}: {args.clients} "
        f"keep-alive clients, {args.runs} run(s) of {args.duration:g} s back to back "
        f"(load average before: {os.getloadavg()[0]:.2f})...",
        flush=True,
    )
    port = free_port()
    command = [*serve_command(port), "--workers", "1"]
    process = start_process(command, env={"CENSUS_API_KEY": API_KEY})
    runs: list[RunFigures] = []
    try:
        wait_for(HOST, port, "/ready", timeout=60, process=process)
        with StrictClient(HOST, port) as client:  # the first requests pay for lazy set-up
            for _ in range(20):
                client.send_once(catalog["100 rows"])
        idle_mb = rss_mb(process.pid)
        for n in range(1, args.runs + 1):
            runs.append(run_load(port, process.pid, catalog, args.clients, args.duration))
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode}")
            print(f"  run {n}: {runs[-1].served} requests", flush=True)
    finally:
        stop_process(process)
    print()
    print(
        f"{args.clients} clients; mix: "
        + ", ".join(f"{weight}% {kind}" for kind, (weight, _) in KINDS.items())
    )
    print(machine(["fastapi", "uvicorn", "numpy"]))
    print_runs(runs, idle_mb)
    print()
    print_verdicts(runs)


if __name__ == "__main__":
    main()
