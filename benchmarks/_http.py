"""Shared helpers of the benchmarks: a raw keep-alive HTTP/1.1 client and process tools.

The client writes each request, headers and body together, with ONE `sendall`. Clients
that write the headers and the body in two segments can meet Nagle's algorithm on the
sending side and a delayed ACK on the server side, which adds about 40 ms per request
that is the client's doing, not the server's. The response is read by Content-Length
(chunked responses are not needed by these benchmarks and are refused).

Nothing here talks to any address but the one it is given; the benchmarks only give it
127.0.0.1.
"""

from __future__ import annotations

import compileall
import functools
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HOST = "127.0.0.1"  # every benchmark talks over loopback
ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "census.toml"
VENV_BIN = Path(sys.executable).parent


@functools.cache
def byte_compile_package() -> None:
    """Byte-compile src/ (once a run), as installing the package does.

    pip writes a package's bytecode when it installs it, and Python writes an editable
    install's on its first import; but where PYTHONDONTWRITEBYTECODE is set (this machine
    sets it) every start of an editable install would compile our modules from source:
    ~40 ms of `census serve`'s launch that no installed copy pays, and that the floors,
    built from site-packages' compiled modules, do not pay either.
    """
    compileall.compile_dir(ROOT / "src", quiet=1)


def census_command() -> list[str]:
    """The `census` console script of this interpreter's environment, its package compiled."""
    byte_compile_package()
    script = VENV_BIN / "census"
    return [str(script)] if script.exists() else [sys.executable, "-m", "census_salary.cli"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpError(Exception):
    pass


class Client:
    """One keep-alive HTTP/1.1 connection to host:port; reconnects if the server closes."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buffer = sock, b""

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def build(method: str, path: str, host: str, body: bytes = b"", headers: dict | None = None):
        """The request bytes, ready to send in one piece."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
            lines.append("Content-Type: application/json")
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def send_raw(self, request: bytes) -> Response:
        """Send prepared request bytes in one sendall and read one response."""
        for attempt in (1, 2):
            if self._sock is None:
                self.connect()
            try:
                self._sock.sendall(request)  # type: ignore[union-attr]
                return self._read_response()
            except (ConnectionError, HttpError) as exc:
                self.close()
                if attempt == 2 or (isinstance(exc, HttpError) and "closed" not in str(exc)):
                    raise
        raise AssertionError("unreachable")

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None
    ) -> Response:
        return self.send_raw(self.build(method, path, self.host, body, headers))

    def _recv(self) -> bytes:
        data = self._sock.recv(65536)  # type: ignore[union-attr]
        if not data:
            raise HttpError("connection closed by the server")
        return data

    def _read_response(self) -> Response:
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise HttpError(f"response without Content-Length: {lines[0]}")
        length = int(headers["content-length"])
        chunks, have = [rest], len(rest)
        while have < length:
            data = self._recv()
            chunks.append(data)
            have += len(data)
        data = b"".join(chunks)
        body, self._buffer = data[:length], data[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)


# --- processes ---------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        *census_command(),
        "--config",
        str(CONFIG),
        "serve",
        "--host",
        host,
        "--port",
        str(port),
    ]


def start_process(
    command: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start a server in its own process group, its output thrown away."""
    return subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        cwd=cwd or ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the server's process group (it started it), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def wait_for(
    host: str,
    port: int,
    path: str = "/ready",
    *,
    method: str = "GET",
    body: bytes = b"",
    timeout: float = 30.0,
    process: subprocess.Popen | None = None,
    interval: float = 0.005,
) -> float:
    """Poll until `method path` answers 200; return the seconds waited. Bounded by timeout."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with Client(host, port, timeout=5) as client:
                if client.request(method, path, body).status == 200:
                    return time.perf_counter() - started
        except (OSError, HttpError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"http://{host}:{port}{path} did not answer 200 in {timeout} s")


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except (FileNotFoundError, PermissionError):
            continue
        for child in text.split():
            found.append(int(child))
            found += _children(int(child))
    return found


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_mib(pid: int, include_children: bool = True) -> float:
    """VmRSS of pid (plus its descendants) in MiB."""
    pids = [pid, *(_children(pid) if include_children else [])]
    return sum(_status_kib(p, "VmRSS") for p in pids) / 1024


def rss_mb(pid: int) -> float:
    """VmRSS of pid and its descendants in MB (10^6 bytes), the unit of the targets."""
    return rss_mib(pid) * 2**20 / 1_000_000


def hwm_mib(pid: int, include_children: bool = True) -> float:
    """VmHWM (peak RSS so far) of pid (plus its descendants) in MiB."""
    pids = [pid, *(_children(pid) if include_children else [])]
    return sum(_status_kib(p, "VmHWM") for p in pids) / 1024


# --- figures -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], fmt: str = ".3f") -> str:
    """'min-max' of a figure's runs (issue #10 asks each figure's range beside its median)."""
    return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "-"


def machine(packages: Sequence[str]) -> str:
    """This machine and the versions behind the figures, for a report's heading."""
    versions = []
    for name in ("census-salary", *packages):
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} not installed")
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {', '.join(versions)}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print(line)
