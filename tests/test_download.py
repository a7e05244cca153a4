"""Downloading the data, against a local HTTP server serving archives built here."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from census_salary.data import read_census
from census_salary.download import ensure_census
from census_salary.errors import DataUnavailableError


class Recorder:
    def __init__(self) -> None:
        self.stages: list[tuple[str, float | None]] = []
        self.done = 0.0

    def start(self, description: str, total: float | None = None) -> None:
        self.stages.append((description, total))

    def advance(self, amount: float = 1) -> None:
        self.done += amount


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, sample_frame: pd.DataFrame) -> Iterator[str]:
    """A loopback server whose folder holds adult.zip (as UCI publishes it) and junk.zip."""
    folder = tmp_path / "www"
    folder.mkdir()
    body = sample_frame.head(500).to_csv(index=False, header=False)
    with zipfile.ZipFile(folder / "adult.zip", "w") as archive:
        archive.writestr("adult.data", body)
        archive.writestr("adult.names", "| description")
    (folder / "junk.zip").write_bytes(b"this is not a zip")
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("adult.data", body.replace("<=50K", "maybe"))
    (folder / "bad.zip").write_bytes(bad.getvalue())
    handler = partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_download_writes_a_checked_file_with_a_header(served: str, tmp_path: Path) -> None:
    dest = tmp_path / "data" / "census.csv"
    progress = Recorder()
    assert ensure_census(dest, f"{served}/adult.zip", progress) == dest
    assert dest.read_text().startswith("age, workclass, fnlgt")
    assert len(read_census(dest).features) > 450
    assert progress.stages[0][0].startswith("Downloading")
    assert progress.done == progress.stages[0][1]


def test_existing_file_is_not_downloaded_again(tmp_path: Path) -> None:
    dest = tmp_path / "census.csv"
    dest.write_text("kept")
    assert ensure_census(dest, "http://127.0.0.1:9/none.zip") == dest
    assert dest.read_text() == "kept"


def test_not_a_zip_is_refused_and_leaves_no_file(served: str, tmp_path: Path) -> None:
    dest = tmp_path / "data" / "census.csv"
    with pytest.raises(DataUnavailableError, match="did not give the UCI Adult archive"):
        ensure_census(dest, f"{served}/junk.zip")
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_data_that_fails_its_checks_leaves_no_file(served: str, tmp_path: Path) -> None:
    dest = tmp_path / "data" / "census.csv"
    with pytest.raises(DataUnavailableError, match=r"failed its checks.*salary"):
        ensure_census(dest, f"{served}/bad.zip")
    assert list(dest.parent.iterdir()) == []


def test_data_that_fails_its_checks_is_named_by_its_address(served: str, tmp_path: Path) -> None:
    dest = tmp_path / "data" / "census.csv"
    with pytest.raises(DataUnavailableError) as failed:
        ensure_census(dest, f"{served}/bad.zip")
    message = str(failed.value)
    assert f"invalid value(s) in {served}/bad.zip: row 1, field 'salary'" in message
    assert f"{dest.parent}/tmp" not in message  # (the temporary file checked)
    assert f"Put census.csv at {dest} yourself" in message


def test_missing_archive_says_where_to_put_the_file(served: str, tmp_path: Path) -> None:
    dest = tmp_path / "census.csv"
    with pytest.raises(DataUnavailableError, match=r"404.*Copy the census data"):
        ensure_census(dest, f"{served}/nothing.zip")


def test_offline_says_where_to_put_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "census.csv"
    with pytest.raises(DataUnavailableError, match=str(dest)):
        ensure_census(dest, "http://127.0.0.1:9/adult.zip")
