"""Score streams of rows: N rows in, N rows out, in order, the caller's columns kept."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import pandas as pd

from census_salary.bundle import Bundle
from census_salary.contract import check_columns
from census_salary.data import summarise
from census_salary.errors import CensusError, InputError, RowProblem
from census_salary.files import atomic_open
from census_salary.progress import NoProgress, Progress
from census_salary.rows import InputFormat, RowChunk, read_rows

OutputFormat = Literal["csv", "json", "jsonl"]
PREDICTION, PROBABILITY = "prediction", "probability"


@dataclass
class ScoredStream:
    """Chunks of scored rows; with `skip_bad`, the problems of the rows left out."""

    chunks: Iterator[pd.DataFrame]
    problems: list[RowProblem] = field(default_factory=list)


def score_chunks(
    bundle: Bundle,
    chunks: Iterable[RowChunk],
    *,
    threshold: float | None = None,
    skip_bad: bool = False,
    source: str = "the input",
) -> ScoredStream:
    """Score chunks as they come. A bad row raises InputError unless `skip_bad`."""
    stream = ScoredStream(chunks=iter(()))

    def scored() -> Iterator[pd.DataFrame]:
        first_row = 1
        for chunk in chunks:
            if clash := sorted({PREDICTION, PROBABILITY} & set(chunk.table.columns)):
                raise InputError(
                    f"The input already has column(s) {', '.join(clash)} (the output of an "
                    "earlier run?); drop or rename them, since the output adds its own."
                )
            checked = check_columns(chunk.columns, first_row=first_row)
            if checked.problems:
                if not skip_bad:
                    raise InputError(summarise(checked.problems, source), checked.problems)
                stream.problems.extend(checked.problems)
            first_row += len(checked.good)
            kept = chunk.table.loc[checked.good].reset_index(drop=True)
            p = bundle.probabilities(checked.columns)
            yield kept.assign(**{PREDICTION: bundle.labels(p, threshold), PROBABILITY: p})

    stream.chunks = scored()
    return stream


def write_predictions(chunks: Iterable[pd.DataFrame], fmt: OutputFormat, out: IO[str]) -> int:
    """Write scored chunks as CSV, a JSON array or JSON Lines; return the rows written.

    Nothing is written before the first chunk has been scored, so an input that fails at
    once leaves the output empty.
    """
    rows = 0
    header: list[str] | None = None
    opened = False
    for chunk in chunks:
        if fmt == "json" and not opened:
            out.write("[")
            opened = True
        if fmt == "csv":
            first = header is None
            header = list(chunk.columns) if header is None else header
            if added := [c for c in chunk.columns if c not in header]:
                raise InputError(
                    f"Rows after row {rows} bring field(s) {', '.join(map(str, added))} that "
                    "earlier rows lack; CSV output needs one set of columns, so use "
                    "--output-format json or jsonl."
                )
            chunk.reindex(columns=header).to_csv(
                out, index=False, header=first, lineterminator="\n"
            )
        elif len(chunk):
            lines = _json_lines(chunk)
            if fmt == "jsonl":
                out.write("\n".join(lines) + "\n")
            else:
                out.write(("\n" if rows == 0 else ",\n") + ",\n".join(lines))
        rows += len(chunk)
    if fmt == "json":
        out.write(("\n]\n" if rows else "]\n") if opened else "[]\n")
    return rows


def _json_lines(chunk: pd.DataFrame) -> list[str]:
    """One JSON object per scored row, its probability written to the last bit.

    pandas writes at most 15 significant digits, which changes most probabilities in their
    last bits; they get Python's shortest round-trip text instead (what the API sends).
    """
    # Never empty: the prediction column is always there, before the probability.
    text = chunk.drop(columns=PROBABILITY).to_json(
        orient="records", lines=True, double_precision=15
    )
    lines = text.rstrip("\n").split("\n")  # JSON escapes newlines inside strings
    return [
        f'{line[:-1]},"{PROBABILITY}":{p!r}}}'
        for line, p in zip(lines, chunk[PROBABILITY].tolist(), strict=True)
    ]


def predict_file(
    bundle: Bundle,
    input_path: Path | None,
    output_path: Path | None,
    *,
    input_format: InputFormat | None = None,
    output_format: OutputFormat | None = None,
    threshold: float | None = None,
    skip_bad: bool = False,
    chunk_size: int = 50_000,
    progress: Progress | None = None,
) -> list[RowProblem]:
    """Score a file (or stdin) to a file (or stdout); return the problems of skipped rows.

    The output file is written whole or not at all: on a bad row it is left as it was.
    """
    source = str(input_path) if input_path else "standard input"
    with contextlib.ExitStack() as stack:
        if input_path is None:
            handle: IO[str] = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        else:
            try:
                handle = stack.enter_context(input_path.open(encoding="utf-8-sig", newline=""))
            except OSError as exc:
                raise InputError(f"Cannot read {input_path}: {exc.strerror}.") from None
        try:
            fmt, chunks = read_rows(handle, input_format, chunk_size)
            chunks = _counted(chunks, progress or NoProgress())
            stream = score_chunks(
                bundle, chunks, threshold=threshold, skip_bad=skip_bad, source=source
            )
            out_fmt = output_format or fmt
            if output_path is None:
                _write_to_stdout(stream.chunks, out_fmt)
            else:
                with atomic_open(output_path) as out:
                    write_predictions(stream.chunks, out_fmt, out)
        except UnicodeDecodeError as exc:
            raise InputError(f"{source} is not UTF-8 text: {exc.reason}.") from None
    return stream.problems


def _write_to_stdout(chunks: Iterator[pd.DataFrame], fmt: OutputFormat) -> None:
    """Rows go out as they are scored; a failure later on says how many already went."""
    written = 0

    def counted() -> Iterator[pd.DataFrame]:
        nonlocal written
        for chunk in chunks:
            yield chunk
            written += len(chunk)  # resumed once the chunk has been written

    try:
        write_predictions(counted(), fmt, sys.stdout)
    except CensusError as exc:
        if written:
            exc.args = (f"{exc} ({written} row(s) were written to standard output before this.)",)
        raise
    sys.stdout.flush()


def _counted(chunks: Iterable[RowChunk], progress: Progress) -> Iterator[RowChunk]:
    """Pass chunks through, counting their rows on the progress display."""
    progress.start("Scoring rows")
    for chunk in chunks:
        yield chunk
        progress.advance(len(chunk.table))
