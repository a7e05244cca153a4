"""Every command through typer's CliRunner (and a few through a real process)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import census_salary.artifacts
import census_salary.bundle
from census_salary.api import create_app
from census_salary.bundle import Bundle
from census_salary.cli import app
from census_salary.cli.app import print_json
from census_salary.config import Settings, load_settings
from census_salary.contract import EXAMPLE_ROW, TARGET, canonical_name
from census_salary.errors import CensusError, ExitCode
from census_salary.figures import FIGURE_NAMES
from census_salary.model_card import TITLE
from census_salary.scoring import PipelineScorer
from census_salary.trees import TreeTables
from live_server import census_executable, process_running, server_environment

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["train", "evaluate", "slice-report", "predict", "serve", "runs", "monitor"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(
    runner: CliRunner,
    settings: Settings,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
):
    return runner.invoke(app, ["--config", str(settings.source), *args], input=stdin, env=env)


def rows_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("census ")


def test_the_console_script_freezes_the_collector_as_it_ends(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """So the interpreter's last collection has nothing to walk (see collector)."""
    import gc
    import sys

    from census_salary.cli import main

    monkeypatch.setattr(sys, "argv", ["census", "--version"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exited:
            main()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("census ")


def test_outside_a_project_says_how_to_fix_it(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CENSUS_CONFIG", raising=False)
    result = runner.invoke(app, ["evaluate"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--config PATH" in result.stderr
    assert "Traceback" not in result.output


def test_config_found_in_a_parent_folder(
    runner: CliRunner, small_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = small_settings.artifacts_dir
    monkeypatch.chdir(inner)
    monkeypatch.delenv("CENSUS_CONFIG", raising=False)
    result = runner.invoke(app, ["evaluate", "--json"])
    assert result.exit_code == 0, result.output


def test_bad_config_is_one_line_and_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "census.toml"
    config.write_text("[model]\nkind = 'svm'\n")
    result = runner.invoke(app, ["--config", str(config), "evaluate"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "model.kind" in result.stderr


def test_train_writes_a_new_bundle(runner: CliRunner, quick_copy: Settings) -> None:
    result = run(runner, quick_copy, "train", "--json")
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)["version"]
    assert (quick_copy.artifacts_dir / "LATEST").read_text().strip() == version
    assert (quick_copy.artifacts_dir / version / "slice_output.txt").is_file()
    assert quick_copy.model_card_path.read_text().count(version) >= 1


def test_train_is_quiet_when_piped(runner: CliRunner, quick_copy: Settings) -> None:
    result = run(runner, quick_copy, "train")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_train_without_data_or_network_says_where_to_put_the_file(
    runner: CliRunner, project_copy: Settings
) -> None:
    project_copy.data_path.unlink()
    result = run(runner, project_copy, "train")
    assert result.exit_code == ExitCode.DATA_UNAVAILABLE, result.output
    assert str(project_copy.data_path) in result.stderr


def test_evaluate_on_the_held_out_split(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "evaluate", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["rows"] == 600
    assert set(metrics) >= {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "brier",
        "confusion",
    }


def test_evaluate_table_for_people(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "evaluate")
    assert result.exit_code == 0, result.output
    assert "ROC AUC" in result.stdout


def test_evaluate_on_a_labelled_file(runner: CliRunner, small_settings: Settings) -> None:
    result = run(
        runner, small_settings, "evaluate", "--data", str(small_settings.data_path), "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 3000


@pytest.mark.parametrize("command", [["evaluate", "--json"], ["slice-report"]])
def test_auditing_a_file_without_rows_is_exit_2(
    runner: CliRunner, small_settings: Settings, tmp_path: Path, command: list[str]
) -> None:
    header_only = tmp_path / "header.csv"
    header = small_settings.data_path.read_text().splitlines()[0]
    header_only.write_text(header + "\n")
    result = run(runner, small_settings, *command, "--data", str(header_only))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"{header_only} holds no rows." in result.stderr
    assert result.stdout == ""


def test_json_output_refuses_nan_rather_than_print_invalid_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(CensusError, match="cannot be printed as JSON"):
        print_json({"accuracy": math.nan})
    assert capsys.readouterr().out == ""


def test_evaluate_draws_the_figures_into_a_folder(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "figures"
    result = run(runner, small_settings, "evaluate", "--figures", str(folder), "--json")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in folder.iterdir()) == sorted(FIGURE_NAMES)
    assert all(path.read_bytes().startswith(b"\x89PNG\r\n") for path in folder.iterdir())


def test_evaluate_refuses_an_empty_figures_folder(
    runner: CliRunner, small_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(runner, small_settings, "evaluate", "--figures", "", "--json")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--figures" in result.stderr
    assert "is empty" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_evaluate_refuses_a_file_as_the_figures_folder(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n")
    result = run(runner, small_settings, "evaluate", "--figures", str(taken), "--json")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "it is a file, not a folder" in result.stderr
    assert taken.read_text() == "mine\n"


def test_model_card_writes_the_card_and_check_then_passes(
    runner: CliRunner, project_copy: Settings
) -> None:
    project_copy.model_card_path.write_text(f"{TITLE}\n\nstale\n", encoding="utf-8")
    stale = run(runner, project_copy, "model-card", "--check")
    assert stale.exit_code == ExitCode.GATE_FAILED, stale.output
    assert "census model-card" in stale.stderr
    assert run(runner, project_copy, "model-card").exit_code == 0
    fresh = run(runner, project_copy, "model-card", "--check")
    assert fresh.exit_code == 0, fresh.output


@pytest.mark.parametrize("card", ["artifacts/runs.jsonl", "census.toml", "census.csv"])
def test_model_card_refuses_a_path_that_holds_something_else(
    runner: CliRunner, project_copy: Settings, card: str
) -> None:
    root = project_copy.source.parent
    target = root / card
    before = target.read_bytes()
    config = root / "card.toml"
    text = project_copy.source.read_text(encoding="utf-8")
    config.write_text(f'{text}\n[artifacts]\nmodel_card = "{card}"\n', encoding="utf-8")
    result = runner.invoke(app, ["--config", str(config), "model-card"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"Cannot write the model card to {target}" in result.stderr
    assert target.read_bytes() == before


def test_model_card_refuses_a_folder_as_a_usage_error(
    runner: CliRunner, project_copy: Settings
) -> None:
    root = project_copy.source.parent
    (root / "cards").mkdir()
    config = root / "card.toml"
    text = project_copy.source.read_text(encoding="utf-8")
    config.write_text(f'{text}\n[artifacts]\nmodel_card = "cards"\n', encoding="utf-8")
    result = runner.invoke(app, ["--config", str(config), "model-card"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "it is a folder" in result.stderr
    assert list((root / "cards").iterdir()) == []


def test_evaluate_refuses_changed_data(runner: CliRunner, project_copy: Settings) -> None:
    with project_copy.data_path.open("a") as handle:
        handle.write(",".join(str(v) for v in EXAMPLE_ROW.values()) + ",<=50K\n")
    result = run(runner, project_copy, "evaluate")
    assert result.exit_code == ExitCode.MODEL, result.output
    assert "--data FILE" in result.stderr


def test_evaluate_without_a_model_says_to_train(runner: CliRunner, project_copy: Settings) -> None:
    (project_copy.artifacts_dir / "LATEST").unlink()
    result = run(runner, project_copy, "evaluate")
    assert result.exit_code == ExitCode.MODEL, result.output
    assert "census train" in result.stderr


@pytest.mark.parametrize(
    ("fmt", "marker"),
    [
        ("csv", "feature,value,rows"),
        ("markdown", "| feature |"),
        ("text", "Slice metrics"),
        ("table", "F1 gap"),
    ],
)
def test_slice_report_formats(
    runner: CliRunner, small_settings: Settings, fmt: str, marker: str
) -> None:
    result = run(runner, small_settings, "slice-report", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert marker in result.stdout


def test_slice_report_json_has_every_category(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "slice-report", "--format", "json", "-f", "sex")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {s["value"] for s in report["slices"]} == {"Female", "Male"}


def test_slice_report_to_a_file(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "slices.csv"
    result = run(runner, small_settings, "slice-report", "--format", "csv", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("feature,value,rows")


def test_slice_report_unknown_feature_is_exit_2(
    runner: CliRunner, small_settings: Settings
) -> None:
    result = run(runner, small_settings, "slice-report", "-f", "height")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "height" in result.stderr


def test_max_f1_gap_gates(runner: CliRunner, small_settings: Settings) -> None:
    strict = run(runner, small_settings, "slice-report", "--format", "csv", "--max-f1-gap", "0")
    lenient = run(runner, small_settings, "slice-report", "--format", "csv", "--max-f1-gap", "1")
    assert strict.exit_code == ExitCode.GATE_FAILED, strict.output
    assert "below the overall" in strict.stderr
    assert lenient.exit_code == 0, lenient.output


def test_slice_report_json_gives_each_rate_low_and_high(
    runner: CliRunner, small_settings: Settings
) -> None:
    result = run(runner, small_settings, "slice-report", "-f", "sex", "--format", "json")
    assert result.exit_code == 0, result.output
    overall = json.loads(result.stdout)["overall"]
    for rate in ("precision", "recall", "f1", "selection_rate", "false_positive_rate"):
        interval = overall["intervals"][rate]
        assert interval["low"] <= overall[rate] <= interval["high"], rate


def test_slice_report_bootstrap_0_gives_no_intervals(
    runner: CliRunner, small_settings: Settings
) -> None:
    args = ("slice-report", "-f", "sex", "--format", "json", "--bootstrap", "0")
    result = run(runner, small_settings, *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bootstrap"] == 0
    assert report["overall"]["intervals"] == {}


def test_slice_report_by_crosses_features(runner: CliRunner, small_settings: Settings) -> None:
    args = ("slice-report", "--by", "sex, race", "--by", "age", "--format", "json")
    result = run(runner, small_settings, *args, "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    features = {s["feature"] for s in json.loads(result.stdout)["slices"]}
    assert features == {"sex & race", "age"}


def test_slice_report_table_has_the_fairness_summary(
    runner: CliRunner, small_settings: Settings
) -> None:
    result = run(runner, small_settings, "slice-report", "-f", "sex", "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    assert "Fairness between groups" in result.stdout
    assert "parity ratio" in result.stdout


LENIENT_FAIRNESS = {
    "CENSUS_FAIRNESS__MAX_DEMOGRAPHIC_PARITY_DIFFERENCE": "1",
    "CENSUS_FAIRNESS__MIN_DEMOGRAPHIC_PARITY_RATIO": "0",
    "CENSUS_FAIRNESS__MAX_EQUALIZED_ODDS_DIFFERENCE": "1",
    "CENSUS_FAIRNESS__MAX_FALSE_POSITIVE_RATE_GAP": "1",
    "CENSUS_FAIRNESS__MAX_FALSE_NEGATIVE_RATE_GAP": "1",
}


def test_fail_on_breach_gates_on_the_fairness_limits(
    runner: CliRunner, small_settings: Settings
) -> None:
    args = ("slice-report", "-f", "sex", "--format", "csv", "--fail-on-breach")
    strict = run(runner, small_settings, *args, env={"CENSUS_SLICES__BOOTSTRAP": "100"})
    lenient = run(runner, small_settings, *args, env=LENIENT_FAIRNESS)
    assert strict.exit_code == ExitCode.GATE_FAILED, strict.output
    assert "sex: demographic_parity_ratio" in strict.stderr
    assert "[fairness]" in strict.stderr
    assert lenient.exit_code == 0, lenient.output


def test_breaches_fail_only_when_asked(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "slice-report", "-f", "sex", "--format", "csv")
    assert result.exit_code == 0, result.output


def test_predict_csv_keeps_ids_order_and_duplicates(
    runner: CliRunner, small_settings: Settings
) -> None:
    rows = [{"id": f"00{i}", **EXAMPLE_ROW, "age": 20 + i} for i in range(3)]
    rows.append(rows[0])
    result = run(runner, small_settings, "predict", stdin=rows_csv(rows))
    assert result.exit_code == 0, result.output
    out = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in out] == ["000", "001", "002", "000"]
    assert out[0]["probability"] == out[3]["probability"]
    assert {r["prediction"] for r in out} <= {">50K", "<=50K"}


def test_predict_json_array_gives_json(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "predict", stdin=json.dumps([EXAMPLE_ROW, EXAMPLE_ROW]))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out) == 2
    assert 0 <= out[0]["probability"] <= 1


def test_predict_inputs_object(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "predict", stdin=json.dumps({"inputs": [EXAMPLE_ROW]}))
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 1


def test_predict_json_lines_gives_json_lines(runner: CliRunner, small_settings: Settings) -> None:
    text = "\n".join(json.dumps({**EXAMPLE_ROW, "id": i}) for i in range(3)) + "\n"
    result = run(runner, small_settings, "predict", stdin=text)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [0, 1, 2]


def test_predict_output_format_can_differ(runner: CliRunner, small_settings: Settings) -> None:
    result = run(
        runner, small_settings, "predict", "--output-format", "csv", stdin=json.dumps([EXAMPLE_ROW])
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith("prediction,probability")


def test_predict_threshold_override(runner: CliRunner, small_settings: Settings) -> None:
    result = run(
        runner, small_settings, "predict", "--threshold", "0", stdin=json.dumps([EXAMPLE_ROW])
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["prediction"] == ">50K"


def test_predict_bad_row_names_row_and_field(runner: CliRunner, small_settings: Settings) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "hours-per-week": 500}]
    result = run(runner, small_settings, "predict", stdin=json.dumps(rows))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert (
        "row 2, field 'hours_per_week': got 500; expected a whole number from 0 to 168"
        in result.stderr
    )


@pytest.mark.parametrize("value", ["[/]", "[red]x", "[bold]"])
def test_predict_quotes_a_bad_value_as_given(
    runner: CliRunner, small_settings: Settings, value: str
) -> None:
    """The message quotes the value; text that looks like rich markup is printed as is."""
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": value}]
    result = run(runner, small_settings, "predict", stdin=json.dumps(rows))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"row 2, field 'age': got {value!r};" in result.stderr


def test_predict_failure_leaves_output_untouched(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    rows = [EXAMPLE_ROW] * 3 + [{**EXAMPLE_ROW, "age": "old"}]
    result = run(
        runner,
        small_settings,
        "predict",
        "--chunk-size",
        "2",
        "-o",
        str(out),
        stdin=json.dumps(rows),
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert out.read_text() == "previous\n"
    assert list(tmp_path.iterdir()) == [out]


def test_predict_skip_scores_good_rows_and_lists_bad(
    runner: CliRunner, small_settings: Settings
) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": -3}, EXAMPLE_ROW]
    result = run(runner, small_settings, "predict", "--on-error", "skip", stdin=json.dumps(rows))
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 2
    assert "row 2, field 'age'" in result.stderr


def test_predict_skip_lists_each_bad_row_on_one_line(
    runner: CliRunner, small_settings: Settings
) -> None:
    rows = [{**EXAMPLE_ROW, "hours-per-week": 500}, EXAMPLE_ROW]
    result = run(runner, small_settings, "predict", "--on-error", "skip", stdin=json.dumps(rows))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Skipped row 1, field 'hours_per_week': got 500; expected a whole number from 0 to 168"
    ], result.stderr


def test_predict_keeps_other_columns_that_differ_only_in_spelling(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(rows_csv([{"Customer ID": 1, **EXAMPLE_ROW, "customer_id": 2}]))
    result = run(runner, small_settings, "predict", "-i", str(source))
    assert result.exit_code == 0, result.output
    header, row = (line.split(",") for line in result.stdout.splitlines())
    assert [(header[i], row[i]) for i in (0, 15)] == [("Customer ID", "1"), ("customer_id", "2")]


def test_predict_warns_of_values_the_model_never_saw(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    rows = [{**EXAMPLE_ROW, "race": "Martian"}] * 2 + [{**EXAMPLE_ROW, "sex": "male"}]
    source.write_text(rows_csv(rows))
    result = run(runner, small_settings, "predict", "-i", str(source))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 4
    assert result.stderr == (
        "Warning: values the model never saw, scored as missing: race 'Martian' (2 rows); "
        "sex 'male' (1 row).\n"
    )


def test_predict_from_file_to_file(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    source, out = tmp_path / "rows.csv", tmp_path / "out.jsonl"
    source.write_text(rows_csv([EXAMPLE_ROW] * 5))
    result = run(
        runner,
        small_settings,
        "predict",
        "-i",
        str(source),
        "-o",
        str(out),
        "--output-format",
        "jsonl",
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.parametrize(
    ("given", "suffix"), [("csv", "parquet"), ("csv", "jsonl"), ("csv", "json"), ("json", "csv")]
)
def test_predict_writes_the_format_the_output_file_names(
    runner: CliRunner, small_settings: Settings, tmp_path: Path, given: str, suffix: str
) -> None:
    rows = [{**EXAMPLE_ROW, "id": i} for i in range(3)]
    source, out = tmp_path / f"rows.{given}", tmp_path / f"out.{suffix}"
    source.write_text(rows_csv(rows) if given == "csv" else json.dumps(rows))
    result = run(runner, small_settings, "predict", "-i", str(source), "-o", str(out))
    assert result.exit_code == 0, result.output
    readers = {
        "parquet": lambda: pd.read_parquet(out),
        "jsonl": lambda: pd.read_json(out, lines=True),
        "json": lambda: pd.read_json(out),
        "csv": lambda: pd.read_csv(out),
    }
    frame = readers[suffix]()
    assert [str(v) for v in frame["id"]] == ["0", "1", "2"]  # (CSV's ids are text)
    assert "probability" in frame.columns


def test_predict_output_format_wins_over_the_output_suffix(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    source, out = tmp_path / "rows.json", tmp_path / "out.parquet"
    source.write_text(json.dumps([EXAMPLE_ROW] * 2))
    args = ["-i", str(source), "-o", str(out), "--output-format", "csv"]
    result = run(runner, small_settings, "predict", *args)
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0].endswith("prediction,probability")


def test_predict_reads_a_jsonl_file_line_by_line_whatever_its_first_line(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text(f"[1, 2]\n{json.dumps(EXAMPLE_ROW)}\n")
    result = run(runner, small_settings, "predict", "-i", str(source))
    assert result.exit_code == 2
    assert "line 1: got an array; expected an object of census fields." in result.stderr


def test_predict_missing_input_file_is_exit_2(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    result = run(runner, small_settings, "predict", "-i", str(tmp_path / "none.csv"))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "none.csv" in result.stderr


def test_predict_empty_input_is_exit_2(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "predict", stdin="")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "empty" in result.stderr


def test_runs_lists_the_history(runner: CliRunner, small_settings: Settings) -> None:
    result = run(runner, small_settings, "runs", "--json")
    assert result.exit_code == 0, result.output
    (only,) = json.loads(result.stdout)  # the session's project was trained once
    assert only["version"] == (small_settings.artifacts_dir / "LATEST").read_text().strip()


def test_log_file_keeps_a_log(runner: CliRunner, small_settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "census.log"
    result = runner.invoke(
        app, ["--config", str(small_settings.source), "--log-file", str(log), "runs"]
    )
    assert result.exit_code == 0, result.output
    assert log.is_file()


def test_a_log_file_that_is_a_folder_is_one_line_and_exit_2(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["--config", str(small_settings.source), "--log-file", str(tmp_path), "runs"]
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"Cannot write the log to {tmp_path}: Is a directory" in result.stderr


@pytest.mark.slow  # starts a process
def test_real_process_predicts_the_readme_example() -> None:
    census = census_executable()
    with (ROOT / "examples" / "rows.json").open() as rows:
        done = subprocess.run(
            [str(census), "predict"],
            stdin=rows,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == len(
        json.loads((ROOT / "examples" / "rows.json").read_text())
    )


@pytest.mark.slow  # starts a process
def test_real_process_reports_errors_without_traceback(tmp_path: Path) -> None:
    census = census_executable()
    done = subprocess.run(
        [str(census), "predict"], input="[{]", capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert "Invalid JSON" in done.stderr


@pytest.mark.slow  # starts a process
def test_real_process_stops_quietly_when_the_reader_goes_away(census_csv: Path) -> None:
    census = census_executable()
    line = f"{census} predict --chunk-size 1000 -i {census_csv} | head -n 2"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 2


def test_predict_input_that_is_not_utf8_is_exit_2(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    source.write_bytes(b"age,workclass\n\xff\xfe,\xff\n")
    result = run(runner, small_settings, "predict", "-i", str(source))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "not UTF-8" in result.stderr


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, dict]]:
    """Record what `census serve` hands to uvicorn instead of serving."""
    import census_salary.server

    calls: list[tuple[object, dict]] = []
    monkeypatch.setattr(
        census_salary.server.uvicorn, "run", lambda app, **kw: calls.append((app, kw))
    )
    # run_server installs a SIGTERM handler for the real server; pytest keeps its own.
    monkeypatch.setattr(census_salary.server.signal, "signal", lambda *args: None)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    # run_server exports these for worker processes; setting them here makes the
    # monkeypatch put the environment back as it was afterwards.
    monkeypatch.setenv("CENSUS_CONFIG", "")
    monkeypatch.setenv("CENSUS_LOG_LEVEL", "")
    monkeypatch.setenv("CENSUS_LOG_FILE", "")
    return calls


def test_serve_takes_host_and_port_options(
    runner: CliRunner, small_settings: Settings, uvicorn_calls: list[tuple[object, dict]]
) -> None:
    result = run(runner, small_settings, "serve", "--host", "0.0.0.0", "--port", "9999")
    assert result.exit_code == 0, result.output
    ((app_, options),) = uvicorn_calls
    assert (options["host"], options["port"]) == ("0.0.0.0", 9999)
    assert hasattr(app_, "openapi")


def test_serve_pauses_the_collector_until_the_server_settles(
    runner: CliRunner, small_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paused while the server starts (settle turns it on once the model is loaded), and on
    again when the server stops without settling (here: uvicorn serves nothing)."""
    import gc

    import census_salary.server

    while_starting: list[bool] = []
    monkeypatch.setattr(
        census_salary.server.uvicorn, "run", lambda app, **kw: while_starting.append(gc.isenabled())
    )
    monkeypatch.setattr(census_salary.server.signal, "signal", lambda *args: None)
    result = run(runner, small_settings, "serve", "--port", "9999")
    assert result.exit_code == 0, result.output
    assert while_starting == [False]
    assert gc.isenabled()


def test_serve_port_and_workers_come_from_the_environment(
    runner: CliRunner,
    small_settings: Settings,
    uvicorn_calls: list[tuple[object, dict]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "5123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    result = run(runner, small_settings, "serve")
    assert result.exit_code == 0, result.output
    ((factory, options),) = uvicorn_calls
    assert options["port"] == 5123
    assert options["workers"] == 3
    assert factory == "census_salary.server:create_app_from_environment"
    assert os.environ["CENSUS_CONFIG"] == str(small_settings.source)


def test_serve_defaults_come_from_census_toml(
    runner: CliRunner, small_settings: Settings, uvicorn_calls: list[tuple[object, dict]]
) -> None:
    result = run(runner, small_settings, "serve")
    assert result.exit_code == 0, result.output
    ((_, options),) = uvicorn_calls
    assert (options["host"], options["port"]) == (
        small_settings.serve.host,
        small_settings.serve.port,
    )


def test_predict_refuses_to_overwrite_the_callers_prediction_column(
    runner: CliRunner, small_settings: Settings
) -> None:
    result = run(
        runner, small_settings, "predict", stdin=json.dumps([{**EXAMPLE_ROW, "prediction": "x"}])
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "prediction" in result.stderr


def test_json_rows_with_new_fields_later_cannot_shift_csv_columns(
    runner: CliRunner, small_settings: Settings
) -> None:
    rows = [{**EXAMPLE_ROW, "id": 1}, {**EXAMPLE_ROW, "id": 2, "note": "x"}]
    args = ["predict", "--chunk-size", "1", "--output-format", "csv"]
    result = run(runner, small_settings, *args, stdin=json.dumps(rows))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "note" in result.stderr


def test_json_rows_with_fewer_fields_later_keep_csv_columns(
    runner: CliRunner, small_settings: Settings
) -> None:
    rows = [{**EXAMPLE_ROW, "id": 1, "note": "x"}, {**EXAMPLE_ROW, "id": 2}]
    args = ["predict", "--chunk-size", "1", "--output-format", "csv"]
    result = run(runner, small_settings, *args, stdin=json.dumps(rows))
    assert result.exit_code == 0, result.output
    out = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["id"], r["note"]) for r in out] == [("1", "x"), ("2", "")]


def test_csv_row_with_too_many_fields_is_exit_2(
    runner: CliRunner, small_settings: Settings
) -> None:
    text = rows_csv([EXAMPLE_ROW] * 3) + ",".join(["1"] * 20) + "\n"
    result = run(runner, small_settings, "predict", "--chunk-size", "2", stdin=text)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Line 5 has 20 fields; the header names 14." in result.stderr


def short_csv_file(tmp_path: Path) -> Path:
    """Rows whose fourth lacks its last field, a category: read padded, it would be scored
    with the country missing."""
    short = ",".join(str(value) for value in list(EXAMPLE_ROW.values())[:-1])
    path = tmp_path / "rows.csv"
    good = rows_csv([EXAMPLE_ROW]).splitlines()[1]
    path.write_text(rows_csv([EXAMPLE_ROW] * 3) + f"{short}\n{good}\n")
    return path


SHORT_ROW_MESSAGE = (
    "Line 5 has 13 fields; the header names 14. Give every row a value for each column "
    "(empty is allowed; quote a value that holds a comma)."
)


def test_predict_refuses_a_short_csv_row_naming_its_line(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    args = ["predict", "--input", str(short_csv_file(tmp_path)), "--output", str(out)]
    result = run(runner, small_settings, *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert SHORT_ROW_MESSAGE in " ".join(result.stderr.split()), result.stderr
    assert not out.exists()


def test_predict_skip_still_stops_at_a_short_csv_row(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    """A CSV row of the wrong width is an error of the file's structure, as a row too long
    is: skipping it would guess where its fields belong."""
    args = ["predict", "--on-error", "skip", "--input", str(short_csv_file(tmp_path))]
    result = run(runner, small_settings, *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert SHORT_ROW_MESSAGE in " ".join(result.stderr.split()), result.stderr


@pytest.mark.parametrize(
    "text", ["[" * 100_000, '[{"age": ' + "9" * 5000 + "}]", '{"age": ' + "9" * 5000 + "}\n"]
)
def test_json_beyond_pythons_limits_is_exit_2(
    runner: CliRunner, small_settings: Settings, text: str
) -> None:
    result = run(runner, small_settings, "predict", stdin=text)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("variable", "value"), [("PORT", "abc"), ("PORT", "70000"), ("WEB_CONCURRENCY", "two")]
)
def test_serve_refuses_bad_environment(
    runner: CliRunner,
    small_settings: Settings,
    uvicorn_calls: list[tuple[object, dict]],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    result = run(runner, small_settings, "serve")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"${variable}" in result.stderr
    assert uvicorn_calls == []


@pytest.mark.parametrize("option", [["--port", "70000"], ["--workers", "0"], ["--workers", "1025"]])
def test_serve_refuses_bad_options(
    runner: CliRunner,
    small_settings: Settings,
    uvicorn_calls: list[tuple[object, dict]],
    option: list[str],
) -> None:
    result = run(runner, small_settings, "serve", *option)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert uvicorn_calls == []


def test_serve_workers_keep_the_log_file(
    runner: CliRunner,
    small_settings: Settings,
    uvicorn_calls: list[tuple[object, dict]],
    tmp_path: Path,
) -> None:
    log = tmp_path / "serve.log"
    args = [
        "--config",
        str(small_settings.source),
        "--log-file",
        str(log),
        "serve",
        "--workers",
        "2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert os.environ["CENSUS_LOG_FILE"] == str(log)
    assert os.environ["CENSUS_LOG_LEVEL"] == "INFO"


def test_serve_workers_share_a_metrics_folder_only_while_they_run(
    runner: CliRunner,
    small_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import census_salary.server

    seen: list[bool] = []
    monkeypatch.setattr(
        census_salary.server.uvicorn,
        "run",
        lambda app, **kw: seen.append(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).is_dir()),
    )
    monkeypatch.setattr(census_salary.server.signal, "signal", lambda *args: None)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    for name in ("CENSUS_CONFIG", "CENSUS_LOG_LEVEL"):  # put back by the monkeypatch
        monkeypatch.setenv(name, "")
    args = ["--config", str(small_settings.source), "serve", "--workers", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [True]
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # later servers would find it gone


# --- one scorer behind every door --------------------------------------------------------

SCORER_TYPES = {"trees": TreeTables, "pipeline": PipelineScorer}


@pytest.fixture(scope="module")
def published_rows(sample_frame: pd.DataFrame) -> list[dict[str, str]]:
    """400 rows of the real file as published (spaces, `?` and all), without the label,
    and two with categories the model never saw (scored as missing)."""
    features = sample_frame.drop(
        columns=[c for c in sample_frame.columns if canonical_name(c) == TARGET]
    )
    rows = features.head(400).to_dict("records")
    country = next(c for c in features.columns if canonical_name(c) == "native_country")
    sex = next(c for c in features.columns if canonical_name(c) == "sex")
    return [*rows, {**rows[0], country: "Atlantis"}, {**rows[1], sex: "MALE"}]


@pytest.fixture(scope="module", params=sorted(SCORER_TYPES))
def api_answer(
    request: pytest.FixtureRequest, small_settings: Settings, published_rows: list[dict[str, str]]
) -> tuple[str, dict]:
    """The scorer setting, and what POST /predict answers for the rows with it."""
    scorer = request.param
    settings = load_settings(small_settings.source, environ={"CENSUS_MODEL__SCORER": scorer})
    with TestClient(create_app(settings)) as client:
        assert isinstance(client.app.state.bundle.scorer, SCORER_TYPES[scorer])
        response = client.post("/predict", json={"inputs": published_rows})
    assert response.status_code == 200, response.text
    return scorer, response.json()


def as_input(rows: list[dict[str, str]], fmt: str) -> str:
    if fmt == "csv":
        return rows_csv(rows)
    if fmt == "json":
        return json.dumps(rows)
    return "".join(json.dumps(row) + "\n" for row in rows)


def output_records(text: str, fmt: str) -> list[dict]:
    if fmt == "csv":
        return [
            {**r, "probability": float(r["probability"])} for r in csv.DictReader(io.StringIO(text))
        ]
    if fmt == "json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_predict_gives_the_apis_probabilities_to_the_last_bit(
    runner: CliRunner,
    small_settings: Settings,
    published_rows: list[dict[str, str]],
    api_answer: tuple[str, dict],
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    scorer, api = api_answer
    loaded: list[Bundle] = []
    load_bundle = census_salary.bundle.load_bundle

    def spy(*args: object, **kwargs: object) -> Bundle:
        loaded.append(load_bundle(*args, **kwargs))  # type: ignore[arg-type]
        return loaded[-1]

    monkeypatch.setattr(census_salary.bundle, "load_bundle", spy)
    result = run(
        runner,
        small_settings,
        "predict",
        stdin=as_input(published_rows, fmt),
        env={"CENSUS_MODEL__SCORER": scorer},
    )

    assert result.exit_code == 0, result.output
    assert [type(bundle.scorer) for bundle in loaded] == [SCORER_TYPES[scorer]]
    records = output_records(result.stdout, fmt)
    assert [r["probability"] for r in records] == api["probabilities"]
    assert [r["prediction"] for r in records] == api["predictions"]


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_the_scorer_variable_of_serve_says_it_moved_to_model(
    runner: CliRunner,
    small_settings: Settings,
    uvicorn_calls: list[tuple[object, dict]],
    command: str,
) -> None:
    result = run(
        runner,
        small_settings,
        command,
        stdin=json.dumps([EXAMPLE_ROW]),
        env={"CENSUS_SERVE__SCORER": "pipeline"},
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "CENSUS_SERVE__SCORER" in result.stderr
    assert "moved to [model] scorer" in result.stderr
    assert "CENSUS_MODEL__SCORER" in result.stderr
    assert result.stdout == ""
    assert uvicorn_calls == []


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_a_bad_first_chunk_leaves_stdout_empty(
    runner: CliRunner, small_settings: Settings, fmt: str
) -> None:
    rows = [{**EXAMPLE_ROW, "age": "old"}, EXAMPLE_ROW]
    result = run(runner, small_settings, "predict", "--output-format", fmt, stdin=json.dumps(rows))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.stdout == ""
    assert "row 1, field 'age'" in result.stderr


def test_a_later_bad_chunk_says_how_many_rows_went_out(
    runner: CliRunner, small_settings: Settings
) -> None:
    rows = [EXAMPLE_ROW, EXAMPLE_ROW, {**EXAMPLE_ROW, "age": "old"}]
    result = run(runner, small_settings, "predict", "--chunk-size", "2", stdin=json.dumps(rows))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.stdout.count('"prediction"') == 2
    assert "2 row(s) were written to standard output before this" in result.stderr


@pytest.mark.parametrize(
    "command",
    [["train"], ["evaluate"], ["slice-report"], ["evaluate", "--data", "{data}"]],
    ids=["train", "evaluate", "slice-report", "evaluate-data"],
)
def test_missing_data_is_exit_4_and_points_to_the_data_readme_from_every_command(
    runner: CliRunner, project_copy: Settings, command: list[str]
) -> None:
    project_copy.data_path.unlink()
    args = [arg.format(data=project_copy.data_path) for arg in command]

    result = run(runner, project_copy, *args)

    assert result.exit_code == ExitCode.DATA_UNAVAILABLE, result.output
    assert str(project_copy.data_path) in result.stderr, result.stderr
    assert "see data/README.md" in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_a_server_that_fails_to_start_is_exit_1_not_the_no_model_code(
    runner: CliRunner, small_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn exits 3 when an app does not start, which would read as "no model" here."""
    import signal
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    import census_salary.api

    @asynccontextmanager
    async def failing(app: FastAPI):  # a bug in the lifespan
        raise RuntimeError("broken at startup")
        yield

    monkeypatch.setattr(
        census_salary.api, "create_app", lambda settings, **_: FastAPI(lifespan=failing)
    )
    handler = signal.getsignal(signal.SIGTERM)
    try:
        result = run(runner, small_settings, "serve", "--port", "0")
    finally:
        signal.signal(signal.SIGTERM, handler)  # serve installs its own

    assert result.exit_code == ExitCode.INTERNAL, result.output
    assert "did not start" in result.stderr, result.stderr


def _copy_current_bundle(settings: Settings, version: str) -> Path:
    """The current bundle copied under another version name: a kept bundle that loads."""
    from bundle_edits import copy_bundle
    from census_salary.bundle import current_bundle_dir

    return copy_bundle(current_bundle_dir(settings.artifacts_dir), settings.artifacts_dir / version)


def test_use_is_a_command_with_help(runner: CliRunner) -> None:
    result = runner.invoke(app, ["use", "--help"])
    assert result.exit_code == 0, result.output
    assert "VERSION" in result.output


def test_use_makes_a_kept_version_current(runner: CliRunner, project_copy: Settings) -> None:
    _copy_current_bundle(project_copy, "20200101T000000Z-aaaaaaaa")
    result = run(runner, project_copy, "use", "20200101T000000Z-aaaaaaaa")
    assert result.exit_code == 0, result.output
    assert "20200101T000000Z-aaaaaaaa is now the current model" in result.stdout
    assert "`census serve` loads it when it restarts" in result.stdout
    pointer = (project_copy.artifacts_dir / "LATEST").read_text()
    assert pointer == "20200101T000000Z-aaaaaaaa\n"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("nope", "No kept model version 'nope'"),
        ("2020", "'2020' is the start of 2 kept versions"),
        ("20200101T000000Z-bbbbbbbb", "was not made current: .*does not match the SHA-256"),
    ],
)
def test_use_refuses_unknown_ambiguous_and_broken_versions_with_exit_3(
    runner: CliRunner, project_copy: Settings, given: str, says: str
) -> None:
    import re

    _copy_current_bundle(project_copy, "20200101T000000Z-aaaaaaaa")
    broken = _copy_current_bundle(project_copy, "20200101T000000Z-bbbbbbbb") / "model.skops"
    broken.write_bytes(broken.read_bytes()[:-1])
    pointer = (project_copy.artifacts_dir / "LATEST").read_bytes()
    result = run(runner, project_copy, "use", given)
    assert result.exit_code == ExitCode.MODEL, result.output
    assert re.search(says, result.stderr), result.stderr
    assert result.stderr.count("\n") == 1
    assert (project_copy.artifacts_dir / "LATEST").read_bytes() == pointer


def test_runs_marks_the_current_and_the_kept_bundles(
    runner: CliRunner, project_copy: Settings
) -> None:
    runs = project_copy.artifacts_dir / "runs.jsonl"
    current = json.loads(runs.read_text())
    gone = {**current, "version": "20200101T000000Z-0000000a"}
    runs.write_text(json.dumps(gone) + "\n" + json.dumps(current) + "\n")
    listed = json.loads(run(runner, project_copy, "runs", "--json").stdout)
    assert [(r["version"], r["kept"], r["current"]) for r in listed] == [
        (gone["version"], False, False),
        (current["version"], True, True),
    ]
    table = run(runner, project_copy, "runs")
    assert table.exit_code == 0, table.output
    assert "20200101T000000Z  removed" in table.stdout
    assert f"{current['version'][:16]}  current" in table.stdout


def test_train_on_a_full_disk_is_one_line_and_exit_3(
    runner: CliRunner, quick_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(census_salary.artifacts, "_write_file", disk_full)
    before = sorted(path.name for path in quick_copy.artifacts_dir.iterdir())
    result = run(runner, quick_copy, "train")
    assert result.exit_code == ExitCode.MODEL, result.output
    assert "Cannot write to" in result.stderr
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.output
    assert sorted(path.name for path in quick_copy.artifacts_dir.iterdir()) == before
    assert run(runner, quick_copy, "evaluate", "--json").exit_code == 0


def test_a_port_taken_while_the_model_loads_is_still_the_listen_exit_code(
    runner: CliRunner, small_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port is checked before the model loads; one taken during the load (a race) is
    reported the same way, not as uvicorn's exit 3."""
    import signal
    import socket
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    import census_salary.api
    from live_server import free_port

    port = free_port()
    holder = socket.socket()

    @asynccontextmanager
    async def another_server_takes_the_port(app: FastAPI):
        holder.bind(("127.0.0.1", port))
        holder.listen()
        yield

    monkeypatch.setattr(
        census_salary.api,
        "create_app",
        lambda settings, **_: FastAPI(lifespan=another_server_takes_the_port),
    )
    handler = signal.getsignal(signal.SIGTERM)
    with holder:
        try:
            result = run(runner, small_settings, "serve", "--port", str(port))
        finally:
            signal.signal(signal.SIGTERM, handler)  # serve installs its own

    assert result.exit_code == ExitCode.CANNOT_LISTEN, result.output
    assert f"Cannot listen on 127.0.0.1:{port}: the port is already in use" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--engine", "dask", "--input", "rows.csv"],
        ["--engine", "spark", "--input", "rows.csv", "--output", "out", "--explain"],
        ["--engine", "dask", "--input", "rows.csv", "--output", "out", "--output-format", "json"],
    ],
)
def test_predict_engine_refuses_what_it_cannot_do(
    runner: CliRunner, small_settings: Settings, args: list[str]
) -> None:
    result = run(runner, small_settings, "predict", *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--engine" in result.output, result.output


@pytest.mark.slow
def test_predict_engine_writes_parts_and_lists_skipped_rows_by_file(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    pytest.importorskip("distributed", reason='an extra: pip install -e ".[dev,dask]"')
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": -1}]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(rows_csv(rows))
    result = run(
        runner,
        small_settings,
        *("predict", "--engine", "dask", "--on-error", "skip"),
        *("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")),
    )
    assert result.exit_code == 0, result.output
    file = (tmp_path / "in" / "a.csv").resolve()
    assert f"Skipped {file}: row 2, field 'age'" in result.output, result.output
    assert len(pd.read_parquet(tmp_path / "out" / "part-00000.parquet")) == 1


@pytest.mark.slow
def test_predict_engine_unreachable_is_one_clear_line(
    runner: CliRunner, small_settings: Settings, tmp_path: Path
) -> None:
    pytest.importorskip("distributed", reason='an extra: pip install -e ".[dev,dask]"')
    (tmp_path / "a.csv").write_text(rows_csv([EXAMPLE_ROW]))
    result = run(
        runner,
        small_settings,
        *("predict", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9"),
        *("--input", str(tmp_path / "a.csv"), "--output", str(tmp_path / "out")),
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Dask could not reach the scheduler tcp://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow  # starts processes
def test_sigterm_ends_census_train_as_ctrl_c_does_helpers_and_all(project_copy: Settings) -> None:
    # A helper, and fits of 100,000 iterations: still fitting when it is stopped.
    slow = server_environment(
        {
            "CENSUS_TRAIN__PROCESSES": "2",
            "CENSUS_MODEL__PARAMS__HIST_GRADIENT_BOOSTING__MAX_ITER": "100000",
        }
    )
    command = [str(census_executable()), "--config", str(project_copy.source), "train"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=slow)
    try:
        deadline = time.monotonic() + 120
        while not (children := _children(process.pid)):
            assert time.monotonic() < deadline, "no helper process started"
            time.sleep(0.05)
        time.sleep(5)  # (imports done, fitting)
        assert process.poll() is None, "training ended before it was stopped"
        process.terminate()
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        process.kill()  # (if it is still there, so that the test ends)
        process.wait()
    deadline = time.monotonic() + 10  # (its helpers, and their trackers, end with it)
    while left := [pid for pid in children if process_running(pid)]:
        assert time.monotonic() < deadline, f"processes {left} outlived census train"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    """The processes `pid` started (its helpers), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found
