"""The partition scorer and the driver of `census predict --engine`, run here in-process
(`run_tasks` is what every engine maps); the engines themselves are in tests/engines."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from census_salary.bundle import Bundle, current_bundle_dir
from census_salary.config import Settings
from census_salary.contract import check_columns, columns_of_frame
from census_salary.errors import InputError, ModelError, RowProblem
from census_salary.partition import (
    FileProblem,
    Job,
    input_files,
    predict_files,
    run_tasks,
    score_partition,
)
from census_salary.predict import UnknownValues, predict_file

BAD_AGE = "two hundred"


def _rows(sample_frame: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    """Raw census rows (spaces and `?` as published) with an `id` column of our own."""
    rows = sample_frame.iloc[start:stop].reset_index(drop=True)
    rows.columns = rows.columns.str.strip()
    return rows.drop(columns="salary").assign(id=[f"r{i}" for i in range(start, stop)])


def _write_inputs(folder: Path, frames: list[pd.DataFrame]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part-{i}.csv" for i in range(len(frames))]
    for frame, path in zip(frames, paths, strict=True):
        frame.to_csv(path, index=False)
    return paths


def _bundle_dir(settings: Settings) -> Path:
    return current_bundle_dir(settings.artifacts_dir)


def test_partition_keeps_rows_and_columns_and_adds_the_scores(
    small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    frame = _rows(sample_frame, 0, 500)
    scored, problems = score_partition(small_bundle, frame)
    checked = check_columns(columns_of_frame(frame))
    expected = small_bundle.probabilities(checked.columns)
    assert problems == []
    assert list(scored.columns) == [*frame.columns, "prediction", "probability"]
    pd.testing.assert_frame_equal(scored[frame.columns], frame)
    assert scored["probability"].to_numpy().tobytes() == expected.tobytes()
    assert scored["prediction"].tolist() == small_bundle.labels(expected).tolist()


def test_partition_skips_bad_rows_numbered_from_its_first_row(
    small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    frame = _rows(sample_frame, 0, 10).set_index(pd.Index(range(100, 110)))
    frame.loc[103, "age"] = BAD_AGE
    scored, problems = score_partition(small_bundle, frame, skip_bad=True, first_row=101)
    assert scored["id"].tolist() == [f"r{i}" for i in range(10) if i != 3]
    assert scored.index.tolist() == [i for i in range(100, 110) if i != 103]
    assert [(p.row, p.field) for p in problems] == [(104, "age")]


def test_partition_stops_at_a_bad_row_naming_its_source(
    small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    frame = _rows(sample_frame, 0, 10)
    frame.loc[3, "age"] = BAD_AGE
    with pytest.raises(InputError, match=r"in part 7: row 4, field 'age'"):
        score_partition(small_bundle, frame, source="part 7")


def test_input_files_takes_a_file_a_directory_or_a_glob(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "c.parquet", "_SUCCESS", ".hidden.csv"):
        (tmp_path / name).write_text("x\n")
    assert input_files(str(tmp_path / "b.csv")) == [tmp_path / "b.csv"]
    assert [p.name for p in input_files(str(tmp_path))] == ["a.csv", "b.csv", "c.parquet"]
    assert [p.name for p in input_files(str(tmp_path / "*.csv"))] == ["a.csv", "b.csv"]
    with pytest.raises(InputError, match="No input files"):
        input_files(str(tmp_path / "*.json"))


def test_input_folders_inside_the_input_are_refused_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "top.csv").write_text("x\n")
    (tmp_path / "year=2020").mkdir()
    (tmp_path / "_temporary").mkdir()  # (Spark's: left out with _SUCCESS)
    with pytest.raises(InputError, match=r"holds folders \(year=2020\), whose files are not"):
        input_files(str(tmp_path))


def test_an_output_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    _write_inputs(tmp_path / "in", [_rows(sample_frame, 0, 10)])
    (tmp_path / "afile").write_text("mine\n")
    out = tmp_path / "afile" / "sub"
    with pytest.raises(InputError, match=rf"^Cannot write the output folder {out}: Not a dir"):
        predict_files(run_tasks, _bundle_dir(small_settings), str(tmp_path / "in"), out)
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_an_output_folder_filled_while_the_engine_ran_is_kept_and_named(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    _write_inputs(tmp_path / "in", [_rows(sample_frame, 0, 10)])
    out = tmp_path / "out"

    def someone_else_writes(*args: object) -> object:
        out.mkdir()
        (out / "mine.txt").write_text("keep\n")
        return run_tasks(*args)  # type: ignore[arg-type]

    with pytest.raises(InputError, match=rf"^Cannot write the output folder {out}"):
        predict_files(someone_else_writes, _bundle_dir(small_settings), str(tmp_path / "in"), out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_files_score_as_census_predict_scores_them(
    tmp_path: Path, small_settings: Settings, small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    paths = _write_inputs(
        tmp_path / "in", [_rows(sample_frame, 0, 700), _rows(sample_frame, 700, 1000)]
    )
    out = tmp_path / "out"
    problems = predict_files(
        run_tasks, _bundle_dir(small_settings), str(tmp_path / "in"), out, output_format="csv"
    ).problems
    assert problems == []
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.csv", "part-00001.csv"]
    for i, path in enumerate(paths):
        predict_file(small_bundle, path, tmp_path / "one.csv")
        assert (out / f"part-{i:05d}.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def test_a_json_lines_file_scores_as_census_predict_scores_it(
    tmp_path: Path, small_settings: Settings, small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    path = tmp_path / "rows.jsonl"  # a suffix it is read by, CSV being the fallback before
    _rows(sample_frame, 0, 50).to_json(path, orient="records", lines=True)
    out = tmp_path / "out"
    problems = predict_files(
        run_tasks, _bundle_dir(small_settings), str(path), out, output_format="csv"
    ).problems
    assert problems == []
    predict_file(small_bundle, path, tmp_path / "one.csv")
    assert (out / "part-00000.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert len((tmp_path / "one.csv").read_text().splitlines()) == 51


def test_the_tasks_count_the_values_the_model_never_saw_across_files(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    frames = [_rows(sample_frame, 0, 4).assign(race="Martian"), _rows(sample_frame, 4, 6)]
    frames[1].loc[0, "race"] = "Martian"
    frames[1].loc[1, "race"] = "Venusian"
    _write_inputs(tmp_path / "in", frames)
    found = predict_files(
        run_tasks, _bundle_dir(small_settings), str(tmp_path / "in"), tmp_path / "out"
    )
    assert found.problems == []
    assert found.unknown.values == {"race": {"Martian": 5, "Venusian": 1}}


def test_values_a_task_did_not_keep_are_counted_still(
    tmp_path: Path,
    small_settings: Settings,
    sample_frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(UnknownValues, "KEPT", 1)
    frame = _rows(sample_frame, 0, 3).assign(race=["Martian", "Venusian", "Venusian"])
    _write_inputs(tmp_path / "in", [frame])
    found = predict_files(
        run_tasks, _bundle_dir(small_settings), str(tmp_path / "in"), tmp_path / "out"
    )
    assert (found.unknown.rows, len(found.unknown.values["race"])) == ({"race": 3}, 1)


def _jsonl_with_a_number_on_line_3(path: Path, sample_frame: pd.DataFrame) -> Path:
    lines = _rows(sample_frame, 0, 4).to_json(orient="records", lines=True).splitlines()
    path.write_text("\n".join([*lines[:2], "5", *lines[2:]]) + "\n")
    return path


def test_skip_leaves_out_a_json_line_that_is_not_a_row_naming_its_line(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    path = _jsonl_with_a_number_on_line_3(tmp_path / "rows.jsonl", sample_frame)
    out = tmp_path / "out"
    problems = predict_files(
        run_tasks, _bundle_dir(small_settings), str(path), out, skip_bad=True, output_format="csv"
    ).problems
    assert [str(p) for p in problems] == [
        f"{path}: line 3: got a number; expected an object of census fields"
    ]
    assert len((out / "part-00000.csv").read_text().splitlines()) == 1 + 4


def test_a_file_that_cannot_be_read_as_rows_is_named_in_the_error(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    path = _jsonl_with_a_number_on_line_3(tmp_path / "rows.jsonl", sample_frame)
    path.write_text(path.read_text().replace("\n5\n", "\n{oops\n"))
    message = f"In {path}: Line 3 is not valid JSON"
    with pytest.raises(InputError, match=f"^{re.escape(message)}"):
        predict_files(run_tasks, _bundle_dir(small_settings), str(path), tmp_path / "out")


def test_a_json_line_that_is_not_a_row_stops_the_file_naming_its_line(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    path = _jsonl_with_a_number_on_line_3(tmp_path / "rows.jsonl", sample_frame)
    message = f"in {path}: line 3: got a number; expected an object of census fields."
    with pytest.raises(InputError, match=re.escape(message)):
        predict_files(run_tasks, _bundle_dir(small_settings), str(path), tmp_path / "out")
    assert not list((tmp_path / "out").glob("part-*"))


def test_parquet_parts_hold_the_same_rows_and_floats(
    tmp_path: Path, small_settings: Settings, small_bundle: Bundle, sample_frame: pd.DataFrame
) -> None:
    (path,) = _write_inputs(tmp_path / "in", [_rows(sample_frame, 0, 300)])
    predict_file(small_bundle, path, tmp_path / "one.csv")
    expected = pd.read_csv(tmp_path / "one.csv", dtype=str, keep_default_na=False)
    predict_files(run_tasks, _bundle_dir(small_settings), str(path), tmp_path / "out")
    got = pd.read_parquet(tmp_path / "out" / "part-00000.parquet")
    assert list(got.columns) == list(expected.columns)
    floats = expected.pop("probability").astype(np.float64).to_numpy()
    assert got.pop("probability").to_numpy().tobytes() == floats.tobytes()
    assert got.astype(str).to_numpy().tolist() == expected.to_numpy().tolist()


def test_parquet_input_is_checked_by_the_contract(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    frame = _rows(sample_frame, 0, 20)
    table = pa.Table.from_pandas(
        frame.assign(age=frame["age"].astype(int).where(frame.index != 5)), preserve_index=False
    )
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=8)
    problems = predict_files(
        run_tasks,
        _bundle_dir(small_settings),
        str(tmp_path / "rows.parquet"),
        tmp_path / "out",
        skip_bad=True,
        chunk_size=8,
    ).problems
    file = str((tmp_path / "rows.parquet").resolve())
    assert [(p.file, p.problem.row, p.problem.field) for p in problems] == [(file, 6, "age")]
    assert len(pd.read_parquet(tmp_path / "out")) == 19


def test_a_bad_row_stops_the_job_naming_its_file_and_row(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    second = _rows(sample_frame, 100, 200)
    second.loc[41, "age"] = BAD_AGE
    paths = _write_inputs(tmp_path / "in", [_rows(sample_frame, 0, 100), second])
    out = tmp_path / "out"
    with pytest.raises(InputError, match=rf"in {paths[1].resolve()}: row 42, field 'age'"):
        predict_files(run_tasks, _bundle_dir(small_settings), str(tmp_path / "in"), out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in"]  # no staging folder left


def test_skip_drops_exactly_the_bad_rows(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    first, second = _rows(sample_frame, 0, 100), _rows(sample_frame, 100, 200)
    first.loc[7, "hours-per-week"] = "-1"
    second.loc[0, "age"] = BAD_AGE
    paths = _write_inputs(tmp_path / "in", [first, second])
    problems = predict_files(
        run_tasks,
        _bundle_dir(small_settings),
        str(tmp_path / "in"),
        tmp_path / "out",
        skip_bad=True,
        chunk_size=30,
    ).problems
    assert [(Path(p.file), p.problem.row, p.problem.field) for p in problems] == [
        (paths[0].resolve(), 8, "hours_per_week"),
        (paths[1].resolve(), 1, "age"),
    ]
    got = pd.read_parquet(tmp_path / "out")
    assert got["id"].tolist() == [f"r{i}" for i in range(200) if i not in (7, 100)]


def test_an_output_folder_with_files_is_left_alone(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    (path,) = _write_inputs(tmp_path / "in", [_rows(sample_frame, 0, 10)])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        predict_files(run_tasks, _bundle_dir(small_settings), str(path), tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_tampered_bundle_is_refused_by_the_task(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    """The driver checks the bundle too; this is what a task does with bytes changed
    on the way."""
    (path,) = _write_inputs(tmp_path / "in", [_rows(sample_frame, 0, 10)])

    def tampered(job: Job, tasks: pd.DataFrame) -> pd.DataFrame:
        files = {name: data[:-1] + bytes([data[-1] ^ 1]) for name, data in job.bundle.items()}
        files["metadata.json"] = job.bundle["metadata.json"]
        return run_tasks(dataclasses.replace(job, bundle=files), tasks)

    with pytest.raises(ModelError, match="does not match the SHA-256"):
        predict_files(tampered, _bundle_dir(small_settings), str(path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_file_problems_name_the_file() -> None:
    problem = FileProblem("/data/a.csv", RowProblem(3, "age", "got 'x'"))
    assert str(problem) == "/data/a.csv: row 3, field 'age': got 'x'"


@pytest.mark.slow  # starts a process
def test_census_help_imports_no_engine() -> None:
    script = (
        "import sys\n"
        "from census_salary.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('pyspark', 'dask', 'distributed', 'census_salary.partition')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "predict", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--engine" in done.stdout, done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_parts_an_engine_did_not_write_fail_the_job(
    tmp_path: Path, small_settings: Settings, sample_frame: pd.DataFrame
) -> None:
    """Workers that cannot see the output folder's file system write elsewhere."""
    _write_inputs(tmp_path / "in", [_rows(sample_frame, 0, 10), _rows(sample_frame, 10, 20)])

    def lost(job: Job, tasks: pd.DataFrame) -> pd.DataFrame:
        return run_tasks(dataclasses.replace(job, staging=str(tmp_path / "elsewhere")), tasks)

    with pytest.raises(InputError, match=r"without writing part-00000\.parquet, part-00001"):
        predict_files(lost, _bundle_dir(small_settings), str(tmp_path / "in"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
