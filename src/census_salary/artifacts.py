"""The artifacts folder: write a new bundle, keep the history, switch the current one.

    LATEST                    the version id of the current bundle (the commit point)
    <version>/                a bundle (see `bundle`, which loads and checks them)
    runs.jsonl                one line per training run whose bundle became current
    .lock                     held (flock) by a `census train` or `census use` at work

A new bundle is written into a temporary folder, renamed to its version, and only then
named in LATEST (replaced atomically); its run is recorded after that. A crash or a failed
write (a full disk, a read-only folder) before LATEST is replaced leaves the previous
bundle whole and current, and takes back what was written; once LATEST names the new
bundle, nothing takes it back. Older bundles are removed only by the keep rule
(`save_bundle`): the newest `keep` stay (those that never became current count last),
and so do the current one and any that git tracks. `switch_bundle` makes a kept bundle
current after every loading check.
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
    read_metadata,
)
from census_salary.errors import ModelError
from census_salary.files import default_mode, fsync_dir, replace_file
from census_salary.metadata import BundleMetadata, RunRecord
from census_salary.metrics import SliceReport
from census_salary.model_card import read_card_files

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
    """Write a new bundle, make it current, record its run, and apply the keep rule.

    The caller holds `artifacts_lock`. A failed write before LATEST names the new bundle
    is a ModelError after taking back what was written, so the previous bundle stays
    current and whole. Once LATEST names it (even if an interrupt or an error comes right
    after), the new bundle stays: LATEST must never name a folder that is gone. Its run is
    recorded only then, so a run line means "this bundle became current"; a run killed
    between the two is recorded by the next one (`_record_current_run`).
    """
    final = artifacts_dir / metadata.version
    with _writing(artifacts_dir, "run `census train` again"):
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(artifacts_dir)
        _record_current_run(artifacts_dir)
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
        try:
            _write_pointer(artifacts_dir, metadata.version)
        except BaseException:
            if current_version(artifacts_dir) != metadata.version:  # not switched: take back
                _discard(artifacts_dir, final)
            raise
    try:
        append_run(artifacts_dir, RunRecord.of(metadata))
    except OSError as exc:
        logger.warning(
            "model %s is current, but its run could not be added to %s (%s); make that "
            "file writable: the next `census train` adds the run first, and stops (changing "
            "nothing) while it cannot",
            metadata.version,
            artifacts_dir / RUNS_FILE,
            exc.strerror or exc,
        )
    removed = _apply_keep_rule(artifacts_dir, metadata.version, keep)
    return SavedBundle(final, removed)


def _record_current_run(artifacts_dir: Path) -> None:
    """Record the run of the current bundle if a run killed after switching LATEST (or
    unable to write runs.jsonl) left it out."""
    missing = _unrecorded_current_run(artifacts_dir, read_runs(artifacts_dir))
    if missing is not None:
        try:
            append_run(artifacts_dir, missing)
        except OSError as exc:
            raise ModelError(
                f"Cannot write to {artifacts_dir / RUNS_FILE}: {exc.strerror or exc}, so the "
                f"run of the current model {missing.version} is still unrecorded. Nothing "
                "was changed: make that file writable, then run `census train` again."
            ) from None
        logger.info("recorded the run of model %s, which its own run did not", missing.version)


def _unrecorded_current_run(artifacts_dir: Path, runs: list[RunRecord]) -> RunRecord | None:
    """The run record of the current bundle, from its metadata, when `runs` lacks it."""
    current = current_version(artifacts_dir)
    if current is None or any(run.version == current for run in runs):
        return None
    try:
        return RunRecord.of(read_metadata(artifacts_dir / current))
    except ModelError:
        return None  # not a loadable bundle: loading it says why


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
    """Remove bundles beyond the newest `keep`, except the current one and any git tracks.

    Bundles that never became current (no line in runs.jsonl: a killed `census train`
    left them, or they were copied in) rank after those that did, whatever their date, so
    they go first and never push out a bundle `census use` could go back to.
    """
    try:
        recorded = {run.version for run in read_runs(artifacts_dir)} | {current}
    except ModelError as exc:
        logger.warning("no bundle was removed ([artifacts] keep): %s", exc)
        return ()
    ranked = sorted(
        kept_versions(artifacts_dir),
        key=lambda version: (version in recorded, version),
        reverse=True,
    )
    older = ranked[keep:]
    if not older:
        return ()
    tracked = tracked_by_git(artifacts_dir)
    if tracked is None:
        return ()  # git could not say which are committed (logged): remove none
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


def tracked_by_git(folder: Path) -> frozenset[str] | None:
    """Names of the entries in `folder` that git tracks (from `git ls-files`, which changes
    nothing). Outside a repository nothing is tracked. Inside one (a `.git` here or
    above) where git cannot answer (it is not installed; it refuses a folder another user
    owns, "dubious ownership", as in a container), None, with a warning: not knowing which
    bundles are committed, the keep rule removes none."""
    try:
        listed = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "ls-files", "-z", "--", "."],
            cwd=folder,
            capture_output=True,
            check=False,
            timeout=60,
        )
    except FileNotFoundError:  # no git installed: a repository copied without it still counts
        reason = "git is not installed"
    except (OSError, subprocess.SubprocessError) as exc:
        reason = str(exc)
    else:
        if listed.returncode == 0:
            paths = listed.stdout.decode("utf-8", errors="replace").split("\0")
            return frozenset(path.split("/", 1)[0] for path in paths if path)
        said = listed.stderr.decode("utf-8", errors="replace").strip().splitlines()
        reason = said[0] if said else f"exit code {listed.returncode}"
    if not _in_a_work_tree(folder):
        return frozenset()
    logger.warning(
        "no bundle was removed from %s: git cannot say which bundles are committed (%s). "
        "Fix that (for 'dubious ownership': git config --global --add safe.directory "
        "FOLDER) and the next `census train` applies [artifacts] keep",
        folder,
        reason,
    )
    return None


def _in_a_work_tree(folder: Path) -> bool:
    """Whether a `.git` (a folder, or a file for a worktree) is in `folder` or above."""
    return any((parent / ".git").exists() for parent in (folder, *folder.resolve().parents))


def append_run(artifacts_dir: Path, record: RunRecord) -> None:
    """Add one line to the run history (a single small append, so lines never interleave)."""
    line = record.model_dump_json() + "\n"
    with (artifacts_dir / RUNS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def read_runs(artifacts_dir: Path) -> list[RunRecord]:
    """The run history, oldest first; a line that is not a run record (or not UTF-8) is
    skipped and logged. A runs.jsonl that cannot be read is a ModelError naming it."""
    path = artifacts_dir / RUNS_FILE
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ModelError(
            f"Cannot read {path}: {exc.strerror or exc}. Move it away (a new run history "
            "then starts), and run it again."
        ) from None
    runs = []
    for number, line in enumerate(text.splitlines(), start=1):
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
    """The run history, oldest first, each run marked kept and current as the folder is now.
    Only bundles that became current have a run; the current one whose run a killed
    `census train` never recorded is listed last, from its metadata."""
    runs = read_runs(artifacts_dir)
    if (missing := _unrecorded_current_run(artifacts_dir, runs)) is not None:
        runs.append(missing)
    kept = set(kept_versions(artifacts_dir))
    current = current_version(artifacts_dir)
    return [
        RunStatus(run, kept=run.version in kept, current=run.version == current) for run in runs
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
    self-test), and every file its model card reads must be whole (`read_card_files`),
    before LATEST is switched, atomically as training does. A LATEST that cannot be read
    is no current version: this is what repairs it. The caller holds `artifacts_lock`.
    """
    folder = find_version(artifacts_dir, given)
    try:
        pipeline = load_bundle_dir(folder, "pipeline")  # model.skops: hash, allow-list
        trees = load_bundle_dir(folder, "trees") if pipeline.metadata.trees_sha256 else pipeline
        bundle = trees if scorer == "trees" else pipeline
        card = read_card_files(folder)
    except ModelError as exc:
        raise ModelError(f"{folder.name} was not made current: {exc}") from None
    previous = current_version(artifacts_dir)
    with _writing(artifacts_dir, "run `census use` again"):
        _write_pointer(artifacts_dir, folder.name)
    return Switch(folder.name, bundle, card.slices, previous)


def _write_pointer(artifacts_dir: Path, version: str) -> None:
    """Name `version` in LATEST, replacing it atomically. An empty folder where LATEST
    belongs (it holds nothing) is removed first; any other folder there is a ModelError."""
    pointer = artifacts_dir / POINTER
    if pointer.is_dir() and not pointer.is_symlink():
        with contextlib.suppress(OSError):
            pointer.rmdir()
        if pointer.is_dir():
            raise ModelError(
                f"{pointer} is a folder, where the file naming the current model belongs. "
                "Move it away, then run it again."
            )
    replace_file(pointer, f"{version}\n".encode())


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
