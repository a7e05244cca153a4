"""The dependencies: the loaded model (503 without one) and the API key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.helpers import KEY, assert_problem, settings_without_a_model
from census_salary.api import create_app
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW


def call(client: TestClient, path: str, **kwargs: object):
    """POST rows to /predict, GET anything else."""
    if path == "/predict":
        return client.post(path, json=[EXAMPLE_ROW], **kwargs)
    return client.get(path, **kwargs)


@pytest.mark.parametrize("path", ["/ready", "/metadata", "/predict"])
def test_routes_that_need_the_model_are_503_without_one(unloaded: TestClient, path: str) -> None:
    body = assert_problem(call(unloaded, path), 503)
    assert "not loaded" in body["detail"], body


@pytest.mark.parametrize("path", ["/ready", "/predict"])
def test_a_503_does_not_tell_clients_where_the_artifacts_are(
    small_settings: Settings, tmp_path: Path, path: str
) -> None:
    """The log has the whole reason; clients learn nothing of the server's files."""
    folder = tmp_path / "secret-folder-name"
    folder.mkdir()
    with TestClient(create_app(settings_without_a_model(small_settings, folder))) as client:
        body = assert_problem(call(client, path), 503)
    assert "secret-folder-name" not in json.dumps(body), body
    assert "the server's log says why" in body["detail"], body


@pytest.mark.parametrize("path", ["/predict", "/metadata"])
def test_key_is_required_when_set(keyed: TestClient, path: str) -> None:
    response = call(keyed, path)
    body = assert_problem(response, 401)
    assert "X-API-Key" in body["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("headers", [{"X-API-Key": "nope"}, {"Authorization": "Bearer nope"}])
def test_wrong_key_is_refused(keyed: TestClient, headers: dict[str, str]) -> None:
    body = assert_problem(call(keyed, "/predict", headers=headers), 401)
    assert "wrong" in body["detail"]


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}],
)
def test_right_key_is_accepted(keyed: TestClient, headers: dict[str, str]) -> None:
    assert call(keyed, "/predict", headers=headers).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", KEY), ("X-API-Key", "nope")],
        [("X-API-Key", "nope"), ("X-API-Key", KEY)],
        [("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer nope")],
    ],
    ids=["right-then-wrong", "wrong-then-right", "two-bearers"],
)
def test_a_key_given_twice_is_refused_whichever_comes_first(
    keyed: TestClient, headers: list[tuple[str, str]]
) -> None:
    body = assert_problem(call(keyed, "/predict", headers=headers), 401)
    assert "more than once" in body["detail"]


def test_the_x_api_key_header_decides_over_another_authorization(keyed: TestClient) -> None:
    headers = {"X-API-Key": KEY, "Authorization": "Bearer a-gateway-token"}
    assert call(keyed, "/predict", headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/", "/health", "/ready", "/docs", "/openapi.json"])
def test_open_endpoints_stay_open(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200
