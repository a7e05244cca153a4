"""Liveness (/health) and readiness (/ready)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from census_salary.bundle import Bundle


def test_health_is_cheap_and_keeps_the_classic_fields(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert {"name", "api_version", "model_lib_version"} <= set(body), body


def test_health_names_the_loaded_model(client: TestClient, small_bundle: Bundle) -> None:
    assert client.get("/health").json()["model_version"] == small_bundle.version


def test_health_answers_without_a_model(unloaded: TestClient) -> None:
    response = unloaded.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] is None


def test_ready_names_the_model(client: TestClient, small_bundle: Bundle) -> None:
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "model_version": small_bundle.version}
