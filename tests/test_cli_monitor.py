"""census monitor through typer's CliRunner: table, --json, --plot, --fail-over, periods."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from census_salary.cli import app
from census_salary.config import Settings
from census_salary.errors import ExitCode
from census_salary.monitoring import HISTORY_FILE


@pytest.fixture
def rows(tmp_path: Path, sample_frame: pd.DataFrame) -> Path:
    path = tmp_path / "rows.csv"
    sample_frame.head(300).to_csv(path, index=False)
    return path


@pytest.fixture
def older(tmp_path: Path, sample_frame: pd.DataFrame) -> Path:
    path = tmp_path / "older.csv"
    sample_frame[sample_frame["age"].astype(int) > 60].to_csv(path, index=False)
    return path


def run(settings: Settings, *args: str):
    return CliRunner().invoke(app, ["--config", str(settings.source), "monitor", *args])


def test_monitor_prints_a_table(small_settings: Settings, rows: Path) -> None:
    result = run(small_settings, "--data", str(rows))
    assert result.exit_code == 0, result.output
    assert "Drift of 300 rows" in result.output
    assert "native_country" in result.output


def test_monitor_json(small_settings: Settings, rows: Path) -> None:
    result = run(small_settings, "--data", str(rows), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"] == 300
    assert len(report["drift"]["features"]) == 14


def test_parquet_rows_give_the_report_their_csv_gives(
    small_settings: Settings, rows: Path, tmp_path: Path
) -> None:
    parquet = tmp_path / "rows.parquet"
    pd.read_csv(rows, dtype=str, keep_default_na=False).to_parquet(parquet)
    as_csv, as_parquet = (
        run(small_settings, "--data", str(path), "--json") for path in (rows, parquet)
    )
    assert as_parquet.exit_code == 0, as_parquet.output
    assert json.loads(as_parquet.output)["drift"] == json.loads(as_csv.output)["drift"]


def test_monitor_plot_writes_a_png(small_settings: Settings, rows: Path, tmp_path: Path) -> None:
    plot = tmp_path / "drift.png"
    result = run(small_settings, "--data", str(rows), "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_fail_over_passes_without_drift(small_settings: Settings, rows: Path) -> None:
    result = run(small_settings, "--data", str(rows), "--fail-over", "0.25")
    assert result.exit_code == 0, result.output


def test_fail_over_fails_the_gate_on_drift(small_settings: Settings, older: Path) -> None:
    result = run(small_settings, "--data", str(older), "--fail-over", "0.25")
    assert result.exit_code == ExitCode.GATE_FAILED, result.output
    assert "drifted past PSI 0.25" in result.output
    assert "age (" in result.output


def test_periods_are_reported_and_kept_in_the_history(
    project_copy: Settings, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "dated.csv"
    days = ["2026-03-01"] * 100 + ["2026-03-02"] * 50
    sample_frame.head(150).assign(day=days).to_csv(path, index=False)
    plot = tmp_path / "time.png"
    args = ["--data", str(path), "--time-column", "day", "--period", "day"]
    result = run(project_copy, *args, "--json", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    periods = json.loads(result.output)["periods"]
    assert [(p["period"], p["rows"]) for p in periods] == [("2026-03-01", 100), ("2026-03-02", 50)]
    history = (project_copy.artifacts_dir / HISTORY_FILE).read_text().splitlines()
    assert len(history) == 2
    assert plot.read_bytes().startswith(b"\x89PNG")
    table = run(project_copy, *args, "--no-history")
    assert table.exit_code == 0, table.output
    assert "Performance per day" in table.output
    assert len((project_copy.artifacts_dir / HISTORY_FILE).read_text().splitlines()) == 2


def test_a_bad_time_is_an_input_error(
    small_settings: Settings, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "dated.csv"
    sample_frame.head(3).assign(day=["2026-03-01", "soon", "2026-03-02"]).to_csv(path, index=False)
    result = run(small_settings, "--data", str(path), "--time-column", "day", "--no-history")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "row 2" in result.output
    assert "day" in result.output


def test_the_label_is_the_configured_target(
    small_settings: Settings, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "dated.csv"
    frame = sample_frame.head(4).rename(columns=lambda name: name.strip())
    frame = frame.rename(columns={"salary": "over_50k"})
    frame.assign(day="2026-03-01").to_csv(path, index=False)
    args = ["--config", str(small_settings.source), "monitor", "--data", str(path)]
    args += ["--time-column", "day", "--no-history", "--json"]
    env = {"CENSUS_DATA__TARGET": "over_50k"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["periods"][0]["rows"] == 4
    without = CliRunner().invoke(app, args)  # the default target, salary, is not there
    assert without.exit_code == ExitCode.USAGE, without.output
    assert "no 'salary' column (or income/class)" in without.output
