"""The HTTP API through TestClient: every endpoint, status and body, and each error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from census_salary.api import create_app
from census_salary.bundle import Bundle, RowScorer
from census_salary.config import Settings
from census_salary.schema import EXAMPLE_ROW
from census_salary.trees import TreeTables

KEY = "k3y-for-tests"


def settings_with(settings: Settings, **serve: object) -> Settings:
    return settings.model_copy(update={"serve": settings.serve.model_copy(update=serve)})


@pytest.fixture
def client(small_settings: Settings, serving_bundle: Bundle[RowScorer]) -> Iterator[TestClient]:
    with TestClient(
        create_app(
            settings_with(small_settings, max_rows=50, max_body_bytes=20_000), serving_bundle
        )
    ) as c:
        yield c


@pytest.fixture
def keyed(small_settings: Settings, serving_bundle: Bundle[RowScorer]) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings_with(small_settings, api_key=SecretStr(KEY)), serving_bundle)
    ) as c:
        yield c


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    return body


def test_health_is_cheap_and_keeps_the_classic_fields(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert {"name", "api_version", "model_lib_version"} <= set(body)


def test_ready_names_the_model(client: TestClient, serving_bundle: Bundle[RowScorer]) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["model_version"] == serving_bundle.metadata.version


def test_not_ready_without_a_model_says_why(small_settings: Settings, tmp_path: Path) -> None:
    settings = small_settings.model_copy(
        update={"artifacts": small_settings.artifacts.model_copy(update={"dir": tmp_path})}
    )
    with TestClient(create_app(settings)) as c:
        body = assert_problem(c.get("/ready"), 503)
        assert "census train" in body["detail"]
        assert c.get("/health").status_code == 200
        assert_problem(c.post("/predict", json=[EXAMPLE_ROW]), 503)


def test_ready_after_loading_from_disk(small_settings: Settings) -> None:
    with TestClient(create_app(small_settings)) as c:
        assert c.get("/ready").status_code == 200


def test_metadata_has_schema_threshold_and_metrics(client: TestClient) -> None:
    body = client.get("/metadata").json()
    assert "Private" in body["features"]["categorical"]["workclass"]
    assert 0 < body["threshold"] < 1
    assert body["metrics"]["roc_auc"] > 0.8


def test_predict_inputs_object(client: TestClient) -> None:
    body = client.post("/predict", json={"inputs": [EXAMPLE_ROW]}).json()
    assert body["predictions"][0] in {">50K", "<=50K"}
    assert 0 <= body["probabilities"][0] <= 1
    assert {"model_version", "threshold", "model_lib_version", "timestamp", "warnings"} <= set(body)


def test_predict_bare_list_keeps_order_and_duplicates(client: TestClient) -> None:
    rows = [{**EXAMPLE_ROW, "age": a} for a in (20, 60, 20, 35)]
    body = client.post("/predict", json=rows).json()
    assert len(body["predictions"]) == 4
    assert body["probabilities"][0] == body["probabilities"][2]


def test_predict_gives_the_pipelines_probability(client: TestClient, small_bundle: Bundle) -> None:
    from census_salary.schema import CensusRow

    row = CensusRow.model_validate(EXAMPLE_ROW)
    expected = small_bundle.scorer.probabilities_of_rows([row])[0]
    assert client.post("/predict", json=[EXAMPLE_ROW]).json()["probabilities"][0] == expected


def test_underscored_names_are_accepted(client: TestClient) -> None:
    row = {k.replace("-", "_"): v for k, v in EXAMPLE_ROW.items()}
    assert client.post("/predict", json=[row]).status_code == 200


def test_unknown_category_is_scored_and_flagged(client: TestClient) -> None:
    body = client.post(
        "/predict", json=[{**EXAMPLE_ROW, "occupation": "Astronaut"}, EXAMPLE_ROW]
    ).json()
    assert body["warnings"][1] == []
    assert "occupation" in body["warnings"][0][0]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'"a string"', 400),
        (b'{"rows": []}', 400),
        (b"[]", 422),
        (b'{"inputs": []}', 422),
        (b"[1]", 422),
        (b"\xff\xfe", 400),
    ],
)
def test_malformed_bodies_are_4xx_problems(client: TestClient, body: bytes, status: int) -> None:
    assert_problem(
        client.post("/predict", content=body, headers={"content-type": "application/json"}), status
    )


def test_invalid_row_names_index_and_field(client: TestClient) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 300}]
    body = assert_problem(client.post("/predict", json=rows), 422)
    assert body["errors"] == [
        {"index": 1, "field": "age", "message": "Input should be less than or equal to 120"}
    ]


def test_missing_field_is_named(client: TestClient) -> None:
    row = {k: v for k, v in EXAMPLE_ROW.items() if k != "sex"}
    body = assert_problem(client.post("/predict", json=[row]), 422)
    assert body["errors"] == [{"index": 0, "field": "sex", "message": "Field required"}]


def test_problem_does_not_echo_the_body(client: TestClient) -> None:
    secret = "x" * 90 + "SECRET"
    body = assert_problem(client.post("/predict", json=[{**EXAMPLE_ROW, "age": secret}]), 422)
    assert "SECRET" not in str(body)


def test_too_many_rows_is_413(client: TestClient) -> None:
    body = assert_problem(client.post("/predict", json=[EXAMPLE_ROW] * 51), 413)
    assert "50" in body["detail"]


def test_too_large_body_is_413(client: TestClient) -> None:
    body = assert_problem(client.post("/predict", content=b"[" + b" " * 30_000 + b"]"), 413)
    assert "20000" in body["detail"]


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(30):
            yield b" " * 1000
        yield b"]"

    assert_problem(client.post("/predict", content=chunks()), 413)


def test_server_keeps_serving_after_errors(client: TestClient) -> None:
    client.post("/predict", content=b"{")
    assert client.post("/predict", json=[EXAMPLE_ROW]).status_code == 200


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    assert_problem(client.get("/predict"), 405)


def test_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_request_id_is_made_when_absent_or_unsafe(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["X-Request-ID"] != "bad id\twith spaces"
    assert len(response.headers["X-Request-ID"]) == 32


def test_access_log_has_one_line_without_the_body(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="census_salary.access")
    client.post(
        "/predict",
        json=[{**EXAMPLE_ROW, "workclass": "PRIVATE-DATA"}],
        headers={"X-Request-ID": "r1"},
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "census_salary.access"]
    assert len(lines) == 1
    assert "method=POST path=/predict status=200" in lines[0]
    assert "request_id=r1" in lines[0]
    assert "PRIVATE-DATA" not in caplog.text


def test_page_is_a_form_with_the_vocabularies(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "<form" in response.text
    assert "Married-civ-spouse" in response.text


def test_openapi_documents_predict_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["inputs"]["value"]["inputs"][0] == EXAMPLE_ROW
    assert "CensusRow" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_openapi_example_works_when_pressed(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    for example in examples.values():
        assert client.post("/predict", json=example["value"]).status_code == 200


@pytest.mark.parametrize("path", ["/predict", "/metadata"])
def test_key_is_required_when_set(keyed: TestClient, path: str) -> None:
    response = keyed.post(path, json=[EXAMPLE_ROW]) if path == "/predict" else keyed.get(path)
    body = assert_problem(response, 401)
    assert "X-API-Key" in body["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_wrong_key_is_refused(keyed: TestClient) -> None:
    body = assert_problem(
        keyed.post("/predict", json=[EXAMPLE_ROW], headers={"X-API-Key": "nope"}), 401
    )
    assert "wrong" in body["detail"]


@pytest.mark.parametrize("headers", [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}])
def test_right_key_is_accepted(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.post("/predict", json=[EXAMPLE_ROW], headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/", "/health", "/ready", "/docs", "/openapi.json"])
def test_open_endpoints_stay_open(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_open_server_logs_that_it_is_open(
    small_settings: Settings, serving_bundle: Bundle[RowScorer], caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(small_settings, serving_bundle)):
        pass
    assert "no API key set" in caplog.text


def test_unexpected_error_is_a_500_problem_with_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, rows: object) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(TreeTables, "probabilities_of_rows", broken)
    response = client.post("/predict", json=[EXAMPLE_ROW], headers={"X-Request-ID": "crash-1"})
    body = assert_problem(response, 500)
    assert response.headers["X-Request-ID"] == "crash-1"
    assert "internal detail" not in response.text
    assert body["request_id"] == "crash-1"


def test_wrong_method_names_the_allowed_ones(client: TestClient) -> None:
    assert client.get("/predict").headers["allow"] == "POST"


def test_health_names_the_loaded_model(
    client: TestClient, serving_bundle: Bundle[RowScorer]
) -> None:
    assert client.get("/health").json()["model_version"] == serving_bundle.metadata.version


def test_metadata_without_a_model_is_503(small_settings: Settings, tmp_path: Path) -> None:
    settings = small_settings.model_copy(
        update={"artifacts": small_settings.artifacts.model_copy(update={"dir": tmp_path})}
    )
    with TestClient(create_app(settings)) as c:
        assert_problem(c.get("/metadata"), 503)
        assert c.get("/health").json()["model_version"] is None


def test_big_batches_are_scored_like_small_ones(client: TestClient) -> None:
    rows = [{**EXAMPLE_ROW, "age": 17 + i % 70} for i in range(50)]
    one_by_one = [client.post("/predict", json=[row]).json()["probabilities"][0] for row in rows]
    assert client.post("/predict", json=rows).json()["probabilities"] == one_by_one


def test_the_server_answers_without_scikit_learn_scipy_pandas_or_skops(
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
        "print(sorted(m for m in ('sklearn', 'scipy', 'pandas', 'skops') if m in sys.modules))\n"
    )
    env = {**os.environ, "CENSUS_CONFIG": str(small_settings.source)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_scorer_setting_pipeline_serves_the_skops_model_with_the_same_numbers(
    small_settings: Settings, client: TestClient
) -> None:
    from census_salary.model import Scorer

    rows = [{**EXAMPLE_ROW, "age": age, "workclass": "Astronaut"} for age in (20, 40, 60)]
    with TestClient(create_app(settings_with(small_settings, scorer="pipeline"))) as c:
        assert isinstance(c.app.state.bundle.scorer, Scorer)
        by_pipeline = c.post("/predict", json=rows).json()
    by_trees = client.post("/predict", json=rows).json()
    assert by_pipeline["probabilities"] == by_trees["probabilities"]
    assert by_pipeline["warnings"] == by_trees["warnings"]
