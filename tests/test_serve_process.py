"""`census serve` as a real process: HTTP over a socket, signals, environment."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from census_salary.api.telemetry import DRIFT_FLUSH_SECONDS
from census_salary.bundle import TREES_FILE, Bundle, current_bundle_dir, load_bundle
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW, check_records
from census_salary.errors import ExitCode
from live_server import (
    LiveServer,
    census_executable,
    free_port,
    live_server,
    server_environment,
)

pytestmark = pytest.mark.slow

OTHER_ROW = {
    **EXAMPLE_ROW,
    "age": 52,
    "education": "Masters",
    "education-num": 14,
    "marital-status": "Married-civ-spouse",
    "relationship": "Husband",
    "hours-per-week": 55,
}
ROWS = [EXAMPLE_ROW, OTHER_ROW, EXAMPLE_ROW, EXAMPLE_ROW, OTHER_ROW]


@pytest.fixture
def server(open_server: LiveServer) -> LiveServer:
    return open_server


def predict(server: LiveServer, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json=body, headers=headers, timeout=30)


def test_ready_names_the_model_version(server: LiveServer, small_bundle: Bundle) -> None:
    response = httpx.get(f"{server.url}/ready")

    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == small_bundle.metadata.version, response.text


def test_inputs_body_gives_one_prediction_per_row_in_order(server: LiveServer) -> None:
    response = predict(server, {"inputs": ROWS})

    assert response.status_code == 200, response.text
    body = response.json()
    probabilities = body["probabilities"]
    assert len(body["predictions"]) == len(ROWS), body
    assert len(probabilities) == len(body["warnings"]) == len(ROWS), body
    assert probabilities[0] == probabilities[2] == probabilities[3], probabilities
    assert probabilities[1] == probabilities[4], probabilities
    assert probabilities[0] != probabilities[1], probabilities


def test_bare_list_body_gives_the_same_answer(server: LiveServer) -> None:
    wrapped = predict(server, {"inputs": ROWS})
    bare = predict(server, ROWS)

    assert bare.status_code == 200, bare.text
    assert bare.json()["predictions"] == wrapped.json()["predictions"], bare.text
    assert bare.json()["probabilities"] == wrapped.json()["probabilities"], bare.text


def test_request_id_is_echoed(server: LiveServer) -> None:
    response = predict(server, [EXAMPLE_ROW], **{"X-Request-ID": "trace-42.a"})

    assert response.headers.get("X-Request-ID") == "trace-42.a", response.headers


def test_request_id_is_made_when_missing(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/health")

    assert len(response.headers.get("X-Request-ID", "")) >= 16, response.headers


def test_sigterm_lets_the_request_in_flight_finish(
    small_settings: Settings, tmp_path: Path
) -> None:
    rows = [EXAMPLE_ROW if i % 2 else OTHER_ROW for i in range(5000)]
    payload = json.dumps({"inputs": rows}).encode()
    first_part_sent, send_the_rest = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        # The request is surely in flight while its body is only half sent.
        yield payload[:4096]
        first_part_sent.set()
        send_the_rest.wait(timeout=20)
        yield payload[4096:]

    outcome: dict[str, Any] = {}

    def post(url: str) -> None:
        try:
            outcome["response"] = httpx.post(
                f"{url}/predict",
                content=slow_body(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    with live_server(small_settings.source, tmp_path / "serve.log") as server:
        client = threading.Thread(target=post, args=(server.url,))
        client.start()
        assert first_part_sent.wait(timeout=10), "the request body never started"
        time.sleep(0.5)  # let the server read the request head
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/health", timeout=2)  # shutting down: no new requests
        send_the_rest.set()
        client.join(timeout=30)
        started = time.monotonic()
        try:
            exit_code = server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            exit_code = None
        waited = time.monotonic() - started

        assert "error" not in outcome, f"{outcome['error']!r}\n{server.log()}"
        response = outcome["response"]
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == len(rows)
        assert exit_code == 0, f"exit code {exit_code} after {waited:.1f}s:\n{server.log()}"


def test_port_comes_from_the_environment_without_option(
    small_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()

    with live_server(
        small_settings.source,
        tmp_path / "serve.log",
        env={"PORT": str(port)},
        port=port,
        pass_port=False,
    ) as server:
        response = httpx.get(f"http://127.0.0.1:{port}/health")

        assert response.status_code == 200, server.log()


def test_the_model_scorer_setting_reaches_the_server(
    open_server: LiveServer, project_copy: Settings, tmp_path: Path
) -> None:
    """Without trees.npz only the pipeline can score, so a ready server proves it used it;
    and it answers what the tree tables answer, to the last bit."""
    (current_bundle_dir(project_copy.artifacts_dir) / TREES_FILE).unlink()

    with live_server(
        project_copy.source, tmp_path / "serve.log", env={"CENSUS_MODEL__SCORER": "pipeline"}
    ) as pipeline_server:
        from_pipeline = predict(pipeline_server, {"inputs": ROWS})
    from_trees = predict(open_server, {"inputs": ROWS})

    assert from_pipeline.status_code == 200, from_pipeline.text
    assert from_pipeline.json()["probabilities"] == from_trees.json()["probabilities"]


def test_the_old_scorer_variable_stops_the_server_before_it_listens(
    small_settings: Settings,
) -> None:
    port = free_port()
    command = [str(census_executable()), "--config", str(small_settings.source), "serve"]
    done = subprocess.run(
        [*command, "--port", str(port)],
        env=server_environment({"CENSUS_SERVE__SCORER": "pipeline"}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == ExitCode.USAGE, done.stderr
    assert "moved to [model] scorer" in done.stderr, done.stderr
    assert "CENSUS_MODEL__SCORER" in done.stderr, done.stderr
    assert "Uvicorn running" not in done.stderr, done.stderr


# --- bodies that are slow or abandoned, over a raw socket ------------------------------

BODY_TIMEOUT = 1.0
SOCKET_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def impatient_server(
    small_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A real server that waits BODY_TIMEOUT seconds for a request body."""
    log = tmp_path_factory.mktemp("impatient-server") / "serve.log"
    env = {"CENSUS_SERVE__BODY_TIMEOUT": str(BODY_TIMEOUT)}
    with live_server(small_settings.source, log, env=env) as running:
        yield running


def start_a_post(server: LiveServer, request_id: str) -> socket.socket:
    """A connection that has sent a /predict head announcing 1,000 bytes, then 10 of them."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT)
    connection.sendall(
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 1000\r\nX-Request-ID: {request_id}\r\n\r\n".encode()
        + b'[{"age": 3'
    )
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes (a timeout fails the test)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def wait_for_log(server: LiveServer, text: str, timeout: float = SOCKET_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while text not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.log()


def test_a_stalled_body_gets_a_408_and_the_connection_is_closed(
    impatient_server: LiveServer,
) -> None:
    started = time.monotonic()
    with start_a_post(impatient_server, "stalled-1") as connection:
        answer = read_until_closed(connection)  # closed by the server, or socket.timeout
    waited = time.monotonic() - started

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"\r\nconnection: close" in head.lower(), answer
    assert json.loads(body)["status"] == 408, answer
    assert BODY_TIMEOUT <= waited < SOCKET_TIMEOUT, waited
    log = wait_for_log(impatient_server, "request_id=stalled-1")
    assert "path=/predict status=408" in log, log


def test_a_client_that_hangs_up_mid_body_is_logged_as_499(impatient_server: LiveServer) -> None:
    with start_a_post(impatient_server, "gone-1"):
        time.sleep(0.2)  # the server has the head and the first bytes
    # Closed well before BODY_TIMEOUT: a disconnect, not a timeout.

    log = wait_for_log(impatient_server, "request_id=gone-1")
    line = next((x for x in log.splitlines() if "access" in x and "request_id=gone-1" in x), "")
    assert "path=/predict status=499" in line, log
    assert "status=500" not in log, log
    assert "Traceback" not in log, log


# --- a port already in use ---------------------------------------------------------------


def test_a_port_in_use_is_one_line_and_its_own_exit_code(small_settings: Settings) -> None:
    command = [str(census_executable()), "--config", str(small_settings.source), "serve"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=server_environment(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert done.returncode == ExitCode.CANNOT_LISTEN, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: Cannot listen on 127.0.0.1:{port}: the port is already in use. Stop the "
        "server that holds it, or choose another port with --port (or $PORT, or [serve] in "
        "census.toml)."
    ], done.stderr


def test_metrics_add_up_every_workers_counts(small_settings: Settings, tmp_path: Path) -> None:
    """Two workers: whichever answers /metrics, it counts the rows both scored."""
    from prometheus_client.parser import text_string_to_metric_families

    metrics_dir = tmp_path / "metrics"  # given, so the test can see each worker's files
    metrics_dir.mkdir()
    env = {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with live_server(small_settings.source, tmp_path / "serve.log", env=env) as two:
        scored = 0
        for _ in range(40):  # a new connection each: the kernel spreads them over workers
            if predict(two, [EXAMPLE_ROW, OTHER_ROW]).status_code == 200:
                scored += 2
        assert scored >= 60, two.log()[-3000:]  # a worker may still be loading at first
        time.sleep(2 * DRIFT_FLUSH_SECONDS)  # each worker counts its drift bins within one
        counted, drift_rows, drifts = [], [], []
        for _ in range(6):
            text = httpx.get(f"{two.url}/metrics", timeout=30).text
            samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
            counted += [s.value for s in samples if s.name == "census_rows_scored_total"]
            drift_rows.append(
                sum(
                    s.value
                    for s in samples
                    if s.name == "census_drift_rows_total" and s.labels["feature"] == "age"
                )
            )
            drifts.append(httpx.get(f"{two.url}/drift", timeout=30).json())
        workers = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("counter_*.db")}
    assert counted == [scored] * 6
    assert drift_rows == [scored] * 6
    assert len(workers) == 2, workers
    profile = load_bundle(small_settings.artifacts_dir).profile
    assert profile is not None
    both = profile.count(check_records([EXAMPLE_ROW, OTHER_ROW]).columns)["age"]
    ages = [b["observed_rows"] for b in drifts[0]["features"][0]["bins"]]
    assert ages == (both * (scored // 2)).tolist()  # each row was sent scored/2 times
    assert all(d == drifts[0] for d in drifts), "every worker reports the same counts"
    assert drifts[0]["rows"] == scored
