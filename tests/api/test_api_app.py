"""The app factory: the lifespan loads the model, the scorer setting, the OpenAPI schema
with the row limits, the static files, and the server's import graph."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.helpers import CLIENT_MAX_BODY_BYTES, CLIENT_MAX_ROWS, assert_problem
from census_salary.api import create_app
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW
from census_salary.row_schema import contract_document
from census_salary.scoring import PipelineScorer
from census_salary.trees import TreeTables


def components(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()["components"]["schemas"]


def test_lifespan_loads_the_model_from_disk(small_settings: Settings) -> None:
    with TestClient(create_app(small_settings)) as c:
        assert c.get("/ready").status_code == 200
        assert isinstance(c.app.state.bundle.scorer, TreeTables)


def test_app_without_a_model_starts_and_says_why(unloaded: TestClient) -> None:
    body = assert_problem(unloaded.get("/ready"), 503)
    assert "census train" in body["detail"], body


def test_scorer_setting_pipeline_serves_the_skops_model_with_the_same_numbers(
    small_settings: Settings, client: TestClient
) -> None:
    model = small_settings.model.model_copy(update={"scorer": "pipeline"})
    rows = [{**EXAMPLE_ROW, "age": age, "workclass": "Astronaut"} for age in (20, 40, 60)]
    with TestClient(create_app(small_settings.model_copy(update={"model": model}))) as c:
        assert isinstance(c.app.state.bundle.scorer, PipelineScorer)
        by_pipeline = c.post("/predict", json=rows).json()
    by_trees = client.post("/predict", json=rows).json()
    assert by_pipeline["probabilities"] == by_trees["probabilities"]
    assert by_pipeline["warnings"] == by_trees["warnings"]


def test_a_trailing_slash_is_not_redirected_to_the_host_the_client_names(
    client: TestClient,
) -> None:
    response = client.post(
        "/predict/", json=[EXAMPLE_ROW], headers={"host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404
    assert "location" not in response.headers


def test_open_server_logs_that_it_is_open(
    small_settings: Settings, small_bundle: Bundle, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(small_settings, small_bundle)):
        pass
    assert "no API key set" in caplog.text


def test_openapi_lists_the_row_model_and_serves_the_docs(client: TestClient) -> None:
    assert "CensusRow" in components(client)
    assert client.get("/docs").status_code == 200


def test_openapi_predict_body_is_either_form(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["anyOf"] == [
        {"$ref": "#/components/schemas/PredictRequest"},
        {"$ref": "#/components/schemas/RowList"},
    ]


@pytest.mark.parametrize("form", ["PredictRequest", "RowList"])
def test_openapi_bounds_the_rows_of_each_body_form(client: TestClient, form: str) -> None:
    schema = components(client)[form]
    rows = schema["properties"]["inputs"] if form == "PredictRequest" else schema
    assert rows["type"] == "array"
    assert rows["items"] == {"$ref": "#/components/schemas/CensusRow"}
    assert (rows["minItems"], rows["maxItems"]) == (1, CLIENT_MAX_ROWS), rows


@pytest.mark.parametrize("column", contract_document(), ids=lambda column: column["name"])
def test_openapi_states_each_fields_limits(client: TestClient, column: dict[str, Any]) -> None:
    field = components(client)["CensusRow"]["properties"][column["name"]]
    if column["kind"] == "number":
        assert field["type"] == "integer", field
        assert (field["minimum"], field["maximum"]) == (column["minimum"], column["maximum"])
    else:
        text = next(option for option in field["anyOf"] if option["type"] == "string")
        assert text["maxLength"] == column["max_length"], field
        assert {"type": "null"} in field["anyOf"], field


def _operations(client: TestClient) -> dict[str, dict[str, Any]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {
        f"{method.upper()} {path}": op for path, ops in paths.items() for method, op in ops.items()
    }


def test_openapi_asks_for_the_key_only_where_the_server_does(keyed: TestClient) -> None:
    operations = _operations(keyed)
    asks = {name for name, op in operations.items() if "401" in op["responses"]}
    assert asks == {"GET /metadata", "POST /predict"}
    assert all(operations[name]["security"] for name in asks)
    schemes = keyed.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_openapi_of_an_open_server_asks_for_no_key(client: TestClient) -> None:
    operations = _operations(client)
    assert not [name for name, op in operations.items() if "401" in op["responses"]]
    assert "securitySchemes" not in client.get("/openapi.json").json()["components"]


def test_openapi_documents_503_where_the_model_is_needed(client: TestClient) -> None:
    operations = _operations(client)
    needs = {name for name, op in operations.items() if "503" in op["responses"]}
    assert needs == {"GET /ready", "GET /metadata", "POST /predict", "GET /drift"}


def test_openapi_documents_explain_as_a_boolean_query_parameter(client: TestClient) -> None:
    (explain,) = _operations(client)["POST /predict"]["parameters"]
    assert (explain["name"], explain["in"], explain["required"]) == ("explain", "query", False)
    assert explain["schema"]["type"] == "boolean"
    assert explain["schema"]["default"] is False


def test_openapi_states_the_body_limits(client: TestClient) -> None:
    predict = _operations(client)["POST /predict"]
    assert predict["requestBody"]["x-max-body-bytes"] == CLIENT_MAX_BODY_BYTES
    assert f"{CLIENT_MAX_BODY_BYTES:,} bytes" in predict["requestBody"]["description"]
    assert {"408", "413"} <= set(predict["responses"])


def test_openapi_gives_every_error_the_problem_schema(keyed: TestClient) -> None:
    errors = [
        (name, status, response)
        for name, op in _operations(keyed).items()
        for status, response in op["responses"].items()
        if int(status) >= 400
    ]
    assert len(errors) >= 9, errors
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for name, status, response in errors:
        assert response["content"] == {"application/problem+json": problem}, (name, status)
    assert "HTTPValidationError" not in components(keyed)


@pytest.mark.parametrize("name", ["app.js", "style.css"])
def test_page_assets_are_served(client: TestClient, name: str) -> None:
    assert client.get(f"/static/{name}").status_code == 200


@pytest.mark.slow  # starts a process
def test_the_server_answers_without_scikit_learn_scipy_pandas_skops_pyarrow_matplotlib_or_rich(
    small_settings: Settings,
) -> None:
    """What keeps launch fast and memory small: the worker's whole import graph, run."""
    script = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from census_salary import cli, server\n"
        "with TestClient(server.create_app_from_environment()) as client:\n"
        "    assert client.get('/ready').status_code == 200\n"
        f"    assert client.post('/predict', json=[{EXAMPLE_ROW!r}]).status_code == 200\n"
        "heavy = ('sklearn', 'scipy', 'pandas', 'skops', 'pyarrow', 'matplotlib', 'rich')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ, "CENSUS_CONFIG": str(small_settings.source)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_on_started_is_called_once_the_model_is_loaded(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    loaded: list[object] = []
    app = create_app(
        small_settings, small_bundle, on_started=lambda: loaded.append(app.state.bundle)
    )
    assert not loaded
    with TestClient(app):
        assert loaded == [small_bundle]
