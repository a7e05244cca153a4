"""The request context: request ids, the body-size limit, the access log, and the 500."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.helpers import CLIENT_MAX_BODY_BYTES, assert_problem
from census_salary.api import create_app
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


def test_access_log_has_one_line_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="census_salary.access")
    client.post("/predict", json=[EXAMPLE_ROW], headers={"X-Request-ID": "r1"})
    lines = access_lines(caplog)
    assert len(lines) == 1, lines
    assert "method=POST path=/predict status=200" in lines[0]
    assert "request_id=r1" in lines[0]


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
