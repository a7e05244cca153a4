"""`census serve` as a real process: HTTP over a socket, signals, environment."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from census_salary.bundle import TREES_FILE, Bundle, current_bundle_dir
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW
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
