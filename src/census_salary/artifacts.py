"""The artifacts folder: write a new bundle, keep the history, switch the current one.

    LATEST                    the version id of the current bundle (the commit point)
    <version>/                a bundle (see `bundle`, which loads and checks them)
    runs.jsonl                one line per training run
    .lock                     held (flock) by a `census train` or `census use` at work

A new bundle is written into a temporary folder, renamed to its version, its run is
recorded, and only then is it named in LATEST (replaced atomically). A crash at any point
leaves the previous bundle whole and current; a failed write (a full disk, a read-only
folder) also takes back what it wrote. Older bundles are removed only by the keep rule
(`save_bundle`): the newest `keep` stay, and so do the current one and any that git
tracks. `switch_bundle` makes a kept bundle current after every loading check.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from census_salary.bundle import (
    METADATA_FILE,
    MODEL_FILE,
    POINTER,
    TREES_FILE,
    Bundle,
    ScorerChoice,
    current_version,
    load_bundle_dir,
    new_version,
    read_slices,
)
from census_salary.errors import ModelError
from census_salary.files import atomic_write, default_mode, fsync_dir
from census_salary.metadata import BundleMetadata, RunRecord
from census_salary.metrics import SliceReport

logger = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
LOCK_FILE = ".lock"
# Folders being written (`.staging-`) or removed (`.removing-`); any found there while the
# lock is held were left by a run that was killed, and go.
STAGING_PREFIX = ".staging-"
REMOVING_PREFIX = ".removing-"


def unused_version(artifacts_dir: Path, model_bytes: bytes, now: datetime | None = None) -> str:
    """A `new_version` no folder in `artifacts_dir` has: the same model trained twice in one
    second (a small model, runs one after another) is dated a second later."""
    moment = now or datetime.now(UTC)
    while (artifacts_dir / (version := new_version(model_bytes, moment))).exists():
        moment += timedelta(seconds=1)
    return version


@contextlib.contextmanager
def artifacts_lock(
    artifacts_dir: Path, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the artifacts folder's lock: one `census train` or `census use` at a time.

    Another holder makes this wait (logged at INFO, and `on_wait` called). The lock is an
    flock on `.lock`, so the system lets go of it when its holder exits, even when killed.
    The holder removes the file as it finishes, while still holding it; a waiter that then
    gets the lock on the removed file sees that and locks the file now at the path.
    """
    path = artifacts_dir / LOCK_FILE
    with _writing(artifacts_dir, "run it again"):
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        fd = _lock(path, on_wait)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _lock(path: Path, on_wait: Callable[[], None] | None) -> int:
    """An open descriptor of the file at `path`, holding its flock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("waiting for another census train or use in %s to end", path.parent)
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it as it finished: lock the file there now


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


@contextlib.contextmanager
def _writing(artifacts_dir: Path, then: str) -> Iterator[None]:
    """Turn a failed write (a full disk, a read-only folder) into one line saying what to do."""
    try:
        yield
    except OSError as exc:
        raise ModelError(
            f"Cannot write to {artifacts_dir}: {exc.strerror or exc}. Nothing was changed: "
            "the current model is still the one in use. Free some space or make the folder "
            f"writable (or set [artifacts] dir in census.toml), then {then}."
        ) from None


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class SavedBundle:
    folder: Path
    removed: tuple[str, ...]  # older versions the keep rule removed


def save_bundle(
    artifacts_dir: Path,
    model_bytes: bytes,
    trees_bytes: bytes | None,
    metadata: BundleMetadata,
    reports: Mapping[str, bytes],
    keep: int,
) -> SavedBundle:
    """Write a new bundle, record its run, make it current, and apply the keep rule.

    The caller holds `artifacts_lock`. A failed write is a ModelError after taking back
    what was written, so the previous bundle stays current and whole.
    """
    final = artifacts_dir / metadata.version
    runs = artifacts_dir / RUNS_FILE
    with _writing(artifacts_dir, "run `census train` again"):
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(artifacts_dir)
        staging = Path(tempfile.mkdtemp(dir=artifacts_dir, prefix=STAGING_PREFIX))
        try:
            staging.chmod(default_mode(0o777))  # mkdtemp's 0700 would hide it from a server
            _write_file(staging / MODEL_FILE, model_bytes)
            if trees_bytes is not None:
                _write_file(staging / TREES_FILE, trees_bytes)
            for name, data in reports.items():
                _write_file(staging / name, data)
            meta_json = metadata.model_dump_json(indent=2).encode() + b"\n"
            _write_file(staging / METADATA_FILE, meta_json)
            fsync_dir(staging)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        runs_size = runs.stat().st_size if runs.exists() else None
        try:
            append_run(artifacts_dir, RunRecord.of(metadata))
            atomic_write(artifacts_dir / POINTER, f"{metadata.version}\n".encode())
        except BaseException:
            _take_back_run(runs, runs_size)
            _discard(artifacts_dir, final)
            raise
    removed = _apply_keep_rule(artifacts_dir, metadata.version, keep)
    return SavedBundle(final, removed)


def _take_back_run(runs: Path, size: int | None) -> None:
    with contextlib.suppress(OSError):
        if size is None:
            runs.unlink(missing_ok=True)
        else:
            os.truncate(runs, size)


def _discard(artifacts_dir: Path, folder: Path) -> bool:
    """Remove a bundle folder: renamed first, so a bundle is whole or not a bundle at all."""
    doomed = artifacts_dir / f"{REMOVING_PREFIX}{folder.name}"
    try:
        folder.rename(doomed)
    except OSError as exc:
        logger.warning("could not remove %s: %s", folder, exc.strerror or exc)
        return False
    shutil.rmtree(doomed, ignore_errors=True)  # a remainder goes with the next run's leftovers
    return True


def _remove_leftovers(artifacts_dir: Path) -> None:
    """What killed runs left: half-written and half-removed folders, pointer temp files."""
    for entry in artifacts_dir.iterdir():
        if entry.name.startswith((STAGING_PREFIX, REMOVING_PREFIX, f".{POINTER}.")):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _apply_keep_rule(artifacts_dir: Path, current: str, keep: int) -> tuple[str, ...]:
    """Remove bundles older than the newest `keep`, except the current one and any git tracks."""
    older = kept_versions(artifacts_dir)[keep:]
    tracked = tracked_by_git(artifacts_dir) if older else frozenset()
    removed = []
    for version in older:
        if version == current or version in tracked:
            continue
        if _discard(artifacts_dir, artifacts_dir / version):
            logger.info("removed bundle %s ([artifacts] keep = %d)", version, keep)
            removed.append(version)
    return tuple(removed)


def kept_versions(artifacts_dir: Path) -> list[str]:
    """The versions with a bundle folder in `artifacts_dir`, newest first."""
    try:
        entries = list(artifacts_dir.iterdir())
    except FileNotFoundError:
        return []
    names = [
        entry.name
        for entry in entries
        if not entry.name.startswith(".") and (entry / METADATA_FILE).is_file()
    ]
    return sorted(names, reverse=True)


def tracked_by_git(folder: Path) -> frozenset[str]:
    """Names of the entries in `folder` that git tracks (from `git ls-files`, which changes
    nothing). Without git, or outside a repository, nothing is tracked."""
    try:
        listed = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "ls-files", "-z", "--", "."],
            cwd=folder,
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("git ls-files in %s failed (%s): nothing counts as tracked", folder, exc)
        return frozenset()
    if listed.returncode != 0:
        return frozenset()
    paths = listed.stdout.decode("utf-8", errors="replace").split("\0")
    return frozenset(path.split("/", 1)[0] for path in paths if path)


def append_run(artifacts_dir: Path, record: RunRecord) -> None:
    """Add one line to the run history (a single small append, so lines never interleave)."""
    line = record.model_dump_json() + "\n"
    with (artifacts_dir / RUNS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_runs(artifacts_dir: Path) -> list[RunRecord]:
    """The run history, oldest first; a line that is not a run record is skipped and logged."""
    path = artifacts_dir / RUNS_FILE
    if not path.exists():
        return []
    runs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            runs.append(RunRecord.model_validate_json(line))
        except ValidationError as exc:
            logger.warning("skipping line %d of %s: not a run record (%s)", number, path, exc)
    return runs


@dataclass(frozen=True)
class RunStatus:
    """A training run, and whether its bundle is still kept and is the current one."""

    run: RunRecord
    kept: bool
    current: bool


def run_history(artifacts_dir: Path) -> list[RunStatus]:
    """The run history, oldest first, each run marked kept and current as the folder is now."""
    kept = set(kept_versions(artifacts_dir))
    current = current_version(artifacts_dir)
    return [
        RunStatus(run, kept=run.version in kept, current=run.version == current)
        for run in read_runs(artifacts_dir)
    ]


@dataclass(frozen=True)
class Switch:
    """What `switch_bundle` did: the version now current, and the one before (if any)."""

    version: str
    bundle: Bundle
    slices: SliceReport
    previous: str | None


def switch_bundle(artifacts_dir: Path, given: str, scorer: ScorerChoice = "trees") -> Switch:
    """Make the kept bundle `given` names (a version or a unique prefix of one) current.

    It must pass every check loading does, with both scorers (hashes, the allow-list, the
    self-test) before LATEST is switched, atomically as training does. The caller holds
    `artifacts_lock`.
    """
    folder = find_version(artifacts_dir, given)
    try:
        pipeline = load_bundle_dir(folder, "pipeline")  # model.skops: hash, allow-list
        trees = load_bundle_dir(folder, "trees") if pipeline.metadata.trees_sha256 else pipeline
        bundle = trees if scorer == "trees" else pipeline
        slices = read_slices(folder)
    except ModelError as exc:
        raise ModelError(f"{folder.name} was not made current: {exc}") from None
    previous = current_version(artifacts_dir)
    with _writing(artifacts_dir, "run `census use` again"):
        atomic_write(artifacts_dir / POINTER, f"{folder.name}\n".encode())
    return Switch(folder.name, bundle, slices, previous)


def find_version(artifacts_dir: Path, given: str) -> Path:
    """The kept bundle folder named `given`, or the one whose name starts with it."""
    versions = kept_versions(artifacts_dir)
    if given in versions:
        return artifacts_dir / given
    matches = [version for version in versions if given and version.startswith(given)]
    if len(matches) == 1:
        return artifacts_dir / matches[0]
    if not matches:
        raise ModelError(
            f"No kept model version {given!r} in {artifacts_dir}. `census runs` lists the "
            "versions whose bundle is kept."
        )
    raise ModelError(
        f"{given!r} is the start of {len(matches)} kept versions ({', '.join(matches)}); "
        "give more of the version id."
    )
