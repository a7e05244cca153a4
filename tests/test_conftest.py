"""The `census_csv` fixture fetches the data as `census train` does, and says so."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from conftest import PROJECT_CONFIG, ensure_census_csv
from live_server import free_port

TESTS = Path(__file__).resolve().parent


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def archive_url(tmp_path: Path, sample_frame: pd.DataFrame) -> Iterator[str]:
    """A loopback server with adult.zip as UCI publishes it (500 real rows inside)."""
    folder = tmp_path / "www"
    folder.mkdir()
    with zipfile.ZipFile(folder / "adult.zip", "w") as archive:
        archive.writestr("adult.data", sample_frame.head(500).to_csv(index=False, header=False))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/adult.zip"
    server.shutdown()
    thread.join()


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}/adult.zip"  # nobody listens there


def test_missing_data_is_downloaded_and_announced(archive_url: str, tmp_path: Path) -> None:
    target = tmp_path / "data" / "census.csv"
    said: list[str] = []
    environ = {"CENSUS_DATA__PATH": str(target), "CENSUS_DATA__URL": archive_url}
    assert ensure_census_csv(PROJECT_CONFIG, environ, said.append) == target
    assert target.read_text().startswith("age, workclass"), target.read_text()[:200]
    assert said == [
        f"{target} is missing: downloading it from {archive_url} (once; later runs reuse it)",
        f"{target}: downloaded",
    ]


def test_present_data_is_used_as_it_is_without_a_word(tmp_path: Path) -> None:
    target = tmp_path / "census.csv"
    target.write_text("kept")
    said: list[str] = []
    environ = {"CENSUS_DATA__PATH": str(target), "CENSUS_DATA__URL": unreachable_url()}
    assert ensure_census_csv(PROJECT_CONFIG, environ, said.append) == target
    assert target.read_text() == "kept"
    assert said == []


def test_offline_it_fails_naming_the_file_to_fetch_and_where_to_put_it(tmp_path: Path) -> None:
    target = tmp_path / "data" / "census.csv"
    url = unreachable_url()
    environ = {"CENSUS_DATA__PATH": str(target), "CENSUS_DATA__URL": url}
    with pytest.raises(pytest.fail.Exception) as failure:
        ensure_census_csv(PROJECT_CONFIG, environ, lambda message: None)
    message = str(failure.value)
    assert f"fetch {url}, take adult.data out of that archive and save it as {target}" in message
    assert "data/README.md" in message
    assert not target.exists()


@pytest.mark.slow
def test_a_pytest_run_offline_stops_with_the_message(tmp_path: Path) -> None:
    """The fixture as pytest runs it: in a fresh process, with no data and no network."""
    (tmp_path / "test_probe.py").write_text(
        "def test_probe(census_csv):\n    assert census_csv.is_file()\n", encoding="utf-8"
    )
    target, url = tmp_path / "data" / "census.csv", unreachable_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_")}
    env |= {
        "CENSUS_DATA__PATH": str(target),
        "CENSUS_DATA__URL": url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, "--rootdir", str(tmp_path), "test_probe.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"census_csv: {target} is missing: downloading it from {url}" in output, output
    assert f"save it as {target}" in output, output
    assert "1 error" in output, output
