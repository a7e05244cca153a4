"""`census predict` on JSON input (an array, `{"inputs": [...]}`, JSON Lines), through
typer's CliRunner: rows refused while reading, line numbers, and the nesting limit."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from census_salary.cli import app
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW, MAX_NESTING, TooDeepError
from census_salary.errors import ExitCode

GOOD = json.dumps(EXAMPLE_ROW)
TWICE = json.dumps({**EXAMPLE_ROW, "education_num": 13})  # beside "education-num"
OLD = json.dumps({**EXAMPLE_ROW, "age": "old"})
SHAPES = ["json", "inputs", "jsonl"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def predict(runner: CliRunner, settings: Settings, text: str, *args: str):
    command = ["--config", str(settings.source), "predict", *args]
    return runner.invoke(app, command, input=text)


def shaped(shape: str, rows: list[str]) -> str:
    """Rows (JSON texts) as a JSON array, `{"inputs": [...]}` or JSON Lines."""
    if shape == "jsonl":
        return "\n".join(rows) + "\n"
    array = "[" + ", ".join(rows) + "]"
    return array if shape == "json" else '{"inputs": ' + array + "}"


def rows_out(shape: str, stdout: str) -> list[dict]:
    if shape == "jsonl":
        return [json.loads(line) for line in stdout.splitlines()]
    return json.loads(stdout)


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("5", "2: got a number; expected an object of census fields"),
        (TWICE, "2, field 'education_num': the field is given twice"),
    ],
    ids=["not-an-object", "field-twice"],
)
@pytest.mark.parametrize("shape", SHAPES)
def test_skip_leaves_out_a_row_refused_while_reading_and_scores_the_rest(
    runner: CliRunner, small_settings: Settings, shape: str, bad: str, expected: str
) -> None:
    text = shaped(shape, [GOOD, bad, GOOD])
    result = predict(runner, small_settings, text, "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert len(rows_out(shape, result.stdout)) == 2, result.stdout
    unit = "line" if shape == "jsonl" else "row"
    (skipped,) = result.stderr.splitlines()
    assert skipped.startswith(f"Skipped {unit} {expected}"), result.stderr


@pytest.mark.parametrize("shape", SHAPES)
def test_skip_lists_rows_refused_while_reading_among_bad_values_in_order(
    runner: CliRunner, small_settings: Settings, shape: str
) -> None:
    text = shaped(shape, [OLD, "null", GOOD, TWICE, OLD])
    result = predict(runner, small_settings, text, "--on-error", "skip", "--chunk-size", "2")
    assert result.exit_code == 0, result.output
    assert len(rows_out(shape, result.stdout)) == 1, result.stdout
    unit = "line" if shape == "jsonl" else "row"
    skipped = [line.split(",")[0].split(":")[0] for line in result.stderr.splitlines()]
    assert skipped == [f"Skipped {unit} {n}" for n in (1, 2, 4, 5)], result.stderr


def test_a_json_line_that_is_not_an_object_stops_the_run_naming_its_line(
    runner: CliRunner, small_settings: Settings
) -> None:
    result = predict(runner, small_settings, f"{GOOD}\n\n[1, 2]\n{OLD}\n")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert (
        "2 invalid value(s) in standard input: line 3: got an array; expected an object of "
        "census fields; line 4, field 'age': got 'old'"
    ) in result.stderr


def test_a_json_lines_value_error_names_its_line_in_the_file(
    runner: CliRunner, small_settings: Settings
) -> None:
    result = predict(runner, small_settings, f"\n{GOOD}\n\n{OLD}\n")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "in standard input: line 4, field 'age': got 'old'" in result.stderr


def test_a_skipped_json_line_is_named_by_its_line_in_the_file(
    runner: CliRunner, small_settings: Settings
) -> None:
    result = predict(runner, small_settings, f"\n{GOOD}\n\n{OLD}\n", "--on-error", "skip")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Skipped line 4, field 'age': got 'old'"), result.stderr


def nested_row(depth: int) -> str:
    """A row (itself one level) whose `note` takes it `depth` levels deep."""
    return json.dumps({**EXAMPLE_ROW, "note": 0}).replace(
        '"note": 0', '"note": ' + "[" * (depth - 1) + "]" * (depth - 1)
    )


@pytest.mark.parametrize(
    ("shape", "above", "where"),
    [
        ("json", 1, "The JSON input cannot be read as rows in row 2"),
        ("inputs", 2, "The JSON input cannot be read as rows in row 2"),
        ("jsonl", 0, "Line 2 cannot be read as JSON rows"),
    ],
)
def test_json_nested_past_the_limit_is_exit_2_naming_the_limit(
    runner: CliRunner, small_settings: Settings, shape: str, above: int, where: str
) -> None:
    # `above`: the levels around a row (the array, the object around it)
    deepest = predict(runner, small_settings, shaped(shape, [nested_row(MAX_NESTING - above)]))
    assert deepest.exit_code == 0, deepest.output
    text = shaped(shape, [GOOD, nested_row(MAX_NESTING - above + 1)])
    result = predict(runner, small_settings, text, "--on-error", "skip")
    # (not a bad value but input that cannot be read, like a syntax error: skip or not)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"{where}: {TooDeepError()}." in result.stderr, result.stderr
