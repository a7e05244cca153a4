"""Parquet in and out of `census predict` (census_salary.parquet_rows, writers)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from census_salary.bundle import Bundle
from census_salary.cli import app
from census_salary.config import Settings
from census_salary.contract import COLUMNS, EXAMPLE_ROW, NUMERICAL, canonical_name
from census_salary.errors import InputError
from census_salary.predict import predict_file, score_rows
from census_salary.rows import read_rows
from census_salary.writers import write_predictions
from live_server import server_environment


def typed_frame(census_csv: Path, n: int) -> pd.DataFrame:
    """The first `n` rows of the data with typed columns: whole numbers, text (`?` kept)."""
    frame = pd.read_csv(
        census_csv, dtype=str, keep_default_na=False, skipinitialspace=True, nrows=n
    )
    frame = frame.drop(columns="salary")
    for name in frame.columns:
        if canonical_name(name) in NUMERICAL:
            frame[name] = frame[name].astype("int64")
    return frame


def parquet_bytes(table: pa.Table | pd.DataFrame, row_group_size: int | None = None) -> bytes:
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=row_group_size)
    return out.getvalue()


def example_table(**columns: pa.Array) -> pa.Table:
    """Two rows of the example, with some columns replaced."""
    arrays = {
        name: pa.array([value] * 2, pa.int64() if isinstance(value, int) else pa.string())
        for name, value in EXAMPLE_ROW.items()
    }
    return pa.table({**arrays, **columns})


def checked(bundle: Bundle, data: bytes | str, fmt: str) -> list[str]:
    """The problems --on-error skip lists for the input."""
    source = io.BytesIO(data.encode() if isinstance(data, str) else data)
    _, chunks = read_rows(source, fmt, 1000)  # type: ignore[arg-type]
    stream = score_rows(bundle, chunks, skip_bad=True)
    list(stream.chunks)
    return [str(problem) for problem in stream.problems]


def as_csv(table: pa.Table) -> str:
    names = table.column_names
    lines = [",".join(names)]
    for row in table.to_pylist():
        lines.append(",".join("" if row[n] is None else str(row[n]) for n in names))
    return "\n".join(lines) + "\n"


def test_parquet_is_detected_by_its_first_bytes() -> None:
    fmt, _ = read_rows(io.BytesIO(parquet_bytes(example_table())), None, 10)
    assert fmt == "parquet"


def test_many_row_groups_are_read_in_chunks(census_csv: Path) -> None:
    data = parquet_bytes(typed_frame(census_csv, 1000), row_group_size=64)
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 16
    _, chunks = read_rows(io.BytesIO(data), None, 300)
    assert [len(chunk) for chunk in chunks] == [300, 300, 300, 100]


class Pipe(io.RawIOBase):
    """A byte stream that cannot seek, as standard input from a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._data.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def test_parquet_from_a_pipe_gives_the_same_rows(census_csv: Path) -> None:
    data = parquet_bytes(typed_frame(census_csv, 500), row_group_size=100)
    _, piped = read_rows(io.BufferedReader(Pipe(data)), None, 200)
    _, seekable = read_rows(io.BytesIO(data), None, 200)
    assert [c.table for c in piped] == [c.table for c in seekable]


def float_bits(values: list[float] | np.ndarray) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


def test_csv_and_parquet_in_and_out_give_the_same_bits(
    small_bundle: Bundle, census_csv: Path, tmp_path: Path
) -> None:
    lines = census_csv.read_text(encoding="utf-8").splitlines(keepends=True)[:2501]
    inputs = {"csv": tmp_path / "rows.csv", "parquet": tmp_path / "rows.parquet"}
    inputs["csv"].write_text("".join(lines), encoding="utf-8")
    inputs["parquet"].write_bytes(parquet_bytes(typed_frame(census_csv, 2500), 400))
    results = {}
    for in_fmt, source in inputs.items():
        for out_fmt in ("csv", "parquet"):
            target = tmp_path / f"{in_fmt}-to.{out_fmt}"
            fmt: Any = out_fmt
            predict_file(small_bundle, source, target, output_format=fmt, chunk_size=700)
            if out_fmt == "csv":
                frame = pd.read_csv(target, dtype=str, keep_default_na=False)
                got = (frame["prediction"].tolist(), float_bits(frame["probability"].map(float)))
            else:
                table = pq.read_table(target)
                got = (table["prediction"].to_pylist(), float_bits(table["probability"].to_numpy()))
            results[in_fmt, out_fmt] = got
    today = tmp_path / "today.csv"  # the CSV path as it was: formats detected
    predict_file(small_bundle, inputs["csv"], today)
    frame = pd.read_csv(today, dtype=str, keep_default_na=False)
    expected = (frame["prediction"].tolist(), float_bits(frame["probability"].map(float)))
    assert len(expected[0]) == 2500
    for combination, got in results.items():
        assert got == expected, combination


def test_parquet_output_keeps_the_input_types(small_bundle: Bundle, tmp_path: Path) -> None:
    source = tmp_path / "rows.parquet"
    source.write_bytes(parquet_bytes(example_table(id=pa.array([7, 8], pa.int16()))))
    predict_file(small_bundle, source, tmp_path / "out.parquet")
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert schema.field("age").type == pa.int64()
    assert schema.field("id").type == pa.int16()
    assert schema.field("probability").type == pa.float64()
    assert schema.names[-2:] == ["prediction", "probability"]


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("age", pa.array([39.0, 37.5])),
        ("age", pa.array([39, -1], pa.int32())),
        ("age", pa.array(["39", "37.5"], pa.large_string())),
        ("hours-per-week", pa.array([40, 200], pa.int64())),
        ("workclass", pa.array(["State-gov", "x" * 101]).dictionary_encode()),
    ],
)
def test_typed_values_are_judged_as_the_same_values_in_csv(
    small_bundle: Bundle, column: str, values: pa.Array
) -> None:
    table = example_table(**{column: values})
    from_parquet = checked(small_bundle, parquet_bytes(table), "parquet")
    from_csv = checked(small_bundle, as_csv(table), "csv")
    assert len(from_parquet) == 1, from_parquet
    # The same row, field and expectation; the value quoted as its type (text in CSV).
    assert [p.split(": got")[0] for p in from_parquet] == [p.split(": got")[0] for p in from_csv]
    assert [p.split("; ")[1] for p in from_parquet] == [p.split("; ")[1] for p in from_csv]


def test_a_null_category_is_missing_as_an_empty_csv_field(small_bundle: Bundle) -> None:
    table = example_table(occupation=pa.array([None, "Adm-clerical"]))
    parquet_out = io.BytesIO()
    _, chunks = read_rows(io.BytesIO(parquet_bytes(table)), None, 10)
    write_predictions(score_rows(small_bundle, chunks).chunks, "csv", parquet_out)
    csv_out = io.BytesIO()
    _, chunks = read_rows(io.BytesIO(as_csv(table).encode()), None, 10)
    write_predictions(score_rows(small_bundle, chunks).chunks, "csv", csv_out)
    assert parquet_out.getvalue() == csv_out.getvalue()


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("age", pa.array([39, None]), "row 2, field 'age': got no value"),
        ("workclass", pa.array([1, 2]), "row 1, field 'workclass': got 1; expected text"),
        ("sex", pa.array([True, False]), "row 1, field 'sex': got true; expected text"),
        ("age", pa.array([[39], [40]]), "row 1, field 'age': got [39]; expected a whole"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    small_bundle: Bundle, column: str, values: pa.Array, message: str
) -> None:
    _, chunks = read_rows(io.BytesIO(parquet_bytes(example_table(**{column: values}))), None, 10)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        list(score_rows(small_bundle, chunks).chunks)


def test_string_kinds_give_the_same_checked_columns(small_bundle: Bundle) -> None:
    values = ["Private", None, "?"]
    outputs = set()
    for array in (
        pa.array(values),
        pa.array(values, pa.large_string()),
        pa.array(values).dictionary_encode(),
    ):
        table = pa.concat_tables([example_table().slice(0, 1)] * 3).set_column(
            1, "workclass", array
        )
        _, chunks = read_rows(io.BytesIO(parquet_bytes(table)), None, 10)
        (chunk,) = score_rows(small_bundle, chunks).chunks
        outputs.add(tuple(float_bits(chunk.probabilities)))
    assert len(outputs) == 1


@pytest.mark.parametrize("cut", [10, 100, -20, -4])
def test_a_truncated_parquet_file_is_an_input_error(small_bundle: Bundle, cut: int) -> None:
    data = parquet_bytes(example_table())
    _, chunks = read_rows(io.BytesIO(data[:cut]), "parquet", 10)  # (read when iterated)
    with pytest.raises(InputError, match="The Parquet input cannot be read"):
        list(score_rows(small_bundle, chunks).chunks)


def test_a_file_without_rows_gives_the_columns_only(small_bundle: Bundle) -> None:
    _, chunks = read_rows(io.BytesIO(parquet_bytes(example_table().slice(0, 0))), None, 10)
    out = io.BytesIO()
    assert write_predictions(score_rows(small_bundle, chunks).chunks, "parquet", out) == 0
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.num_rows == 0
    assert table.column_names == [*EXAMPLE_ROW, "prediction", "probability"]


def test_an_empty_input_named_parquet_is_an_input_error() -> None:
    with pytest.raises(InputError, match="The input is empty"):
        read_rows(io.BytesIO(b""), "parquet", 10)


def test_skipped_rows_keep_their_row_numbers(small_bundle: Bundle) -> None:
    ages = pa.array([39, 40, 41, -5, 42], pa.int64())
    table = pa.concat_tables([example_table()] * 3).slice(0, 5).set_column(0, "age", ages)
    _, chunks = read_rows(io.BytesIO(parquet_bytes(table, row_group_size=2)), None, 2)
    stream = score_rows(small_bundle, chunks, skip_bad=True)
    out = io.BytesIO()
    assert write_predictions(stream.chunks, "parquet", out) == 4
    assert [p.row for p in stream.problems] == [4]
    assert pq.read_table(io.BytesIO(out.getvalue()))["age"].to_pylist() == [39, 40, 41, 42]


def test_an_input_with_a_prediction_column_is_refused(small_bundle: Bundle) -> None:
    table = example_table(prediction=pa.array(["x", "y"]))
    _, chunks = read_rows(io.BytesIO(parquet_bytes(table)), None, 10)
    with pytest.raises(InputError, match="already has column"):
        list(score_rows(small_bundle, chunks).chunks)


def test_explained_rows_carry_their_contributions(small_bundle: Bundle) -> None:
    _, chunks = read_rows(io.BytesIO(parquet_bytes(example_table())), None, 10)
    out = io.BytesIO()
    write_predictions(score_rows(small_bundle, chunks, explain=True).chunks, "parquet", out)
    table = pq.read_table(io.BytesIO(out.getvalue()))
    contributions = sum(table[f"contribution_{name}"].to_numpy() for name in COLUMNS)
    log_odds = np.log(table["probability"].to_numpy() / (1 - table["probability"].to_numpy()))
    np.testing.assert_allclose(contributions + table["base_value"].to_numpy(), log_odds)


def test_json_rows_of_mixed_types_cannot_go_into_parquet(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "id": 1}, {**EXAMPLE_ROW, "id": "two"}]
    _, chunks = read_rows(io.BytesIO(pd.Series(rows).to_json(orient="records").encode()), None, 1)
    with pytest.raises(InputError, match="Rows 2 to 2 cannot go into one Parquet table"):
        write_predictions(score_rows(small_bundle, chunks).chunks, "parquet", io.BytesIO())


def test_a_failed_write_leaves_no_footer(small_bundle: Bundle) -> None:
    ages = pa.array([39, 40, -1], pa.int64())
    table = pa.concat_tables([example_table()] * 2).slice(0, 3).set_column(0, "age", ages)
    _, chunks = read_rows(io.BytesIO(parquet_bytes(table)), None, 1)
    out = io.BytesIO()
    with pytest.raises(InputError, match="row 3"):
        write_predictions(score_rows(small_bundle, chunks).chunks, "parquet", out)
    assert out.getvalue().startswith(b"PAR1")
    assert not out.getvalue().endswith(b"PAR1")  # not a file: a reader cannot mistake it


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_parquet_is_not_written_to_a_terminal(
    small_bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "rows.parquet"
    source.write_bytes(parquet_bytes(example_table()))
    monkeypatch.setattr(sys, "stdout", Terminal())
    with pytest.raises(InputError, match="--output FILE"):
        predict_file(small_bundle, source, None)


def test_cli_pipes_parquet_in_and_out(small_settings: Settings) -> None:
    result = CliRunner().invoke(
        app,
        ["--config", str(small_settings.source), "predict", "--output-format", "parquet"],
        input=parquet_bytes(example_table()),
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(io.BytesIO(result.stdout_bytes))
    assert table.num_rows == 2


def test_cli_names_a_corrupt_parquet_file_with_exit_2(
    small_settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "rows.parquet"
    source.write_bytes(parquet_bytes(example_table())[:-30])
    result = CliRunner().invoke(
        app, ["--config", str(small_settings.source), "predict", "-i", str(source)]
    )
    assert result.exit_code == 2, result.output
    assert "The Parquet input cannot be read" in result.output


@pytest.mark.slow  # starts a process
def test_a_process_that_fails_on_parquet_exits_with_2(
    small_settings: Settings, tmp_path: Path
) -> None:
    """A real process: its Parquet reader is closed in order, so the exit is clean."""
    source = tmp_path / "rows.parquet"
    source.write_bytes(parquet_bytes(example_table(prediction=pa.array(["x", "y"]))))
    command = [sys.executable, "-m", "census_salary.cli", "--config", str(small_settings.source)]
    done = subprocess.run(
        [*command, "predict", "-i", str(source), "-o", str(tmp_path / "out.parquet")],
        capture_output=True,
        text=True,
        env=server_environment(),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "already has column(s) prediction" in done.stderr


def test_parquet_rows_go_out_as_json_with_their_types(small_bundle: Bundle) -> None:
    _, chunks = read_rows(io.BytesIO(parquet_bytes(example_table())), None, 10)
    out = io.BytesIO()
    write_predictions(score_rows(small_bundle, chunks).chunks, "jsonl", out)
    first = json.loads(out.getvalue().splitlines()[0])
    assert first["age"] == 39
    assert first["workclass"] == "State-gov"


def test_json_rows_go_out_as_parquet_typed_by_their_values(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "id": f"a-{i}"} for i in range(3)]
    _, chunks = read_rows(io.BytesIO(json.dumps(rows).encode()), None, 2)
    out = io.BytesIO()
    assert write_predictions(score_rows(small_bundle, chunks).chunks, "parquet", out) == 3
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.schema.field("age").type == pa.int64()
    assert table["id"].to_pylist() == ["a-0", "a-1", "a-2"]


def test_parquet_is_not_read_from_text() -> None:
    with pytest.raises(InputError, match="Parquet is binary"):
        read_rows(io.StringIO("PAR1"), "parquet", 10)
