"""Score inputs too big for one machine on a cluster: a partition at a time, each one
through `predict.score_rows`, the stream `census predict` scores with.

Two ways in:

- `score_partition(bundle, frame)`: one pandas DataFrame, validated as every door
  validates (`contract.check_columns`); N rows in, N rows out, the frame's columns kept,
  `prediction` and `probability` added.
- `predict_files(...)`: `census predict --engine spark|dask`. The unit of work is one
  input file (CSV, JSON, JSON Lines or Parquet): a task reads it exactly as `census
  predict` reads a file (through `rows.read_rows`, so values reach the contract as the
  same text, in the format its content shows), scores
  it, and writes one part file (Parquet or CSV) into a staging folder that replaces the
  output folder once every task has succeeded. Bad rows are therefore reported with
  their file and the row numbers `census predict` gives for that file. An engine only
  maps `run_tasks` over a DataFrame of (file, part) rows (`engines.spark`,
  `engines.dask`) and returns the problems it gives back.

The bundle travels to the tasks as bytes (`bundle.bundle_files`) and each task loads it
with `bundle.load_bundle_files`: the same SHA-256 checks as a folder, no code run.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from census_salary import errors
from census_salary.bundle import (
    Bundle,
    ScorerChoice,
    bundle_files,
    load_bundle_files,
)
from census_salary.contract import columns_of_frame
from census_salary.errors import CensusError, InputError, RowProblem
from census_salary.files import atomic_open
from census_salary.predict import Predicted, UnknownValues, score_rows
from census_salary.rows import InputFormat, JsonRowProblem, RowChunk, read_rows
from census_salary.writers import write_predictions

if TYPE_CHECKING:
    import pandas as pd

EngineName = Literal["spark", "dask"]
PartFormat = Literal["parquet", "csv"]
# What a task gives back, one row per finding: a skipped row (`error` empty), or the
# error that stopped the file (`error` names its CensusError class, `message` says it).
# `unit` is what a JSON row's number counts ("row" or "line"; empty for CSV and Parquet).
# A row with `rows` above 0 is a category value the model never saw, scored as missing:
# `field` its column, `message` the value ("" for values past `UnknownValues.KEPT`),
# `rows` how many rows held it.
PROBLEM_COLUMNS = ("file", "row", "field", "message", "error", "unit", "rows")
SPARK_PROBLEM_SCHEMA = (
    "file string, row long, field string, message string, error string, unit string, rows long"
)


@dataclass(frozen=True)
class FileProblem:
    """A row left out: the file it is in and its problem (row numbered within the file)."""

    file: str
    problem: RowProblem

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


@dataclass(frozen=True)
class FilesPredicted:
    """What `predict_files` found beside the part files it wrote: the rows it left out
    (with `skip_bad`), and the category values the model never saw, scored as missing."""

    problems: list[FileProblem]
    unknown: UnknownValues


@dataclass(frozen=True)
class Job:
    """Everything a task needs, shipped to it whole (it holds the bundle's bytes)."""

    bundle: dict[str, bytes]  # `bundle.bundle_files`, checked again by each task
    bundle_source: str  # the folder they came from, for messages
    scorer: ScorerChoice
    staging: str  # the folder part files are written into
    input_format: InputFormat | None = None  # None: detected in each file
    output_format: PartFormat = "parquet"
    threshold: float | None = None
    skip_bad: bool = False
    chunk_size: int = 50_000


Runner = Callable[[Job, "pd.DataFrame"], "pd.DataFrame"]


# --- one partition -----------------------------------------------------------------------


def score_partition(
    bundle: Bundle,
    frame: pd.DataFrame,
    *,
    threshold: float | None = None,
    skip_bad: bool = False,
    source: str = "the partition",
    first_row: int = 1,
) -> tuple[pd.DataFrame, list[RowProblem]]:
    """Score a pandas DataFrame: its rows (and their index) with `prediction` and
    `probability` added, and (with `skip_bad`) the problems of the rows left out;
    otherwise a bad row raises InputError. `first_row` is the number problems give the
    frame's first row (its place in its input)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    chunk = RowChunk(pa.Table.from_pandas(frame, preserve_index=False), columns_of_frame(frame))
    stream = score_rows(
        bundle, [chunk], threshold=threshold, skip_bad=skip_bad, source=source, first_row=first_row
    )
    frames = [scored.to_frame() for scored in stream.chunks]
    scored = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    left_out = sorted({problem.row - first_row for problem in stream.problems})
    scored.index = frame.index[np.delete(np.arange(len(frame)), left_out)]
    return scored, stream.problems


# --- one file, in a task -----------------------------------------------------------------


def score_file(bundle: Bundle, path: Path, part: Path, job: Job) -> Predicted:
    """Score one input file into one part file (written whole or not at all); return the
    problems of the rows skipped and the category values the model never saw. A bad row
    raises InputError unless `job.skip_bad`."""
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(path.open("rb"))
        except OSError as exc:
            raise InputError(f"Cannot read {path}: {exc.strerror}.") from None
        try:
            stream = score_rows(
                bundle,
                read_rows(handle, job.input_format, job.chunk_size, name=path)[1],
                threshold=job.threshold,
                skip_bad=job.skip_bad,
                source=str(path),
            )
            with atomic_open(part, "wb") as out:
                write_predictions(stream.chunks, job.output_format, out)
        except InputError as exc:  # a file's structure, as reading words it: which file
            if str(path) in str(exc):  # (the rows' checks name it already)
                raise
            raise InputError(f"In {path}: {exc}", exc.problems) from None
    return Predicted(stream.problems, stream.unknown)


def run_tasks(job: Job, tasks: pd.DataFrame) -> pd.DataFrame:
    """The function an engine maps over its partitions of (file, part) rows: each file
    scored into its part; the problems as a frame of `PROBLEM_COLUMNS`.

    Errors come back as rows too, so that the driver raises our message, not the engine's
    traceback. The bundle is loaded (and checked) here, on the executor.
    """
    import pandas as pd

    found: list[tuple[str, int, str, str, str, str, int]] = []
    bundle: Bundle | None = None
    for file, part in zip(tasks.file, tasks.part, strict=True):
        try:
            bundle = bundle or load_bundle_files(job.bundle, job.bundle_source, job.scorer)
            predicted = score_file(bundle, Path(file), Path(job.staging) / part, job)
        except CensusError as exc:
            found.append((file, 0, "", str(exc), type(exc).__name__, "", 0))
            continue
        found.extend(
            (file, p.row, p.field, p.message, "", getattr(p, "unit", ""), 0)
            for p in predicted.problems
        )
        unknown = predicted.unknown
        for name, values in unknown.values.items():
            found.extend((file, 0, name, value, "", "", n) for value, n in values.items())
            if others := unknown.rows[name] - sum(values.values()):
                found.append((file, 0, name, "", "", "", others))
    frame = pd.DataFrame(found, columns=list(PROBLEM_COLUMNS))
    return frame.astype({"row": "int64", "rows": "int64"})


# --- the driver ----------------------------------------------------------------------------


def input_files(given: str) -> list[Path]:
    """The files an input names: a file, a directory's files, or a glob's; sorted. In a
    directory or a glob, names that start with `.` or `_` (such as _SUCCESS) are left out,
    and a folder is refused: its files would not be read."""
    path = Path(given)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = path.iterdir()
    else:
        anchor = Path(path.anchor or ".")
        found = anchor.glob(str(path.relative_to(anchor)))
    listed = [p for p in found if p.name[0] not in "._"]
    if folders := sorted(p.name for p in listed if p.is_dir()):
        # (a partitioned dataset, `year=2020/`: its rows would be left out in silence)
        raise InputError(
            f"{given} holds folders ({', '.join(folders[:5])}), whose files are not read; "
            "give each folder (or a glob of their files) as the input."
        )
    files = sorted(p for p in listed if p.is_file())
    if not files:
        raise InputError(f"No input files at {given}: give a file, a directory or a glob.")
    return files


def predict_files(
    run: Runner,
    bundle_dir: Path,
    input_path: str,
    output_dir: Path,
    *,
    scorer: ScorerChoice = "trees",
    input_format: InputFormat | None = None,
    output_format: PartFormat = "parquet",
    threshold: float | None = None,
    skip_bad: bool = False,
    chunk_size: int = 50_000,
) -> FilesPredicted:
    """Score every input file on an engine (`run`) into part files in `output_dir`,
    written whole or not at all; return the problems of the rows skipped and the
    category values the model never saw."""
    files = input_files(input_path)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise InputError(f"{output_dir} already exists; remove it or choose another --output.")
    shipped = bundle_files(bundle_dir, scorer)
    load_bundle_files(shipped, str(bundle_dir), scorer)  # fail here, before the cluster
    staging = output_dir.parent / f".{output_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        staging.mkdir(parents=True)
    except OSError as exc:  # a file where a folder belongs, no permission, a full disk
        raise _cannot_write(output_dir, exc) from None
    job = Job(
        bundle=shipped,
        bundle_source=str(bundle_dir),
        scorer=scorer,
        staging=str(staging.resolve()),
        input_format=input_format,
        output_format=output_format,
        threshold=threshold,
        skip_bad=skip_bad,
        chunk_size=chunk_size,
    )
    tasks = _tasks(files, output_format)
    try:
        predicted = _findings(run(job, tasks), [str(file) for file in tasks.file])
        if missing := [part for part in tasks.part if not (staging / part).is_file()]:
            raise InputError(
                f"The engine finished without writing {', '.join(missing)}; nothing was "
                "written. Do its workers see the output folder's file system?"
            )
        try:
            if output_dir.exists():
                output_dir.rmdir()  # (empty, as checked; unless filled since)
            staging.rename(output_dir)
        except OSError as exc:  # something else took the name while the engine ran
            raise _cannot_write(output_dir, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return predicted


def _cannot_write(output_dir: Path, exc: OSError) -> InputError:
    return InputError(
        f"Cannot write the output folder {output_dir}: {exc.strerror or exc}; nothing was "
        "written. Choose another --output, or remove what is there."
    )


def _tasks(files: list[Path], output_format: PartFormat) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "file": [str(file.resolve()) for file in files],
            "part": [f"part-{i:05d}.{output_format}" for i in range(len(files))],
        }
    )


def _findings(frame: pd.DataFrame, files: list[str]) -> FilesPredicted:
    """What tasks gave back: the problems in the input's order, and the unknown values
    added up; the first error is raised."""
    order = {file: i for i, file in enumerate(files)}
    rows = sorted(
        frame.itertuples(index=False), key=lambda r: (order.get(r.file, len(order)), r.row)
    )
    for row in rows:
        if row.error:
            kind = getattr(errors, row.error, None)
            if not (isinstance(kind, type) and issubclass(kind, CensusError)):
                kind = InputError
            raise kind(row.message)
    unknown = UnknownValues()
    for r in rows:
        if r.rows and r.message:
            unknown.add({r.field: {r.message: int(r.rows)}})
        elif r.rows:  # (values a task counted past the ones it kept)
            unknown.add_others(r.field, int(r.rows))
    problems = [FileProblem(r.file, _row_problem(r)) for r in rows if not r.rows]
    return FilesPredicted(problems, unknown)


def _row_problem(row: Any) -> RowProblem:
    """A problem as the task found it: a JSON row's named by its unit (`line N` of JSON
    Lines), as `census predict` names it."""
    if row.unit:
        return JsonRowProblem(int(row.row), row.field, row.message, row.unit)
    return RowProblem(int(row.row), row.field, row.message)


def engine_runner(engine: EngineName, address: str | None) -> Runner:
    """The engine's `run(job, tasks)`; `address` is Spark's master or Dask's scheduler
    (None: a local cluster). The engine's package is imported only here."""
    if engine == "spark":
        from census_salary.engines import spark

        return lambda job, tasks: spark.run(job, tasks, master=address)
    from census_salary.engines import dask

    return lambda job, tasks: dask.run(job, tasks, scheduler=address)
