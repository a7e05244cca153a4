"""Run the API under uvicorn: ports, workers, logging in workers, clean shutdown.

Kept apart from `api` so the supervisor of `--workers N` does not import fastapi and
the model for nothing: only the worker processes build the app.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from census_salary.api.telemetry import MULTIPROCESS_DIR
from census_salary.collector import settle
from census_salary.config import MAX_WORKERS, Settings, load_settings
from census_salary.errors import CensusError, ConfigError, ListenError
from census_salary.logs import configure_logging

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKER_FACTORY = "census_salary.server:create_app_from_environment"
# What uvicorn exits with when the server did not start (it would read as "no model", 3).
UVICORN_STARTUP_FAILURE = 3


def create_app_from_environment() -> FastAPI:
    """Factory for uvicorn's worker processes: settings from $CENSUS_CONFIG and CENSUS_*.

    A worker is a fresh process (an edge, like the CLI), so it sets up its own logging at
    the level the parent passed down.
    """
    from census_salary.api import create_app

    log_file = os.environ.get("CENSUS_LOG_FILE")
    configure_logging(
        logging.getLevelNamesMapping().get(os.environ.get("CENSUS_LOG_LEVEL", ""), logging.INFO),
        Path(log_file) if log_file else None,
    )
    return create_app(load_settings(Path(os.environ["CENSUS_CONFIG"])), on_started=settle)


def _from_env(name: str, default: int, low: int, high: int) -> int:
    """A whole number from the environment (set by Heroku and the like), checked."""
    text = os.environ.get(name)
    return default if text is None else _whole_number(f"${name}", text, low, high)


def _whole_number(what: str, given: str | int, low: int, high: int) -> int:
    if not str(given).strip().isdigit() or not low <= int(given) <= high:
        raise ConfigError(f"{what} is {given!r}; expected a whole number from {low} to {high}.")
    return int(given)


def run_server(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    """Serve until SIGTERM or Ctrl-C; in-flight requests finish before exit.

    The port is `port`, else $PORT (Heroku's), else census.toml; workers likewise from
    $WEB_CONCURRENCY. A port that cannot be listened on (one in use) is a `ListenError`
    before the model is loaded, not uvicorn's exit 3 (our "no model") after it.
    """
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler
    # it found; with this one that is a clean exit 0 (what Heroku and systemd expect).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    host = host or settings.serve.host
    port = port if port is not None else _from_env("PORT", settings.serve.port, 0, 65535)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,  # the app logs one structured line per request
        "log_config": None,  # logging is configured by the CLI
        "timeout_graceful_shutdown": 20,
    }
    if workers is None:
        workers = _from_env("WEB_CONCURRENCY", settings.serve.workers, 1, MAX_WORKERS)
    else:
        workers = _whole_number("--workers", workers, 1, MAX_WORKERS)
    check_can_listen(host, port)
    try:
        if workers > 1:
            _run_workers(settings, workers, options)
        else:
            from census_salary.api import create_app

            uvicorn.run(create_app(settings, on_started=settle), **options)
    except SystemExit as exc:
        if exc.code != UVICORN_STARTUP_FAILURE:
            raise
        check_can_listen(host, port)  # taken while the model loaded: say so
        raise CensusError("census serve did not start; the log above says why.") from None


def _run_workers(settings: Settings, workers: int, options: dict[str, Any]) -> None:
    """uvicorn's worker processes, told through the environment what this process knows."""
    os.environ["CENSUS_CONFIG"] = str(settings.source)
    root = logging.getLogger()
    os.environ["CENSUS_LOG_LEVEL"] = logging.getLevelName(root.getEffectiveLevel())
    files = [h.baseFilename for h in root.handlers if isinstance(h, logging.FileHandler)]
    if files:  # --log-file: the workers keep the log too
        os.environ["CENSUS_LOG_FILE"] = files[0]
    settle()  # for `census serve`'s pause: this process watches the workers, loads no model
    given = os.environ.get(MULTIPROCESS_DIR)
    with tempfile.TemporaryDirectory(prefix="census-metrics-") as metrics_dir:
        # Each worker keeps its metrics in files here, so /metrics adds them all up.
        os.environ[MULTIPROCESS_DIR] = given or metrics_dir
        try:
            uvicorn.run(WORKER_FACTORY, factory=True, workers=workers, **options)
        finally:  # the folder is gone: nothing after this may use it
            if given is None:
                del os.environ[MULTIPROCESS_DIR]


def check_can_listen(host: str, port: int) -> None:
    """Bind host:port as uvicorn will (and let go at once), or raise a `ListenError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = "the port is already in use. Stop the server that holds it, or choose"
            else:
                reason = f"{exc.strerror or exc}. Choose another address with --host, or"
            raise ListenError(
                f"Cannot listen on {host}:{port}: {reason} another port with --port (or "
                "$PORT, or [serve] in census.toml)."
            ) from None
