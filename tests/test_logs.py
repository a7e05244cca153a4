from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from census_salary.errors import InputError
from census_salary.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers, root.level = handlers, level


def test_log_file_gets_info_while_the_console_stays_quiet(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "census.log"
    configure_logging(logging.WARNING, log)
    logging.getLogger("census_salary.test").info("model loaded")
    text = log.read_text(encoding="utf-8")
    assert text.rstrip().endswith("INFO census_salary.test: model loaded")


def test_console_records_are_plain_lines_when_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(logging.INFO)
    logging.getLogger("census_salary.test").info("ready")
    assert capsys.readouterr().err.rstrip().endswith("INFO census_salary.test: ready")


def test_a_second_call_closes_the_first_calls_file(tmp_path: Path) -> None:
    configure_logging(logging.WARNING, tmp_path / "first.log")
    first = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    configure_logging(logging.WARNING, tmp_path / "second.log")
    assert first[0].stream is None  # closed
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    assert [Path(h.baseFilename).name for h in files] == ["second.log"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [(".", "Is a directory"), ("taken/census.log", "taken is not a folder")],
)
def test_a_log_file_that_cannot_be_opened_is_an_input_error_naming_it(
    tmp_path: Path, name: str, reason: str
) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(InputError, match=rf"^Cannot write the log to {tmp_path}.*: .*{reason}"):
        configure_logging(logging.WARNING, tmp_path / name)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_log_file_that_cannot_be_written_is_one_warning_not_a_traceback_each_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(logging.WARNING, Path("/dev/full"))
    for n in range(3):
        logging.getLogger("census_salary.test").info("record %d", n)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("Cannot write the log to /dev/full: No space left on device") == 1


def test_a_record_that_cannot_be_formatted_leaves_the_log_file_working(tmp_path: Path) -> None:
    log = tmp_path / "census.log"
    configure_logging(logging.WARNING, log)
    test_logger = logging.getLogger("census_salary.test")
    test_logger.info("bad %d", "x")  # logging reports it, as it does for any handler
    test_logger.info("still written")
    assert "still written" in log.read_text(encoding="utf-8")
