"""The server's Prometheus metrics, served at `/metrics` in the text format.

One `Telemetry` per app, with a registry of its own (no global state): request counts by
route template, method and status; latency histograms by route; requests in flight; rows
scored and rows predicted `>50K` (their ratio is the positive share, in PromQL
`rate(census_rows_predicted_positive_total[5m]) / rate(census_rows_scored_total[5m])`);
unknown categories by feature; and the loaded model's version and threshold.

Label values come only from the app itself (route templates, feature names, the model),
never from a request: a path that matches no route is counted as `(unmatched)`, so no
raw input reaches `/metrics` and the number of series stays fixed.

Under `census serve --workers N` each worker is a process of its own: `run_server`
sets `PROMETHEUS_MULTIPROC_DIR` for them, prometheus_client keeps each worker's values
in files there, and `/metrics` adds up every worker's, whichever worker answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from census_salary.errors import ConfigError

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "(unmatched)"
# Seconds; a one-row request takes well under a millisecond, a full batch tens of them.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Telemetry:
    """The metrics of one app; `render` gives the text `/metrics` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        folder = os.environ.get(MULTIPROCESS_DIR)
        self.multiprocess = folder is not None
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(
                f"${MULTIPROCESS_DIR} is {folder!r}, which is not a folder: create it, or "
                "unset it (census serve --workers N makes one of its own)."
            )
        kept = {"registry": self.registry}
        self.requests = Counter(
            "census_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            **kept,
        )
        self.latency = Histogram(
            "census_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            **kept,
        )
        self.in_flight = Gauge(
            "census_http_requests_in_flight",
            "Requests being answered now.",
            multiprocess_mode="livesum",
            **kept,
        )
        self.rows = Counter("census_rows_scored", "Rows scored by /predict.", **kept)
        self.positive = Counter(
            "census_rows_predicted_positive", "Rows /predict predicted as >50K.", **kept
        )
        self.unknown = Counter(
            "census_unknown_categories",
            "Category values the model never saw (scored as missing), by feature.",
            ["feature"],
            **kept,
        )
        self.model = Gauge(
            "census_model_info",
            "The loaded model: 1 for its version and decision threshold.",
            ["version", "threshold"],
            multiprocess_mode="max",
            **kept,
        )

    def model_loaded(self, version: str, threshold: float) -> None:
        self.model.labels(version=version, threshold=repr(threshold)).set(1)

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def scored(self, rows: int, positive: int, unknown: Mapping[str, int]) -> None:
        self.rows.inc(rows)
        self.positive.inc(positive)
        for feature, count in unknown.items():
            if count:
                self.unknown.labels(feature=feature).inc(count)

    def render(self) -> bytes:
        """The Prometheus text format: this process's metrics, or every worker's."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker)
        return generate_latest(every_worker)


def route_of(scope: Mapping[str, Any]) -> str:
    """The template of the route that answered (`/predict`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
