"""Score streams of rows: N rows in, N rows out, in order, the caller's columns kept."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol

import numpy as np
import pandas as pd

from census_salary.data import InputFormat, check_frame, read_rows, summarise
from census_salary.errors import InputError, RowProblem
from census_salary.files import atomic_open
from census_salary.progress import NoProgress, Progress

OutputFormat = Literal["csv", "json", "jsonl"]
PREDICTION, PROBABILITY = "prediction", "probability"


class RowScorer(Protocol):
    """What scoring needs: the local `Scorer` or a `RemoteScorer`."""

    def predict_frame(self, features: pd.DataFrame) -> np.ndarray: ...

    def labels(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray: ...


@dataclass
class ScoredStream:
    """Chunks of scored rows; with `skip_bad`, the problems of the rows left out."""

    chunks: Iterator[pd.DataFrame]
    problems: list[RowProblem] = field(default_factory=list)


def score_chunks(
    scorer: RowScorer,
    chunks: Iterable[pd.DataFrame],
    *,
    threshold: float | None = None,
    skip_bad: bool = False,
    source: str = "the input",
) -> ScoredStream:
    """Score raw chunks as they come. A bad row raises InputError unless `skip_bad`."""
    stream = ScoredStream(chunks=iter(()))

    def scored() -> Iterator[pd.DataFrame]:
        first_row = 1
        for raw in chunks:
            if clash := sorted({PREDICTION, PROBABILITY} & set(raw.columns)):
                raise InputError(
                    f"The input already has column(s) {', '.join(clash)} (the output of an "
                    "earlier run?); drop or rename them, since the output adds its own."
                )
            checked = check_frame(raw, first_row=first_row)
            if checked.problems:
                if not skip_bad:
                    raise InputError(summarise(checked.problems, source), checked.problems)
                stream.problems.extend(checked.problems)
            first_row += len(raw)
            kept = raw.loc[checked.good].reset_index(drop=True)
            p = scorer.predict_frame(checked.features)
            yield kept.assign(**{PREDICTION: scorer.labels(p, threshold), PROBABILITY: p})

    stream.chunks = scored()
    return stream


def write_predictions(chunks: Iterable[pd.DataFrame], fmt: OutputFormat, out: IO[str]) -> int:
    """Write scored chunks as CSV, a JSON array or JSON Lines; return the rows written."""
    rows = 0
    header: list[str] | None = None
    if fmt == "json":
        out.write("[")
    for chunk in chunks:
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
            text = chunk.to_json(orient="records", lines=True, double_precision=15)
            lines = text.rstrip("\n").split("\n")  # JSON escapes newlines inside strings
            if fmt == "jsonl":
                out.write("\n".join(lines) + "\n")
            else:
                out.write(("\n" if rows == 0 else ",\n") + ",\n".join(lines))
        rows += len(chunk)
    if fmt == "json":
        out.write("\n]\n" if rows else "]\n")
    return rows


def predict_file(
    scorer: RowScorer,
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
                scorer, chunks, threshold=threshold, skip_bad=skip_bad, source=source
            )
            out_fmt = output_format or fmt
            if output_path is None:
                write_predictions(stream.chunks, out_fmt, sys.stdout)
                sys.stdout.flush()
            else:
                with atomic_open(output_path) as out:
                    write_predictions(stream.chunks, out_fmt, out)
        except UnicodeDecodeError as exc:
            raise InputError(f"{source} is not UTF-8 text: {exc.reason}.") from None
    return stream.problems


def _counted(chunks: Iterable[pd.DataFrame], progress: Progress) -> Iterator[pd.DataFrame]:
    """Pass chunks through, counting their rows on the progress display."""
    progress.start("Scoring rows")
    for chunk in chunks:
        yield chunk
        progress.advance(len(chunk))
