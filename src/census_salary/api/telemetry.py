"""The server's Prometheus metrics, served at `/metrics` in the text format.

One `Telemetry` per app, with a registry of its own (no global state): request counts by
route template, method and status; latency histograms by route; requests in flight; rows
scored and rows predicted `>50K` (their ratio is the positive share, in PromQL
`rate(census_rows_predicted_positive_total[5m]) / rate(census_rows_scored_total[5m])`);
unknown categories by feature; and the loaded model's version and threshold.

Label values come only from the app itself (route templates, feature names, the model),
never from a request: a path that matches no route is counted as `(unmatched)`, so no
raw input reaches `/metrics` and the number of series stays fixed.

Input drift: each scored row is counted in its bin of every feature of the bundle's
drift profile (`census_drift_rows_total`, labelled by feature and bin index; bins come
from the training data, and unknown categories share one `other` bin). Rows are binned
in batches, off the request's path (`count_drift`): at the latest a second after they
were scored, and always before this process answers `/metrics` or `/drift`. `/drift`
and the drift gauges of `/metrics` (PSI per feature, the predicted-positive rate and
training's) are computed when asked, from the counts as collected.

Under `census serve --workers N` each worker is a process of its own: `run_server`
sets `PROMETHEUS_MULTIPROC_DIR` for them, prometheus_client keeps each worker's values
in files there, and `/metrics` adds up every worker's, whichever worker answers. The
drift counts are counters for that reason: summed over workers they are the counts of
all the rows served (another worker's last second of rows may still wait to be
counted), so `/drift` and the PSI gauges are the same whichever worker answers.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from census_salary.contract import ColumnTable, row_count
from census_salary.drift import BinCounter, DriftProfile, DriftReport, drift_report
from census_salary.errors import ConfigError

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "(unmatched)"
# Seconds; a one-row request takes well under a millisecond, a full batch tens of them.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Scored rows wait to be counted in their drift bins until this many wait, or this long.
DRIFT_BATCH_ROWS = 4096
DRIFT_FLUSH_SECONDS = 1.0
DRIFT_LOOSE_ROWS = 16  # requests of up to this many rows wait as values (`count_drift`)


def forget_dead_workers(folder: Path) -> None:
    """Drop the live gauges (requests in flight) of workers that died without a word (a
    SIGKILL; uvicorn starts another): prometheus_client adds up a gauge's files until its
    process is marked dead, so a dead worker's in-flight requests would count for good.
    Each worker does this as it starts, the replacement of a dead one too."""
    from prometheus_client.multiprocess import mark_process_dead

    for path in folder.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _running(int(pid)):
            mark_process_dead(int(pid), str(folder))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: running
        return True
    return True


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
        if folder is not None:
            forget_dead_workers(Path(folder))
        kept = {"registry": self.registry}
        self.version = ""
        # The series of each (route, method, status) seen, looked up once each.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
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
        self.drift_rows = Counter(
            "census_drift_rows",
            "Rows /predict scored, by feature and bin of the model's drift profile (the "
            "bins /drift names).",
            ["feature", "bin"],
            **kept,
        )
        self.profile: DriftProfile | None = None
        self._counter: BinCounter | None = None
        self._bins: list[Any] = []  # the counter of every bin, in `BinCounter.count`'s order
        # Scored rows not yet counted in their drift bins: tables, and a few rows' values.
        self._waiting: list[ColumnTable] = []
        self._loose: dict[str, list[Any]] = {}
        self._waiting_rows = 0
        self._lock = threading.Lock()
        self.model = Gauge(
            "census_model_info",
            "The loaded model: 1 for its version and decision threshold.",
            ["version", "threshold"],
            multiprocess_mode="max",
            **kept,
        )

    def model_loaded(
        self, version: str, threshold: float, profile: DriftProfile | None = None
    ) -> None:
        self.model.labels(version=version, threshold=repr(threshold)).set(1)
        self.version, self.profile = version, profile
        if profile is not None:  # every bin's series exists from the start, at 0
            self._counter = BinCounter(profile.features)
            self._loose = {name: [] for name in self._counter.features}
            self._bins = [
                self.drift_rows.labels(feature=f.feature, bin=str(i))
                for f in profile.features
                for i in range(len(f.labels))
            ]

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:  # the labels are the app's own, so the cache stays small
            series = self._series[key] = (
                self.requests.labels(route=route, method=method, status=str(status)),
                self.latency.labels(route=route),
            )
        count, latency = series
        count.inc()
        latency.observe(seconds)

    def scored(self, rows: int, positive: int, unknown: Mapping[str, int]) -> None:
        self.rows.inc(rows)
        self.positive.inc(positive)
        for feature, count in unknown.items():
            if count:
                self.unknown.labels(feature=feature).inc(count)

    def count_drift(self, columns: ColumnTable, rows: int) -> None:
        """Count `rows` scored rows (checked columns) in their drift bins: later, with others.

        Binning a request's rows costs about as much for one row as for a thousand, so
        they wait here and are binned together (one pass per feature, one increment
        per bin that got rows) once `DRIFT_BATCH_ROWS` rows wait, when `/metrics` or
        `/drift` asks, and every `DRIFT_FLUSH_SECONDS` (`flush_drift_every`). A few rows
        wait as plain values in one list per feature, not as the request's table: tens of
        thousands of small tables waiting a second would survive into the garbage
        collector's older generations and make its collections longer (~8% of the
        requests/s of one-row requests).
        """
        if self._counter is None:
            return
        with self._lock:
            if rows <= DRIFT_LOOSE_ROWS:
                for name, values in self._loose.items():
                    values.extend(columns.row_values(name))
            else:
                self._waiting.append(columns)
            self._waiting_rows += rows
            full = self._waiting_rows >= DRIFT_BATCH_ROWS
        if full:
            self.flush_drift()

    def flush_drift(self) -> None:
        """Count the rows waiting in `count_drift` now."""
        if self._counter is None:
            return
        with self._lock:
            tables, loose = self._waiting, self._loose
            self._waiting, self._waiting_rows = [], 0
            self._loose = {name: [] for name in self._counter.features}
        counts = np.zeros(len(self._bins), dtype=np.int64)
        for rows in (ColumnTable.joined(tables), loose):
            if row_count(rows):
                counts += self._counter.count(rows)
        for i in np.flatnonzero(counts).tolist():
            self._bins[i].inc(int(counts[i]))

    async def flush_drift_every(self, seconds: float = DRIFT_FLUSH_SECONDS) -> None:
        """Flush the waiting rows every `seconds`, so every worker's counts reach the
        shared files (the app's lifespan runs this until shutdown)."""
        while True:
            await asyncio.sleep(seconds)
            self.flush_drift()

    def render(self) -> bytes:
        """The Prometheus text format: this process's metrics, or every worker's, with
        the drift gauges computed from them."""
        self.flush_drift()
        return generate_latest(_WithDrift(self._collect(), self.profile, self.version))

    def drift(self) -> DriftReport | None:
        """The drift of every row served so far (every worker's), or None without a profile."""
        if self.profile is None:
            return None
        self.flush_drift()
        return _drift_of(list(self._collect()), self.profile, self.version)

    def _collect(self) -> Iterable[Metric]:
        if not self.multiprocess:
            return self.registry.collect()
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker)
        return every_worker.collect()


def _drift_of(families: list[Metric], profile: DriftProfile, version: str) -> DriftReport:
    """The drift report of the collected counters."""
    sizes = {f.feature: len(f.labels) for f in profile.features}
    counts = {feature: np.zeros(size, dtype=np.int64) for feature, size in sizes.items()}
    positive = 0
    for family in families:
        for sample in family.samples:
            if sample.name == "census_drift_rows_total":
                feature, index = sample.labels["feature"], int(sample.labels["bin"])
                if index < sizes.get(feature, 0):
                    counts[feature][index] += int(sample.value)
            elif sample.name == "census_rows_predicted_positive_total":
                positive += int(sample.value)
    return drift_report(profile, counts, positive, version)


class _WithDrift:
    """Collected metrics, plus the drift gauges computed from them (a collector for
    `generate_latest`)."""

    def __init__(self, families: Iterable[Metric], profile: DriftProfile | None, version: str):
        self.families, self.profile, self.version = list(families), profile, version

    def collect(self) -> Iterator[Metric]:
        yield from self.families
        if self.profile is None:
            return
        report = _drift_of(self.families, self.profile, self.version)
        psi = GaugeMetricFamily(
            "census_drift_psi",
            "Population stability index of the rows served against training, by feature "
            "(absent until a row is scored).",
            labels=["feature"],
        )
        for feature in report.features:
            if feature.psi is not None:
                psi.add_metric([feature.feature], feature.psi)
        yield psi
        rate = GaugeMetricFamily(
            "census_drift_predicted_positive_rate",
            "Share of the rows served predicted >50K (absent until a row is scored).",
        )
        if report.predicted_positive_rate is not None:
            rate.add_metric([], report.predicted_positive_rate)
        yield rate
        yield GaugeMetricFamily(
            "census_drift_reference_positive_rate",
            "Share of the training rows the model predicts >50K.",
            value=report.reference_positive_rate,
        )


def route_of(scope: Mapping[str, Any]) -> str:
    """The template of the route that answered (`/predict`), or the path of the mount that
    did (`/static`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if "app_root_path" in scope:  # set by a mount that matched, as its root_path grew
        return scope["root_path"][len(scope["app_root_path"]) :] or UNMATCHED
    return UNMATCHED
