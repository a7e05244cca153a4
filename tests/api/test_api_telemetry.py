"""GET /metrics: exact counts after known requests, no raw input, the access setting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from api.helpers import KEY, assert_problem, settings_with
from census_salary.api import create_app
from census_salary.api.telemetry import (
    CONTENT_TYPE,
    DRIFT_BATCH_ROWS,
    Telemetry,
    forget_dead_workers,
)
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW, check_records
from census_salary.errors import ConfigError

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counts_are_exact_after_a_known_sequence(client: TestClient, small_bundle: Bundle) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "race": "Martian"}, {**EXAMPLE_ROW, "age": 60}]
    answers = [client.post("/predict", json=rows[:1]), client.post("/predict", json=rows[1:])]
    client.post("/predict", json=[{**EXAMPLE_ROW, "age": -1}])
    client.get("/no-such-page")
    client.get("/health")
    probabilities = [p for answer in answers for p in answer.json()["probabilities"]]
    samples = scrape(client)
    predict = {"route": "/predict", "method": "POST"}
    assert value(samples, "census_http_requests_total", **predict, status="200") == 2
    assert value(samples, "census_http_requests_total", **predict, status="422") == 1
    assert (
        value(
            samples, "census_http_requests_total", route="(unmatched)", method="GET", status="404"
        )
        == 1
    )
    assert value(samples, "census_http_request_duration_seconds_count", route="/predict") == 3
    assert value(samples, "census_rows_scored_total") == 3
    positive = sum(p >= small_bundle.threshold for p in probabilities)
    assert value(samples, "census_rows_predicted_positive_total") == positive
    assert value(samples, "census_unknown_categories_total", feature="race") == 1
    assert value(samples, "census_http_requests_in_flight") == 1  # the scrape itself


def test_static_files_count_under_their_folder_not_as_unmatched(client: TestClient) -> None:
    client.get("/static/app.js")
    client.get("/static/no-such-file.js")
    samples = scrape(client)
    static = {"route": "/static", "method": "GET"}
    assert value(samples, "census_http_requests_total", **static, status="200") == 1
    assert value(samples, "census_http_requests_total", **static, status="404") == 1
    unmatched = {"route": "(unmatched)", "method": "GET"}
    assert value(samples, "census_http_requests_total", **unmatched, status="200") == 0


def test_model_info_names_the_version_and_threshold(
    client: TestClient, small_bundle: Bundle
) -> None:
    samples = scrape(client)
    labels = {"version": small_bundle.version, "threshold": repr(small_bundle.threshold)}
    assert value(samples, "census_model_info", **labels) == 1


def test_no_raw_value_of_a_request_reaches_the_metrics(client: TestClient) -> None:
    secret = "zq9-secret"
    client.post("/predict", json=[{**EXAMPLE_ROW, "occupation": secret}])
    client.get(f"/{secret}", headers={"X-Request-ID": secret})
    client.post(f"/predict?{secret}=1", content=secret.encode())
    assert secret not in client.get("/metrics").text


@pytest.fixture
def metrics_behind_the_key(small_settings: Settings, small_bundle: Bundle) -> Iterator[TestClient]:
    settings = settings_with(small_settings, api_key=SecretStr(KEY), metrics="key")
    with TestClient(create_app(settings, small_bundle)) as c:
        yield c


def test_metrics_behind_the_key_need_it(metrics_behind_the_key: TestClient) -> None:
    assert_problem(metrics_behind_the_key.get("/metrics"), 401)
    assert scrape(metrics_behind_the_key, **{"X-API-Key": KEY})


def test_metrics_are_open_by_default_even_with_a_key(keyed: TestClient) -> None:
    assert scrape(keyed)


def test_metrics_can_be_turned_off(small_settings: Settings, small_bundle: Bundle) -> None:
    with TestClient(create_app(settings_with(small_settings, metrics="off"), small_bundle)) as c:
        assert_problem(c.get("/metrics"), 404)
        assert "/metrics" not in c.get("/openapi.json").json()["paths"]


def test_a_metrics_folder_that_is_not_there_is_a_config_error(
    small_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match=r"PROMETHEUS_MULTIPROC_DIR.*not a folder"):
        create_app(small_settings)


def drift_total(telemetry: Telemetry, feature: str) -> float:
    """The drift rows counted so far for `feature`, read from the registry as it is."""
    return sum(
        sample.value
        for family in telemetry.registry.collect()
        for sample in family.samples
        if sample.name == "census_drift_rows_total" and sample.labels["feature"] == feature
    )


@pytest.fixture
def counting(small_bundle: Bundle) -> Telemetry:
    telemetry = Telemetry()
    telemetry.model_loaded(small_bundle.version, small_bundle.threshold, small_bundle.profile)
    return telemetry


def test_scored_rows_wait_to_be_counted_in_drift_bins(counting: Telemetry) -> None:
    counting.count_drift(check_records([EXAMPLE_ROW] * 3).columns, 3)
    assert drift_total(counting, "age") == 0
    counting.flush_drift()
    assert drift_total(counting, "age") == 3


def test_a_full_batch_of_waiting_rows_is_counted_at_once(counting: Telemetry) -> None:
    rows = DRIFT_BATCH_ROWS // 2
    columns = check_records([EXAMPLE_ROW] * rows).columns
    counting.count_drift(columns, rows)
    assert drift_total(counting, "age") == 0
    counting.count_drift(columns, rows)
    assert drift_total(counting, "age") == 2 * rows


def test_waiting_rows_are_counted_within_the_flush_interval(counting: Telemetry) -> None:
    async def serve_a_while() -> None:
        flushing = asyncio.create_task(counting.flush_drift_every(0.01))
        counting.count_drift(check_records([EXAMPLE_ROW]).columns, 1)
        await asyncio.sleep(0.2)
        flushing.cancel()

    asyncio.run(serve_a_while())
    assert drift_total(counting, "age") == 1


def test_rows_of_many_requests_are_counted_as_each_alone(
    counting: Telemetry, small_bundle: Bundle
) -> None:
    requests = [
        [EXAMPLE_ROW],
        [{**EXAMPLE_ROW, "age": 70, "race": "Martian"}] * 20,
        [{**EXAMPLE_ROW, "workclass": None, "sex": "Female"}, EXAMPLE_ROW],
        [{**EXAMPLE_ROW, "age": -1}, {**EXAMPLE_ROW, "education": "Masters"}],  # one refused
    ]
    for rows in requests:
        checked = check_records(rows)
        counting.count_drift(checked.columns, len(checked))
    counting.flush_drift()
    profile = small_bundle.profile
    assert profile is not None
    expected = profile.count(check_records([row for rows in requests for row in rows]).columns)
    report = counting.drift()
    assert report is not None
    for feature in report.features:
        assert [b.observed_rows for b in feature.bins] == expected[feature.feature].tolist()


def test_a_dead_workers_requests_in_flight_are_forgotten(tmp_path: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead, alive = (
        tmp_path / f"gauge_livesum_{finished.pid}.db",
        tmp_path / (f"gauge_livesum_{os.getpid()}.db"),
    )
    for path in (dead, alive):
        path.write_bytes(b"")
    forget_dead_workers(tmp_path)
    assert (dead.exists(), alive.exists()) == (False, True)
