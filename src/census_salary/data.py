"""Read, clean and validate census files and streams of rows.

Bulk data is checked column by column (vectorised) against the constraints of
`schema.CensusRow`, so the one schema rules training files, `census predict` and the API
alike while a million rows still take a moment, not minutes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from census_salary.errors import InputError, RowProblem
from census_salary.schema import (
    CATEGORICAL,
    COLUMNS,
    MAX_CATEGORY_LENGTH,
    MISSING_MARKERS,
    NUMERIC_RANGES,
    NUMERICAL,
    canonical_name,
    expected,
)

logger = logging.getLogger(__name__)

InputFormat = Literal["csv", "json", "jsonl"]
_WHOLE = re.compile(r"\s*[+-]?\d{1,18}(\.0*)?\s*")
TARGET_COLUMN = "salary"
LABELS = {">50K": 1, "<=50K": 0}
MAX_PROBLEMS_IN_MESSAGE = 10


@dataclass(frozen=True)
class CensusData:
    """A clean, validated, labelled census table."""

    features: pd.DataFrame  # canonical columns: categoricals as str/NaN, numericals as float
    target: pd.Series  # 1 for >50K, 0 otherwise
    rows_read: int
    duplicates_dropped: int
    sha256: str


@dataclass(frozen=True)
class CheckedFrame:
    """Rows of a chunk split into the ones a model can score and the problems of the rest."""

    features: pd.DataFrame  # only the good rows, canonical columns
    good: np.ndarray  # boolean mask over the chunk's rows
    problems: list[RowProblem]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_census(path: Path, *, target: str = TARGET_COLUMN) -> CensusData:
    """Read a labelled census file as published (or a variant of it), clean and validate it.

    Accepts the messy published layout: spaces after commas, `?` for missing values,
    hyphenated names, `fnlwgt`/`income` spellings, `>50K.` labels and files without a
    header row (UCI `adult.data`). Exact duplicate rows are dropped and counted.
    """
    if not path.is_file():
        raise InputError(f"No data file at {path}.")
    with path.open("r", encoding="utf-8", errors="strict", newline="") as handle:
        try:
            raw = read_csv_text(handle, header=_has_header(path), comment="|")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text: {exc}") from None
    raw = raw.rename(columns=canonical_name)
    target = canonical_name(target)
    if target not in raw.columns:
        raise InputError(
            f"{path} has no {target!r} column; a labelled file needs one "
            f"(columns found: {', '.join(raw.columns)})."
        )
    checked = check_frame(raw, first_row=1)
    labels, label_problems = _parse_labels(raw[target])
    problems = checked.problems + label_problems
    if problems:
        raise InputError(summarise(problems, path), problems)
    frame = checked.features.assign(**{TARGET_COLUMN: labels})
    duplicated = frame.duplicated()
    frame = frame.loc[~duplicated].reset_index(drop=True)
    logger.info("read %d rows from %s, dropped %d duplicates", len(raw), path, duplicated.sum())
    return CensusData(
        features=frame[COLUMNS],
        target=frame[TARGET_COLUMN],
        rows_read=len(raw),
        duplicates_dropped=int(duplicated.sum()),
        sha256=file_sha256(path),
    )


def _has_header(path: Path) -> bool:
    """`adult.data` has no header row: its first field is a number, not a name."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip() and not line.startswith("|"):
                first = line.split(",", 1)[0].strip()
                return not first.replace(".", "", 1).isdigit()
    return True


def read_csv_text(
    source: IO[str],
    *,
    header: bool = True,
    comment: str | None = None,
    chunksize: int | None = None,
) -> Any:
    """CSV as text columns, exactly as written (ids keep their leading zeros)."""
    try:
        return pd.read_csv(
            source,
            header=0 if header else None,
            names=None if header else [*COLUMNS, TARGET_COLUMN],
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            skip_blank_lines=True,
            comment=comment,
            chunksize=chunksize,
        )
    except pd.errors.EmptyDataError:
        raise InputError("The CSV input is empty: expected a header row and data rows.") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"The CSV input is malformed: {exc}") from None


def _parse_labels(column: pd.Series) -> tuple[pd.Series, list[RowProblem]]:
    """1 for >50K, 0 for <=50K (a trailing period, as in adult.test, is allowed)."""
    text = column.astype(str).str.strip().str.rstrip(".")
    labels = text.map(LABELS)
    bad = labels.isna()
    problems = [
        RowProblem(
            int(i) + 1,
            TARGET_COLUMN,
            f"got {column.iloc[i]!r}; expected {' or '.join(LABELS)}",
        )
        for i in np.flatnonzero(bad.to_numpy())
    ]
    return labels.fillna(0).astype("int8"), problems


def check_frame(raw: pd.DataFrame, first_row: int = 1) -> CheckedFrame:
    """Check raw rows against the row schema; column names may use any accepted spelling.

    `first_row` is the 1-based number of the frame's first row in the whole input, so
    problems name the row a person would count to.
    """
    frame = raw.rename(columns=canonical_name)
    duplicated_names = frame.columns[frame.columns.duplicated()].unique()
    if len(duplicated_names):
        raise InputError(
            f"Columns {', '.join(duplicated_names)} appear more than once "
            "(perhaps both hyphenated and underscored spellings were given)."
        )
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise InputError(
            f"Missing column(s) {', '.join(missing)}; every row needs the 14 census fields "
            f"({', '.join(COLUMNS)}), with hyphens or underscores."
        )
    bad = np.zeros(len(frame), dtype=bool)
    problems: list[RowProblem] = []
    columns: dict[str, Any] = {}
    for name in NUMERICAL:
        values, invalid = _check_numbers(frame[name], name)
        columns[name] = values
        problems += _problems(frame[name], invalid, name, first_row)
        bad |= invalid
    for name in CATEGORICAL:
        values, invalid = _check_categories(frame[name])
        columns[name] = values
        problems += _problems(frame[name], invalid, name, first_row)
        bad |= invalid
    features = pd.DataFrame(columns, index=frame.index)[COLUMNS]
    good = ~bad
    problems.sort(key=lambda p: p.row)
    return CheckedFrame(
        features=features.loc[good].reset_index(drop=True), good=good, problems=problems
    )


def _by_distinct_values(
    column: pd.Series, check: Callable[[pd.Series], tuple[pd.Series, np.ndarray]]
) -> tuple[pd.Series, np.ndarray]:
    """Run `check` on the distinct values of a text column only, and spread the results.

    A CSV chunk of 50,000 rows has a few dozen distinct values per column, so this turns
    per-value Python work into per-distinct-value work. Columns of mixed Python objects
    (JSON rows) are checked value by value: factorising would merge `true` with `1`.
    """
    if column.dtype == object and pd.api.types.infer_dtype(column, skipna=False) != "string":
        return check(column)
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    values, invalid = check(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
    return pd.Series(values.to_numpy()[codes], index=column.index), invalid[codes]


def _check_numbers(column: pd.Series, name: str) -> tuple[pd.Series, np.ndarray]:
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        return _by_distinct_values(column, lambda values: _check_number_values(values, name))
    # A numeric or boolean column (JSON rows): true/false are refused, as by the schema.
    is_bool = np.full(len(column), pd.api.types.is_bool_dtype(column))
    return _in_range(pd.to_numeric(column, errors="coerce"), name, is_bool)


def _check_number_values(column: pd.Series, name: str) -> tuple[pd.Series, np.ndarray]:
    # As the row schema: true/false are refused, and text must be a whole number
    # ("39" or "39.0", not "1e1"); JSON numbers may be floats with nothing after the point.
    refused = column.map(
        lambda v: isinstance(v, bool) or (isinstance(v, str) and not _WHOLE.fullmatch(v))
    ).to_numpy(dtype=bool)
    numbers = pd.to_numeric(column.where(~refused).astype(object), errors="coerce")
    return _in_range(numbers, name, refused)


def _in_range(numbers: pd.Series, name: str, refused: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    values = numbers.to_numpy(dtype=float, na_value=np.nan)
    low, high = NUMERIC_RANGES[name]
    with np.errstate(invalid="ignore"):
        invalid = (
            ~np.isfinite(values) | (values != np.floor(values)) | (values < low) | (values > high)
        )
    return pd.Series(values, index=numbers.index), invalid | refused


def _check_categories(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    return _by_distinct_values(column, _check_category_values)


def _check_category_values(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    is_text = column.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    is_null = column.isna().to_numpy(dtype=bool)
    text = column.where(is_text).astype(object).str.strip()
    missing = text.isin(MISSING_MARKERS).to_numpy(dtype=bool) | is_null
    too_long = (text.str.len() > MAX_CATEGORY_LENGTH).to_numpy(dtype=bool)
    values = text.where(~missing & is_text).astype(object)
    values = values.where(values.notna(), np.nan)
    invalid = (~is_text & ~is_null) | too_long
    return values, invalid


def _problems(raw: pd.Series, invalid: np.ndarray, name: str, first_row: int) -> list[RowProblem]:
    return [
        RowProblem(
            first_row + int(i),
            name,
            f"got {_show(raw.iloc[i])}; expected {expected(name)}",
        )
        for i in np.flatnonzero(invalid)
    ]


def _show(value: Any) -> str:
    if value is ABSENT:
        return repr(value)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "no value"
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def summarise(problems: list[RowProblem], source: Path | str) -> str:
    """One message for a list of problems, naming the first few."""
    shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_IN_MESSAGE])
    more = len(problems) - MAX_PROBLEMS_IN_MESSAGE
    tail = f" (and {more} more)" if more > 0 else ""
    return (
        f"{len(problems)} invalid value(s) in {source}: {shown}{tail}. Fix the rows and try again."
    )


# --- streams of rows for `census predict` ---------------------------------------------


def detect_format(head: str) -> InputFormat:
    """Guess the format from the first characters of the input."""
    stripped = head.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        first_line = stripped.split("\n", 1)[0].strip()
        try:
            value = json.loads(first_line)
        except json.JSONDecodeError:
            return "json"  # an object spread over several lines: {"inputs": [...]}
        except (ValueError, RecursionError):
            return "jsonl"  # a whole line beyond Python's limits: reading it will say so
        return "json" if isinstance(value, dict) and "inputs" in value else "jsonl"
    return "csv"


def read_rows(
    source: IO[str], fmt: InputFormat | None, chunk_size: int
) -> tuple[InputFormat, Iterator[pd.DataFrame]]:
    """The input's format (given or detected) and its raw rows in chunks of `chunk_size`.

    Nothing is read whole: CSV and JSON Lines stream by chunk, and a JSON array (or the
    array in `{"inputs": [...]}`) is decoded element by element. Rows keep the caller's
    columns and values; census fields in JSON rows take their canonical names.
    """
    head = source.read(64 * 1024)
    if not head.strip("\ufeff \t\r\n"):
        raise InputError("The input is empty: expected CSV, JSON or JSON Lines rows.")
    fmt = fmt or detect_format(head)
    return fmt, _chunks(Rewound(head, source), fmt, chunk_size)


def _chunks(stream: IO[str], fmt: InputFormat, chunk_size: int) -> Iterator[pd.DataFrame]:
    if fmt == "csv":
        try:
            yield from read_csv_text(stream, chunksize=chunk_size)
        except pd.errors.ParserError as exc:  # the reader parses lazily, chunk by chunk
            raise InputError(f"The CSV input is malformed: {exc}") from None
        return
    records = _iter_jsonl(stream) if fmt == "jsonl" else _iter_json_array(stream)
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) == chunk_size:
            yield pd.DataFrame.from_records(batch)
            batch = []
    if batch:
        yield pd.DataFrame.from_records(batch)


class Rewound(io.TextIOBase):
    """A text stream that first gives back what was peeked from it."""

    def __init__(self, head: str, rest: IO[str]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            text, self._head = self._head + self._rest.read(), ""
            return text
        if self._head:
            text, self._head = self._head[:size], self._head[size:]
            return text
        return self._rest.read(size)

    def readline(self, size: int | None = -1) -> str:
        if self._head:
            line, newline, rest = self._head.partition("\n")
            if newline:
                self._head = rest
                return line + newline
            self._head = ""
            return line + self._rest.readline()
        return self._rest.readline()

    def __iter__(self) -> Iterator[str]:
        while line := self.readline():
            yield line


def _iter_jsonl(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"Line {number} is not valid JSON: {exc.msg}.") from None
        except (ValueError, RecursionError) as exc:  # nesting or number beyond Python's limits
            raise InputError(f"Line {number} cannot be read as JSON rows: {exc}.") from None
        yield _as_record(record, number)


class _Absent:
    """Stands for a field a JSON row leaves out, so the check can say so (null is allowed)."""

    def __repr__(self) -> str:
        return "nothing (the field is missing)"


ABSENT = _Absent()


def _as_record(value: Any, row: int) -> dict[str, Any]:
    """A JSON row with census fields under their canonical names; other keys untouched."""
    if not isinstance(value, dict):
        raise InputError(
            f"Row {row} is {type(value).__name__}; expected an object of census fields."
        )
    record: dict[str, Any] = {}
    for key, item in value.items():
        name = canonical_name(key)
        name = name if name in COLUMNS else key
        if name in record:
            raise InputError(f"Row {row} gives field {name!r} twice (as {key!r} too).")
        record[name] = item
    for name in COLUMNS:
        record.setdefault(name, ABSENT)
    return record


class _JsonArrayReader:
    """Decode the elements of a JSON array one at a time from a text stream."""

    _SPACE = re.compile(r"[ \t\r\n\ufeff]*")

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._buffer = ""
        self._pos = 0
        self._decoder = json.JSONDecoder()
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        block = self._stream.read(1 << 16)
        if not block:
            self._eof = True
            return False
        self._buffer = self._buffer[self._pos :] + block
        self._pos = 0
        return True

    def next_char(self) -> str:
        """The next non-space character (not consumed); empty at the end of input."""
        while True:
            match = self._SPACE.match(self._buffer, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return ""

    def expect(self, char: str, what: str) -> None:
        found = self.next_char()
        if found != char:
            shown = repr(found) if found else "the end of the input"
            raise InputError(f"Invalid JSON input: expected {what}, found {shown}.")
        self._pos += 1

    def value(self) -> Any:
        self.next_char()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise InputError(f"Invalid JSON input: {exc.msg}.") from None
            except (ValueError, RecursionError) as exc:  # beyond Python's limits
                raise InputError(f"The JSON input cannot be read as rows: {exc}.") from None
            # A value that ends the buffer (a number, say) may go on in the next block.
            if end == len(self._buffer) and self._fill():
                continue
            self._pos = end
            return value

    def elements(self) -> Iterator[Any]:
        self.expect("[", "'[' to open the list of rows")
        if self.next_char() == "]":
            self._pos += 1
            return
        while True:
            yield self.value()
            if self.next_char() == ",":
                self._pos += 1
                continue
            self.expect("]", "',' or ']' after a row")
            return


def _iter_json_array(stream: IO[str]) -> Iterator[dict[str, Any]]:
    reader = _JsonArrayReader(stream)
    wrapped = reader.next_char() == "{"
    if wrapped:
        reader.expect("{", "'{'")
        key = reader.value()
        if key != "inputs":
            raise InputError(
                f'Invalid JSON input: expected {{"inputs": [...]}}, found key {key!r}.'
            )
        reader.expect(":", "':' after \"inputs\"")
    for number, element in enumerate(reader.elements(), start=1):
        yield _as_record(element, number)
    if wrapped:
        reader.expect("}", 'the end of {"inputs": [...]} (no other keys are accepted)')
    if reader.next_char():
        raise InputError("Invalid JSON input: unexpected text after the rows.")
