import os
import stat
from pathlib import Path

import pytest

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
