"""Files that appear whole or not at all, and the one way the toolkit writes a file.

`atomic_open` and `atomic_write` write the files a user names (predictions, reports, the
model card, figures): failing to write one is an InputError naming the path and the
system's reason, never a traceback. `replace_file` writes the toolkit's own files
(LATEST), whose callers say in their own words what a failure means.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from census_salary.errors import InputError

logger = logging.getLogger(__name__)


def default_mode(full: int) -> int:
    """The permissions `open` would give a new file (0o666) or folder (0o777) here."""
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cannot_write(path: Path, exc: OSError) -> InputError:
    """The one message for a file that cannot be written: the path, and the system's reason."""
    return InputError(
        f"Cannot write {path}: {exc.strerror or exc}. Choose another path, or fix that "
        "(free some space, make the folder writable) and run it again."
    )


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open `path` to be written whole: a temporary file beside it, which replaces it on
    success and goes on error, so a reader (or a crash) sees the old file or the new one.

    A symbolic link is followed: the file it points to is replaced, the link stays. A path
    that is there but is not a file (a pipe, a terminal, /dev/null) is written to directly,
    as a shell would: renaming over it would replace the pipe or the device itself.
    Failing to write (a folder, a parent that is a file, no permission, a full disk) is an
    InputError naming `path`; an error raised by the caller's own code passes unchanged.
    """
    in_body = False
    try:
        descriptor = _open_descriptor(path)
        if descriptor is not None:  # /dev/stdout and the like: the file the shell opened
            opened = _handle(os.dup(descriptor), mode, path)
        else:
            target = Path(os.path.realpath(path))
            opened = (_directly if _not_a_file(target) else _replacing)(target, mode, path)
        with opened as handle:
            in_body = True
            yield handle
            in_body = False
    except OSError as exc:
        if in_body:  # the caller's, not a write of ours (those are InputErrors already)
            raise
        raise cannot_write(path, exc) from None


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (see `atomic_open`)."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def replace_file(path: Path, data: bytes) -> None:
    """Replace the toolkit's own file `path` (a regular file, or none yet) whole or not at
    all; an OSError says why not, before anything changed. Once the new file is in place
    it stays: a failure to sync its folder to disk afterwards is only logged."""
    with _replacing(path, "wb", None) as handle:
        handle.write(data)


def _not_a_file(target: Path) -> bool:
    """Whether `target` is there and is not a regular file: a pipe, a device, a socket.
    A folder is an IsADirectoryError: nothing can be written there, so none is tried."""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    return not stat.S_ISREG(mode)


_DESCRIPTOR_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_DESCRIPTOR_PATH = re.compile(r"/(?:dev|proc/self)/fd/([0-9]+)")


def _open_descriptor(path: Path) -> int | None:
    """The descriptor `path` names (`/dev/stdout`, `/dev/fd/3`, `/proc/self/fd/3`), to be
    written through as a shell does: resolved, it would name the file or pipe behind it,
    and replacing that file would lose what it held (`-o /dev/stdout >> all.csv`)."""
    text = os.path.normpath(path)
    if text in _DESCRIPTOR_PATHS:
        return _DESCRIPTOR_PATHS[text]
    found = _DESCRIPTOR_PATH.fullmatch(text)
    return int(found[1]) if found else None


@contextlib.contextmanager
def _directly(target: Path, mode: str, shown: Path | None) -> Iterator[IO[Any]]:
    fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
    with _handle(fd, mode, shown) as handle:
        yield handle


@contextlib.contextmanager
def _replacing(target: Path, mode: str, shown: Path | None) -> Iterator[IO[Any]]:
    """A temporary file beside `target`, renamed over it once written and synced."""
    _make_folder(target.parent)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with _handle(fd, mode, shown) as handle:
            os.fchmod(fd, default_mode(0o666))  # mkstemp's 0600 would make the file private
            yield handle
            handle.flush()
            os.fsync(fd)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    # The new file is in place: from here on nothing is taken back.
    try:
        fsync_dir(target.parent)
    except OSError as exc:
        logger.warning(
            "%s was written, but its folder could not be synced to disk (%s): a power cut "
            "now could still lose it",
            target,
            exc.strerror or exc,
        )


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder belongs, here or above
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None


def _handle(fd: int, mode: str, shown: Path | None) -> IO[Any]:
    """A buffered file over `fd` ("w": UTF-8 text, "wb": bytes) whose failed writes are
    InputErrors naming `shown` (plain OSErrors without it)."""
    raw = io.FileIO(fd, "wb") if shown is None else _Output(fd, shown)
    buffered = io.BufferedWriter(raw)
    if "b" in mode:
        return buffered
    return io.TextIOWrapper(buffered, encoding="utf-8", newline="")


class _Output(io.FileIO):
    """A file whose failure to take bytes (a full disk, a pipe closed) names the file."""

    def __init__(self, fd: int, shown: Path) -> None:
        super().__init__(fd, "wb")
        self.shown = shown

    def write(self, data: Any) -> int | None:
        try:
            return super().write(data)
        except OSError as exc:
            raise cannot_write(self.shown, exc) from None
