"""`census predict --url`: the CLI as a client of a real server on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from pydantic import SecretStr
from typer.testing import CliRunner

from census_salary.api import create_app
from census_salary.cli import app
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW
from census_salary.errors import ExitCode
from live_server import free_port

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def server_url(small_settings: Settings) -> Iterator[str]:
    """A real uvicorn server over the small model, requiring an API key."""
    serve = small_settings.serve.model_copy(update={"api_key": SecretStr(KEY), "max_rows": 3})
    settings = small_settings.model_copy(update={"serve": serve})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


ROWS = [{**EXAMPLE_ROW, "id": i, "age": 25 + 3 * i} for i in range(8)]


def test_remote_scoring_matches_local(server_url: str, small_settings: Settings) -> None:
    runner = CliRunner()
    local = runner.invoke(
        app, ["--config", str(small_settings.source), "predict"], input=json.dumps(ROWS)
    )
    remote = runner.invoke(
        app,
        ["predict", "--url", server_url, "--api-key", KEY, "--batch-size", "3"],
        input=json.dumps(ROWS),
    )
    assert remote.exit_code == 0, remote.output
    assert json.loads(remote.stdout) == json.loads(local.stdout)


def test_remote_key_can_come_from_the_environment(server_url: str) -> None:
    result = CliRunner().invoke(
        app,
        ["predict", "--url", server_url, "--batch-size", "3"],
        input=json.dumps(ROWS[:1]),
        env={"CENSUS_API_KEY": KEY},
    )
    assert result.exit_code == 0, result.output


def test_remote_refusal_is_exit_6_with_the_server_reason(server_url: str) -> None:
    result = CliRunner().invoke(
        app,
        ["predict", "--url", server_url, "--batch-size", "3"],
        input=json.dumps(ROWS[:1]),
        env={"CENSUS_API_KEY": ""},
    )
    assert result.exit_code == ExitCode.REMOTE, result.output
    assert "401" in result.stderr
    assert "API key" in result.stderr
    assert result.stdout == ""


INPUTS = {
    "csv": ",".join(EXAMPLE_ROW) + "\n" + ",".join(map(str, EXAMPLE_ROW.values())) + "\n",
    "json": json.dumps(ROWS[:1]),
    "jsonl": json.dumps(ROWS[0]) + "\n",
}


@pytest.mark.parametrize("fmt", sorted(INPUTS))
def test_unreachable_server_is_exit_6_with_nothing_on_stdout(fmt: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["predict", "--url", url], input=INPUTS[fmt])
    assert result.exit_code == ExitCode.REMOTE, result.output
    assert "Cannot reach" in result.stderr
    assert result.stdout == ""


@contextmanager
def answering(reply: bytes) -> Iterator[str]:
    """A server on loopback that answers every connection with `reply`, then closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def http_reply(body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "did not answer like an HTTP server"),
        (http_reply(b"<html>hello</html>", "text/html"), "did not answer with JSON"),
        (http_reply(b"\xff\xfe{}"), "did not answer with JSON"),
        (http_reply(b'{"status": "ok"}'), "model metadata"),
        (http_reply(b"[1, 2]"), "model metadata"),
    ],
    ids=["not-http", "html", "not-utf8", "other-json", "json-list"],
)
def test_a_server_that_is_not_census_is_exit_6_with_nothing_on_stdout(
    reply: bytes, message: str
) -> None:
    with answering(reply) as url:
        result = CliRunner().invoke(app, ["predict", "--url", url], input=json.dumps(ROWS[:1]))
    assert result.exit_code == ExitCode.REMOTE, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_remote_threshold_can_be_overridden(server_url: str) -> None:
    result = CliRunner().invoke(
        app,
        ["predict", "--url", server_url, "--api-key", KEY, "--threshold", "0"],
        input=json.dumps(ROWS),
    )
    assert result.exit_code == 0, result.output
    assert {row["prediction"] for row in json.loads(result.stdout)} == {">50K"}


def test_bad_rows_are_caught_before_sending(server_url: str) -> None:
    rows = [{**EXAMPLE_ROW, "age": 400}]
    result = CliRunner().invoke(
        app, ["predict", "--url", server_url, "--api-key", KEY], input=json.dumps(rows)
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "row 1, field 'age'" in result.stderr


def test_batches_shrink_to_the_servers_row_limit(server_url: str) -> None:
    """The server takes 3 rows per request; the default batch is 1,000."""
    result = CliRunner().invoke(
        app, ["predict", "--url", server_url, "--api-key", KEY], input=json.dumps(ROWS)
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == len(ROWS)


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "localhost:8000", "http://localhost:99999", "http://local host:8000"],
)
def test_a_malformed_url_is_exit_2_naming_it(url: str) -> None:
    result = CliRunner().invoke(app, ["predict", "--url", url], input=INPUTS["csv"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"--url {url!r} is malformed" in result.stderr
    assert result.stdout == ""


def test_explain_with_a_url_is_refused_before_the_server_is_asked() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody there: asking it would be exit 6
    result = CliRunner().invoke(app, ["predict", "--url", url, "--explain"], input=INPUTS["csv"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--explain works on a local bundle only" in result.stderr
