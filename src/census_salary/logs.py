"""Logging set up at the edges (the CLI, and each server worker) and only there.

Quiet by default; rich records on a terminal, plain one-line records otherwise (Heroku's
log, files). A log file always gets INFO and above.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from census_salary.errors import InputError

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
logger = logging.getLogger(__name__)


class LogFile(logging.FileHandler):
    """`--log-file`: when a write fails (a full disk, /dev/full), a warning says so once,
    on the terminal, and the file is written no more; not a traceback for every record.
    The command goes on: its work is not undone by its log."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the file, not the record (a bad %d is logging's)
            self._failed_with(error)
        else:
            super().handleError(record)

    def close(self) -> None:
        try:  # (its last flush can fail as a write does)
            super().close()
        except OSError as exc:
            self._failed_with(exc)

    def _failed_with(self, error: OSError) -> None:
        if self.failed:
            return
        self.failed = True
        reason = error.strerror or error
        logger.warning(
            "Cannot write the log to %s: %s; it goes on here only.", self.baseFilename, reason
        )


def configure_logging(level: int, log_file: Path | None = None, show_time: bool = False) -> None:
    """Send records at `level` and above to stderr (and INFO and above to `log_file`).

    Calling it again replaces the handlers an earlier call added and closes their files.
    A log file that cannot be opened is an InputError, and leaves the logging as it was.
    """
    plain = logging.Formatter(PLAIN_FORMAT)
    console: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        console = RichHandler(console=Console(stderr=True), show_path=False, show_time=show_time)
    else:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(plain)
    console.setLevel(level)
    handlers = [console]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = LogFile(log_file, encoding="utf-8")
        except OSError as exc:  # a folder, a path under a file, /proc, no permission
            reason = exc.strerror or str(exc)
            if isinstance(exc, FileExistsError):  # (from mkdir: a file where a folder goes)
                reason = f"{exc.filename} is not a folder"
            raise InputError(
                f"Cannot write the log to {log_file}: {reason}; "
                "pass --log-file a file in a folder you can write to."
            ) from None
        handler.setFormatter(plain)
        handler.setLevel(logging.INFO)
        handlers.append(handler)
        level = min(level, logging.INFO)
    root = logging.getLogger()
    for old in root.handlers:
        if getattr(old, "census_edge", False):  # ours from an earlier call: let go of files
            old.close()
    for handler in handlers:
        handler.census_edge = True  # type: ignore[attr-defined]
    root.handlers = handlers
    root.setLevel(level)
