"""What counting input drift costs `POST /predict`, in process, on the committed model.

| figure                                                        | target     |
| ------------------------------------------------------------- | ---------- |
| a `POST /predict` with drift counting, 1 row, over the floor  | <= 1.05x   |
| the same, 100 rows                                            | <= 1.05x   |
| the same, 1,000 rows                                          | <= 1.05x   |

Floor, measured in the same run: the same app over the same model without its drift
profile, so it counts everything else (requests, latency, rows, positives, unknown
categories). Both apps are built by `create_app` in this process, their lifespans run,
and every request goes through the whole ASGI app (middleware, routing, the route) with
the server's garbage-collector settings (`server.settle`), so what waiting rows cost the
collector is counted too; only HTTP is left out. Ours ends each timed loop with
`Telemetry.flush_drift`, as the server does every second: a loop of one-row requests
lasts about that long. Both run with prometheus_client in multiprocess mode (`--workers
N`), where each increment writes to a file, unless `--single-process`. The two apps
alternate within each run; each figure is the median of `--runs` runs, each the mean of
a loop's requests; in process, so the machine's load matters less than it does to
`serve.py`, whose `--baseline-env` measures the whole server.

    .venv/bin/python benchmarks/drift.py             # about 45 s
    .venv/bin/python benchmarks/drift.py --runs 3 --repeat 20
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _http import ROOT, machine, median, print_table, spread, verdict


async def timed_pair(
    floor: Callable[[], Awaitable[object]],
    ours: Callable[[], Awaitable[object]],
    runs: int,
    repeat: int,
    settle: Callable[[], object],
) -> tuple[list[float], list[float], list[float]]:
    """Each run's mean call time of the floor and of ours, and their ratio; the two
    alternate within each run, so both meet the same load. `settle` ends each of our
    timed loops (inside the timing): what our calls left to do is done and counted."""
    await floor(), await ours(), settle()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for work, kept, done in ((floor, times[0], None), (ours, times[1], settle)):
            started = time.perf_counter()
            for _ in range(repeat):
                await work()
            if done is not None:
                done()
            kept.append((time.perf_counter() - started) / repeat)
    ratios = [b / a for a, b in zip(*times, strict=True)]
    return times[0], times[1], ratios


def poster(app: Any, body: bytes) -> Callable[[], Awaitable[None]]:
    """A `POST /predict` of `body` through the ASGI app, checked to answer 200."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def post() -> None:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"/predict answered {sent[0]['status']}: {sent[1]['body']!r}")

    return post


async def measure(
    args: argparse.Namespace,
) -> list[tuple[int, list[float], list[float], list[float]]]:
    from census_salary.api import create_app
    from census_salary.bundle import load_bundle
    from census_salary.config import load_settings
    from census_salary.contract import EXAMPLE_ROW
    from census_salary.server import settle

    logging.disable(logging.WARNING)  # the apps' own warnings (no API key set)
    settings = load_settings(ROOT / "census.toml")
    bundle = load_bundle(ROOT / "artifacts")
    if bundle.profile is None:
        raise SystemExit("The committed model has no drift profile: nothing to measure.")
    apps = [
        create_app(settings, bundle=b) for b in (dataclasses.replace(bundle, profile=None), bundle)
    ]
    figures = []
    async with AsyncExitStack() as lifespans:
        for app in apps:
            await lifespans.enter_async_context(app.router.lifespan_context(app))
        settle()
        telemetry = apps[1].state.telemetry
        other = {**EXAMPLE_ROW, "age": 52, "education": "Masters", "race": "Martian"}
        for size in (1, 100, 1000):
            rows = [EXAMPLE_ROW if i % 2 == 0 else other for i in range(size)]
            body = json.dumps({"inputs": rows}).encode()
            floor, ours = (poster(app, body) for app in apps)
            repeat = max(args.repeat // round(size**0.5), 5)  # 2,000, 200, 63 by default
            figures.append(
                (size, *await timed_pair(floor, ours, args.runs, repeat, telemetry.flush_drift))
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each figure")
    parser.add_argument(
        "--repeat", type=int, default=2000, help="one-row requests a run (fewer of more rows)"
    )
    parser.add_argument("--single-process", action="store_true", help="no multiprocess mode")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        if not args.single_process:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        figures = asyncio.run(measure(args))
    mode = "single process" if args.single_process else "multiprocess mode"
    print(
        f"POST /predict through the whole app with and without drift counting, in process "
        f"({mode}); median of {args.runs} runs"
    )
    print(machine(["fastapi", "starlette", "prometheus-client", "numpy"]))
    print_table(
        ("figure", "ours", "min-max", "unit", "target", "result", "floor", "ours/floor"),
        [
            (
                f"{size:,} row{'s' if size > 1 else ''}, drift counted",
                f"{median(ours) * 1e3:.3f}",
                spread([t * 1e3 for t in ours]),
                "ms",
                "<= 1.05x",
                verdict(median(ratios) <= 1.05),
                f"{median(floor) * 1e3:.3f}",
                f"{median(ratios):.2f}x",
            )
            for size, floor, ours, ratios in figures
        ],
    )


if __name__ == "__main__":
    main()
