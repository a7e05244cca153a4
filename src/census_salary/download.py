"""Fetch the census data from its public source when it is not on disk."""

from __future__ import annotations

import io
import logging
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from census_salary.data import read_census
from census_salary.errors import CensusError, DataUnavailableError
from census_salary.files import atomic_write
from census_salary.progress import NoProgress, Progress

logger = logging.getLogger(__name__)

MEMBER = "adult.data"
# The header of the published census.csv: with it, the file written here is byte for byte
# the published one (adult.data under this header line), so its SHA-256 matches.
HEADER = (
    "age, workclass, fnlgt, education, education-num, marital-status, occupation, "
    "relationship, race, sex, capital-gain, capital-loss, hours-per-week, native-country, "
    "salary\n"
)
TIMEOUT_SECONDS = 30


def ensure_census(path: Path, url: str, progress: Progress | None = None) -> Path:
    """`path` if it exists; otherwise download the data there, check it, and return it."""
    if path.is_file():
        return path
    progress = progress or NoProgress()
    logger.info("%s is missing; downloading %s", path, url)
    payload = _fetch(url, path, progress)
    try:
        text = _extract(payload)
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise DataUnavailableError(
            f"{url} did not give the UCI Adult archive ({exc}). "
            f"Put census.csv at {path} yourself, or fix [data] url in census.toml."
        ) from None
    _write_checked(path, text, url)
    return path


def _fetch(url: str, path: Path, progress: Progress) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            length = response.headers.get("Content-Length")
            progress.start("Downloading the census data", total=int(length) if length else None)
            chunks = []
            while block := response.read(1 << 16):
                chunks.append(block)
                progress.advance(len(block))
            return b"".join(chunks)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise DataUnavailableError(
            f"{path} is missing and downloading it from {url} failed ({exc}). Copy the "
            f"census data (adult.data or census.csv from the UCI Adult dataset) to {path}; "
            "see data/README.md."
        ) from None


def _extract(payload: bytes) -> str:
    """The training file of the archive, with a header row (the archive's has none)."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        names = {Path(name).name: name for name in archive.namelist()}
        raw = archive.read(names[MEMBER]).decode("utf-8")
    return HEADER + raw


def _write_checked(path: Path, text: str, url: str) -> None:
    """Validate before the file appears at its final path, so a bad download leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        candidate = Path(tmp) / path.name
        candidate.write_text(text, encoding="utf-8")
        try:
            read_census(candidate)
        except CensusError as exc:
            found = str(exc).replace(str(candidate), url)  # (the file checked is ours, not theirs)
            raise DataUnavailableError(
                f"The data downloaded from {url} failed its checks: {found} "
                f"Put census.csv at {path} yourself, or fix [data] url in census.toml."
            ) from None
    atomic_write(path, text.encode("utf-8"))
