"""Start a real `census serve` process for tests that need a live server.

Not a test module: conftest.py and the tests of real processes import it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 10.0


def census_executable() -> Path:
    """The `census` script installed next to the running interpreter (any venv)."""
    return Path(sys.executable).parent / "census"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveServer:
    """A running `census serve`: its base URL and its process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far, for assertion messages."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = EXIT_TIMEOUT) -> int:
        """SIGTERM, then wait for the exit code (kill if it hangs). Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def process_running(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, waiting to be reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def server_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without CENSUS_*/PORT/WEB_CONCURRENCY, plus `extra`."""
    cleared = ("CENSUS_", "PORT", "WEB_CONCURRENCY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cleared)}
    env.update(extra or {})
    return env


@contextmanager
def live_server(
    config_path: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    pass_port: bool = True,
) -> Iterator[LiveServer]:
    """Run `census --config CONFIG serve` on 127.0.0.1 until the block ends.

    `env` is added to a clean copy of the environment. With `pass_port=False` no
    `--port` is given, so the server must take its port from `env` (e.g. PORT).
    Yields once `GET /ready` answers 200; stops the process with SIGTERM on exit.
    """
    port = port if port is not None else free_port()
    executable = census_executable()
    if not executable.is_file():
        raise RuntimeError(f"No census executable at {executable}: run `pip install -e .`")
    command = [str(executable), "--config", str(config_path), "serve", "--host", "127.0.0.1"]
    if pass_port:
        command += ["--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=server_environment(env), stdout=log, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        server.terminate()


def _wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"census serve exited with code {server.process.returncode} before it was "
                f"ready:\n{server.log()}"
            )
        try:
            response = httpx.get(f"{server.url}/ready", timeout=2)
        except httpx.TransportError as exc:
            last = repr(exc)
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        time.sleep(0.1)
    raise RuntimeError(
        f"census serve at {server.url} was not ready within {READY_TIMEOUT:.0f}s "
        f"(last: {last}):\n{server.log()}"
    )


def wait_for_ready(
    process: subprocess.Popen[bytes], base_url: str, log: Path, what: str, timeout: float = 60.0
) -> None:
    """Wait until `base_url`/ready answers 200 (a process started some other way than
    `live_server`: a Procfile's command, a container); fail with `log` if it exits or
    is not ready within `timeout` seconds. `what` names the process in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited early:\n{log.read_text()}"
        try:
            if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"/ready was not 200 within {timeout:.0f} s:\n{log.read_text()}")
