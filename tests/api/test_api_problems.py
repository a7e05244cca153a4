"""Errors leave the app as RFC 9457 problem documents."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.helpers import assert_problem
from census_salary.api.problems import add_problem_handlers


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)


def test_problem_names_the_path_and_the_request_id(client: TestClient) -> None:
    response = client.get("/nowhere", headers={"X-Request-ID": "id-404"})
    body = assert_problem(response, 404)
    assert body["instance"] == "/nowhere"
    assert body["request_id"] == "id-404"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    assert_problem(client.get("/predict"), 405)


def test_wrong_method_names_the_allowed_ones(client: TestClient) -> None:
    assert client.get("/predict").headers["allow"] == "POST"


def test_fastapis_own_validation_error_is_a_422_problem_naming_the_field() -> None:
    app = FastAPI()
    add_problem_handlers(app)

    @app.get("/count")
    async def count(n: int) -> int:
        return n

    with TestClient(app) as c:
        body = assert_problem(c.get("/count", params={"n": "many"}), 422)
    assert [error["field"] for error in body["errors"]] == ["query.n"], body
