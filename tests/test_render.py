import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from census_salary.artifacts import RunStatus, Switch
from census_salary.audit import slice_bundle
from census_salary.bundle import Bundle
from census_salary.config import Settings, SliceSettings
from census_salary.metadata import RunMetrics, RunRecord
from census_salary.metrics import SliceReport, slice_metrics
from census_salary.render import (
    fairness_table,
    metrics_table,
    runs_table,
    short_versions,
    slice_table,
    switch_text,
)


def rendered(renderable: object) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_slice_values_are_shown_as_data_not_markup() -> None:
    features = pd.DataFrame({"workclass": ["[red]x"] * 40 + ["[/]"] * 40})
    settings = SliceSettings(min_rows=10, bootstrap=0)
    report = slice_metrics(features, np.zeros(80), np.zeros(80), 0.5, ["workclass"], settings)
    text = rendered(slice_table(report))
    assert "[red]x" in text
    assert "[/]" in text


@pytest.fixture(scope="module")
def audited(small_settings: Settings, small_bundle: Bundle) -> SliceReport:
    return slice_bundle(small_settings, small_bundle, None, None, bootstrap=200)


def in_80_columns(*renderables: object) -> str:
    console = Console(record=True, width=80)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def test_slice_table_fits_80_columns_with_f1_intervals(audited: SliceReport) -> None:
    text = in_80_columns(slice_table(audited))
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text  # values fold rather than lose their end
    f1 = audited.overall.intervals["f1"]
    assert f"{audited.overall.f1:.2f} [{f1.low:.2f}, {f1.high:.2f}]" in text


def test_slice_table_says_which_slices_are_too_uncertain(audited: SliceReport) -> None:
    uncertain = [s for s in audited.slices if s.too_uncertain]
    assert uncertain, "the sample should have a slice with a wide F1 interval"
    text = in_80_columns(slice_table(audited))
    assert text.count(" uncertain") == len(uncertain) + 1  # + the caption's


def test_fairness_table_fits_80_columns_and_gives_each_verdict(audited: SliceReport) -> None:
    assert audited.fairness is not None
    text = in_80_columns(fairness_table(audited.fairness))
    assert max(len(line) for line in text.splitlines()) <= 80, text
    verdicts = [d.verdict for f in audited.fairness.features for d in f.disparities]
    for verdict in set(verdicts):
        assert text.count(f" {verdict} ") >= verdicts.count(verdict), text
    assert "[fairness] in census.toml" in text


def test_a_title_naming_a_file_is_shown_as_written(small_bundle: Bundle) -> None:
    text = rendered(metrics_table(small_bundle.metadata.metrics, title="Evaluation on [b]x.csv"))
    assert "Evaluation on [b]x.csv" in text


def _run(version: str, kind: str = "hist_gradient_boosting", f1: float | None = 0.74) -> RunRecord:
    return RunRecord(
        version=version,
        created_at=datetime(2026, 11, 27, tzinfo=UTC),
        model_kind=kind,
        params={},
        best_params={},
        threshold=0.391254864,
        data_sha256="9e7ddeec" * 8,
        metrics=RunMetrics(accuracy=0.869084, f1=f1, roc_auc=0.9323925, pr_auc=0.84),
    )


HISTORY = [
    RunStatus(_run("20261127T120236Z-1948af65"), kept=False, current=False),
    RunStatus(_run("20261127T132559Z-0e0d68f9", "random_forest", None), kept=True, current=False),
    RunStatus(_run("20261128T000705Z-45a6a21e", "logistic_regression"), kept=True, current=True),
    RunStatus(_run("20261128T000705Z-45b00000"), kept=True, current=False),  # same second
]


def test_runs_table_fits_80_columns_one_line_per_run() -> None:
    console = Console(record=True, width=80)
    console.print(runs_table(HISTORY))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text  # nothing cut short to fit
    expected = [
        ("20261127T120236Z", "removed", "hist GB", "0.740"),
        ("20261127T132559Z", "kept", "forest", "n/a"),
        ("20261128T000705Z-45a", "current", "log-reg", "0.740"),
        ("20261128T000705Z-45b", "kept", "hist GB", "0.740"),
    ]
    for short, bundle, model, f1 in expected:  # each row whole on one line
        row = rf"^ *{short} +{bundle} +{model} +0\.3913 +0\.869 +{f1} +0\.932 *$"
        assert re.search(row, text, re.MULTILINE), text


def test_short_versions_are_starts_that_tell_versions_apart() -> None:
    versions = [status.run.version for status in HISTORY]
    short = short_versions(versions)
    for version, start in short.items():
        assert version.startswith(start)
        assert [other for other in versions if other.startswith(start)] == [version]
    assert short[versions[0]] == "20261127T120236Z"


def test_switch_text_says_a_running_server_loads_it_on_restart(small_bundle: Bundle) -> None:
    report = slice_metrics(
        pd.DataFrame({"sex": ["x"] * 4}), np.zeros(4), np.zeros(4), 0.5, [], SliceSettings()
    )
    switch = Switch(small_bundle.version, small_bundle, report, previous="20200101T000000Z-0")
    text = rendered(switch_text(switch))
    assert f"{small_bundle.version} is now the current model (it was 20200101T000000Z-0)" in text
    assert "`census serve` loads it when it restarts" in text
