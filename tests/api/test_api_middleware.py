"""The request context: request ids, security headers, HEAD, the body's size and time limits,
the access log, client disconnects and the 500."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope

from api.helpers import CLIENT_MAX_BODY_BYTES, assert_problem, settings_with
from census_salary.api import create_app
from census_salary.api.middleware import CONTENT_SECURITY_POLICY
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW, Columns


class BrokenScorer:
    """A scorer that fails as a bug would."""

    def probabilities(self, columns: Columns) -> np.ndarray:
        raise RuntimeError("internal detail")


@pytest.fixture
def broken(small_settings: Settings, small_bundle: Bundle) -> Iterator[TestClient]:
    bundle = Bundle(small_bundle.metadata, BrokenScorer(), "a broken scorer")
    with TestClient(create_app(small_settings, bundle)) as c:
        yield c


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "census_salary.access"]


def test_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Request-ID": "bad id\twith spaces"}, {"X-Request-ID": "x" * 129}],
    ids=["absent", "unsafe", "too-long"],
)
def test_request_id_is_made_when_absent_or_unsafe(
    client: TestClient, headers: dict[str, str]
) -> None:
    made = client.get("/health", headers=headers).headers["X-Request-ID"]
    assert made != headers.get("X-Request-ID")
    assert len(made) == 32, made
    assert int(made, 16) >= 0


def test_request_id_with_a_line_break_is_replaced(client: TestClient) -> None:
    # HTTP clients refuse to send it; a raw ASGI call can, and the log must not split.
    sent = raw_call(client.app, "GET", "/health", hang_up, ((b"x-request-id", b"abc\n"),))
    made = response_headers(sent)["x-request-id"]
    assert made != "abc\n"
    assert len(made) == 32, made


def test_too_large_body_is_413(client: TestClient) -> None:
    body = assert_problem(client.post("/predict", content=b"[" + b" " * 30_000 + b"]"), 413)
    assert str(CLIENT_MAX_BODY_BYTES) in body["detail"]


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(30):
            yield b" " * 1000
        yield b"]"

    assert_problem(client.post("/predict", content=chunks()), 413)


def announced_too_large(client: TestClient) -> tuple[int, int]:
    """POST /predict announcing one byte more than the app's limit: the status, and how
    often the body was read."""
    reads = 0

    async def counted() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"[]", "more_body": False}

    length = (b"content-length", str(client.app.state.max_body_bytes + 1).encode())
    sent = raw_call(client.app, "POST", "/predict", counted, (length,))
    return next(m for m in sent if m["type"] == "http.response.start")["status"], reads


def test_a_body_announced_too_large_is_refused_unread(client: TestClient) -> None:
    assert client.app.state.max_body_bytes == CLIENT_MAX_BODY_BYTES
    assert announced_too_large(client) == (413, 0)


def test_the_api_key_is_asked_for_before_the_body_is_judged(keyed: TestClient) -> None:
    assert announced_too_large(keyed) == (401, 0)


@pytest.mark.parametrize(
    "header", [("Content-Encoding", "gzip"), ("Content-Length", "999999999999")]
)
def test_a_static_file_ignores_body_headers_it_has_no_body_for(
    client: TestClient, header: tuple[str, str]
) -> None:
    whole = client.get("/static/app.js").content
    response = client.get("/static/app.js", headers=[header])
    assert response.status_code == 200
    assert response.content == whole


def test_a_too_large_body_is_counted_under_its_route(client: TestClient) -> None:
    client.post("/predict", content=b"[" + b" " * 30_000 + b"]")
    metrics = client.get("/metrics").text
    assert 'census_http_requests_total{method="POST",route="/predict",status="413"} 1.0' in metrics


@pytest.mark.parametrize("encoding", ["gzip", "deflate, gzip", "br"])
def test_a_compressed_body_is_a_415(client: TestClient, encoding: str) -> None:
    response = client.post(
        "/predict", content=json.dumps([EXAMPLE_ROW]), headers={"Content-Encoding": encoding}
    )
    body = assert_problem(response, 415)
    assert "Content-Encoding" in body["detail"]


def test_a_compressed_body_is_a_415_whichever_of_two_encodings_comes_first(
    client: TestClient,
) -> None:
    for first, second in [("gzip", "identity"), ("identity", "gzip")]:
        headers = [("Content-Encoding", first), ("Content-Encoding", second)]
        response = client.post("/predict", content=json.dumps([EXAMPLE_ROW]), headers=headers)
        assert_problem(response, 415)


def test_an_identity_encoded_body_is_read(client: TestClient) -> None:
    response = client.post(
        "/predict", content=json.dumps([EXAMPLE_ROW]), headers={"Content-Encoding": "identity"}
    )
    assert response.status_code == 200, response.text


def test_access_log_has_one_line_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="census_salary.access")
    client.post("/predict", json=[EXAMPLE_ROW], headers={"X-Request-ID": "r1"})
    lines = access_lines(caplog)
    assert len(lines) == 1, lines
    assert "method=POST path=/predict status=200" in lines[0]
    assert "request_id=r1" in lines[0]


def test_a_line_break_in_the_path_cannot_forge_a_log_line(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="census_salary.access")
    client.get("/x%0a2026-11-29 ERROR census_salary.api.app: model not loaded")
    (line,) = access_lines(caplog)
    assert "\n" not in line
    assert "path=/x\\n2026-11-29 ERROR" in line


def test_access_log_leaves_out_the_body(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    client.post("/predict", json=[{**EXAMPLE_ROW, "workclass": "PRIVATE-DATA"}])
    assert access_lines(caplog), "no access-log line"
    assert "PRIVATE-DATA" not in caplog.text


def test_access_log_records_the_status_of_a_refused_body(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="census_salary.access")
    client.post("/predict", content=b"[" + b" " * 30_000 + b"]")
    assert "status=413" in access_lines(caplog)[0]


def test_unexpected_error_is_a_500_problem_with_request_id(broken: TestClient) -> None:
    response = broken.post("/predict", json=[EXAMPLE_ROW], headers={"X-Request-ID": "crash-1"})
    body = assert_problem(response, 500)
    assert response.headers["X-Request-ID"] == "crash-1"
    assert body["request_id"] == "crash-1"


def test_unexpected_error_keeps_its_detail_from_the_client(broken: TestClient) -> None:
    response = broken.post("/predict", json=[EXAMPLE_ROW])
    assert "internal detail" not in response.text


def test_unexpected_error_is_logged_with_its_traceback(
    broken: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    broken.post("/predict", json=[EXAMPLE_ROW])
    errors = [r for r in caplog.records if r.name == "census_salary.api.middleware"]
    assert errors, caplog.text
    assert errors[0].exc_info is not None
    assert "internal detail" in caplog.text


# --- security headers ------------------------------------------------------------------


def raw_call(
    app: ASGIApp,
    method: str,
    path: str,
    receive: Receive,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> list[Message]:
    """Send one request straight through the ASGI app; the messages it sent back."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def response_headers(sent: list[Message]) -> dict[str, str]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    return {k.decode().lower(): v.decode() for k, v in start["headers"]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/health"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/static/app.js"),
        ("GET", "/docs-assets/swagger-ui.css"),
        ("GET", "/nowhere"),
        ("GET", "/predict"),
        ("POST", "/predict"),
    ],
    ids=["page", "api", "docs", "schema", "asset", "docs-asset", "404", "405", "422"],
)
def test_every_response_carries_the_security_headers(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json=[{"age": "old"}])

    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_a_crash_carries_the_security_headers(broken: TestClient) -> None:
    response = broken.post("/predict", json=[EXAMPLE_ROW])

    assert response.status_code == 500, response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_policy_allows_only_the_apps_own_files_and_no_framing() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))

    assert directives["default-src"] == "'self'", directives
    assert directives["frame-ancestors"] == "'none'", directives
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY


# --- HEAD ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/health", "/ready", "/metadata", "/docs", "/redoc", "/openapi.json", "/static/app.js"],
)
def test_head_answers_as_get_without_the_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)

    assert head.status_code == got.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["content-type"] == got.headers["content-type"]


def test_head_sends_no_body_whatever_the_server(impatient: ASGIApp) -> None:
    async def nothing() -> Message:
        return {"type": "http.request", "body": b""}

    sent = raw_call(impatient, "HEAD", "/health", nothing)

    assert next(m for m in sent if m["type"] == "http.response.start")["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent) == b""


def test_head_is_logged_as_head(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="census_salary.access")
    client.head("/health")
    assert "method=HEAD path=/health status=200" in access_lines(caplog)[0]


def test_head_where_get_is_refused_is_refused_alike(client: TestClient) -> None:
    response = client.head("/predict")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


# --- a body that is slow, or never finishes -------------------------------------------


@pytest.fixture
def impatient(small_settings: Settings, small_bundle: Bundle) -> ASGIApp:
    """An app that waits 0.2 s for a request body."""
    return create_app(settings_with(small_settings, body_timeout=0.2), small_bundle)


def first_part_then(after: Callable[[], Awaitable[Message]]) -> Receive:
    """A client that sends the start of a body, then does `after`."""
    parts = iter([{"type": "http.request", "body": b'[{"age": 3', "more_body": True}])

    async def receive() -> Message:
        part = next(parts, None)
        return part if part is not None else await after()

    return receive


async def stall() -> Message:
    await asyncio.sleep(30)
    return {"type": "http.disconnect"}


async def hang_up() -> Message:
    return {"type": "http.disconnect"}


def test_a_body_that_does_not_arrive_in_time_is_a_408_that_closes(impatient: ASGIApp) -> None:
    started = time.monotonic()
    sent = raw_call(impatient, "POST", "/predict", first_part_then(stall))
    waited = time.monotonic() - started

    start = next(m for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] != start["type"]))
    assert start["status"] == 408, body
    assert body["status"] == 408, body
    assert "0.2 seconds" in body["detail"], body
    assert response_headers(sent)["connection"] == "close"
    assert 0.2 <= waited < 5, waited


def test_a_body_that_arrives_in_time_is_answered(impatient: ASGIApp) -> None:
    parts = iter(
        [
            {"type": "http.request", "body": b"[", "more_body": True},
            {"type": "http.request", "body": json.dumps(EXAMPLE_ROW).encode() + b"]"},
        ]
    )

    async def receive() -> Message:
        await asyncio.sleep(0.05)
        return next(parts, {"type": "http.disconnect"})

    sent = raw_call(impatient, "POST", "/predict", receive)

    assert next(m for m in sent if m["type"] == "http.response.start")["status"] == 200


def test_a_client_that_hangs_up_is_logged_as_499_not_as_an_error(
    impatient: ASGIApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    sent = raw_call(impatient, "POST", "/predict", first_part_then(hang_up))

    assert sent == [], sent
    lines = access_lines(caplog)
    assert len(lines) == 1, lines
    assert "method=POST path=/predict status=499" in lines[0], lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "client disconnected" in caplog.text, caplog.text
