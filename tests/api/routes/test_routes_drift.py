"""GET /drift and the drift gauges of /metrics: exact after known requests, no raw input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.helpers import KEY, assert_problem, settings_with
from api.test_api_telemetry import scrape, value
from census_salary.api import create_app
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW, check_records
from census_salary.drift import OTHER, DriftCounts

ROWS = [
    [EXAMPLE_ROW],
    [{**EXAMPLE_ROW, "age": 70, "race": "Martian"}, {**EXAMPLE_ROW, "workclass": None}],
]


def _expected(bundle: Bundle) -> DriftCounts:
    """The counts of `ROWS`, by the library alone."""
    assert bundle.profile is not None
    counts = DriftCounts(bundle.profile)
    for rows in ROWS:
        columns = check_records(rows).columns
        counts.add(columns, bundle.probabilities(columns) >= bundle.threshold)
    return counts


def test_drift_counts_are_exact_after_known_requests(
    client: TestClient, small_bundle: Bundle
) -> None:
    for rows in ROWS:
        assert client.post("/predict", json=rows).status_code == 200
    client.post("/predict", json=[{**EXAMPLE_ROW, "age": -1}])  # refused: not counted
    body = client.get("/drift").json()
    expected = _expected(small_bundle).report(small_bundle.version)
    assert body == expected.model_dump(mode="json")
    assert body["rows"] == 3
    race = next(f for f in body["features"] if f["feature"] == "race")
    assert next(b for b in race["bins"] if b["label"] == OTHER)["observed_rows"] == 1


def test_drift_gauges_match_drift(client: TestClient, small_bundle: Bundle) -> None:
    for rows in ROWS:
        client.post("/predict", json=rows)
    report = client.get("/drift").json()
    samples = scrape(client)
    for feature in report["features"]:
        got = value(samples, "census_drift_psi", feature=feature["feature"])
        assert got == pytest.approx(feature["psi"])
    rate = value(samples, "census_drift_predicted_positive_rate")
    assert rate == pytest.approx(report["predicted_positive_rate"])
    reference = value(samples, "census_drift_reference_positive_rate")
    assert reference == pytest.approx(report["reference_positive_rate"])
    expected = _expected(small_bundle)
    age = expected.counter.split(expected.counts)["age"]
    for index in np.flatnonzero(age).tolist():
        got = value(samples, "census_drift_rows_total", feature="age", bin=str(index))
        assert got == age[index]


def test_drift_before_any_row_has_no_psi(client: TestClient) -> None:
    body = client.get("/drift").json()
    assert body["rows"] == 0
    assert {f["psi"] for f in body["features"]} == {None}
    assert "census_drift_psi{" not in client.get("/metrics").text


def test_no_raw_value_of_a_request_reaches_drift_or_metrics(client: TestClient) -> None:
    secret, number = "zq9-secret", 987_653
    client.post("/predict", json=[{**EXAMPLE_ROW, "occupation": secret, "fnlgt": number}])
    for path in ("/drift", "/metrics"):
        text = client.get(path).text
        assert secret not in text, path
        assert str(number) not in text, path


def test_a_model_without_a_profile_says_so(small_settings: Settings, small_bundle: Bundle) -> None:
    with TestClient(create_app(small_settings, replace(small_bundle, profile=None))) as c:
        assert c.post("/predict", json=[EXAMPLE_ROW]).status_code == 200
        problem = assert_problem(c.get("/drift"), 409)
        assert "no drift profile" in problem["detail"]
        assert "census_drift_psi" not in c.get("/metrics").text


def test_drift_follows_the_metrics_setting(small_settings: Settings, small_bundle: Bundle) -> None:
    keyed = settings_with(small_settings, api_key=SecretStr(KEY), metrics="key")
    with TestClient(create_app(keyed, small_bundle)) as c:
        assert_problem(c.get("/drift"), 401)
        assert c.get("/drift", headers={"X-API-Key": KEY}).status_code == 200
    with TestClient(create_app(settings_with(small_settings, metrics="off"), small_bundle)) as c:
        assert_problem(c.get("/drift"), 404)


def test_drift_is_in_the_openapi_schema(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/drift"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DriftReport"
    }
    assert set(operation["responses"]) >= {"200", "409", "503"}
