import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from census_salary import files
from census_salary.errors import InputError
from census_salary.files import atomic_open, atomic_write


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert list(tmp_path.iterdir()) == [path]


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")

    def crash_midway() -> None:
        with atomic_open(path) as handle:
            handle.write("half")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        crash_midway()
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write(tmp_path / "card.md", b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "card.md").stat().st_mode) == 0o644


def test_a_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "target.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    atomic_write(link, b"new")
    assert link.is_symlink()
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "target.csv"]


def test_a_symlink_to_a_missing_file_creates_that_file(tmp_path: Path) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "out" / "target.csv")
    atomic_write(link, b"new")
    assert link.is_symlink()
    assert (tmp_path / "out" / "target.csv").read_bytes() == b"new"


def test_a_named_pipe_is_written_to_and_stays_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with atomic_open(fifo, "wb") as handle:
        handle.write(b"rows\n")
    reader.join(10)
    assert received == [b"rows\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_folder_cannot_be_written_and_nothing_is_left(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(InputError, match=rf"^Cannot write {folder}: Is a directory\. "):
        atomic_write(folder, b"rows")
    assert list(tmp_path.iterdir()) == [folder]
    assert list(folder.iterdir()) == []


def test_a_path_under_a_file_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "sub" / "out.csv"
    with pytest.raises(InputError, match=rf"^Cannot write {path}: Not a directory\."):
        atomic_write(path, b"rows")


def test_a_full_disk_is_one_error_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(InputError, match=rf"^Cannot write {path}: No space left on device\."):
        atomic_write(path, b"new")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_a_write_the_file_refuses_is_one_error_naming_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def read_nothing() -> None:
        with fifo.open("rb"):
            pass  # the reader goes away: the rows cannot be taken (a broken pipe)

    reader = threading.Thread(target=read_nothing, daemon=True)
    reader.start()
    broken_pipe = rf"^Cannot write {fifo}: Broken pipe\."
    with pytest.raises(InputError, match=broken_pipe), atomic_open(fifo, "wb") as handle:
        handle.write(b"x" * 1_000_000)  # more than a pipe holds
    reader.join(10)


def test_an_error_of_the_callers_own_passes_unchanged(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_open(tmp_path / "out.csv", "wb"):
        (tmp_path / "missing.csv").read_bytes()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_folder_sync_after_the_rename_keeps_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "LATEST"
    path.write_text("old")

    def broken(folder: Path) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(files, "fsync_dir", broken)
    files.replace_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert "could not be synced to disk (Input/output error)" in caplog.text


def test_a_path_naming_an_open_descriptor_writes_through_it(tmp_path: Path) -> None:
    """`-o /dev/stdout >> all.csv`: the file the shell opened is appended to, not replaced
    (resolved, /dev/fd/N names that file, and renaming over it lost what it held)."""
    kept = tmp_path / "all.csv"
    kept.write_text("kept\n")
    with (
        kept.open("a") as shell_opened,
        atomic_open(Path(f"/dev/fd/{shell_opened.fileno()}")) as out,
    ):
        out.write("new\n")
    assert kept.read_text() == "kept\nnew\n"
