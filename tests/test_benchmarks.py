"""Each benchmark script still runs end to end (in its smallest form); timings are not judged."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALLEST = {
    "cli_startup.py": ["--runs", "1"],
    "train.py": ["--runs", "1", "--floor-runs", "1"],
    "predict_stream.py": [
        *("--rows", "2000", "--large-rows", "4000", "--jsonl-rows", "1000"),
        *("--runs", "1", "--large-runs", "1"),
    ],
    "serve.py": [
        *("--requests", "20", "--runs", "1", "--duration", "1", "--throughput-runs", "1"),
        *("--rows", "50", "--batch-runs", "1", "--launches", "1", "--no-floor"),
    ],
    "load.py": ["--duration", "1", "--runs", "2", "--clients", "4"],
    "drift.py": ["--runs", "1", "--repeat", "5"],
    "scorer.py": ["--runs", "1", "--sizes", "1000"],
    "engines.py": ["--rows", "4000", "--files", "2", "--runs", "1"],
}
# Issue #10: each figure beside its floor, as a median with its runs' range, under a line
# naming the machine and the versions. load.py counts failures over all its runs instead.
WITHOUT_RANGE = {"load.py"}


def test_every_benchmark_script_is_covered() -> None:
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SMALLEST)


@pytest.mark.slow  # each script starts processes and some train on the full data
@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_benchmark_script_runs_and_prints_its_figures(script: str, census_csv: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *SMALLEST[script]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    columns = "figure +ours +unit" if script in WITHOUT_RANGE else "figure +ours +min-max +unit"
    assert re.search(rf"^{columns} +target", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"\d+ CPUs, Python [\d.]+; census-salary \d", result.stdout), result.stdout
