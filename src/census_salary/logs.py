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
            handler = logging.FileHandler(log_file, encoding="utf-8")
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
