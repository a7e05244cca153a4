"""Read, clean and check labelled census files (training and audit data).

Every row is checked by `contract.check_columns`, the same check the API and
`census predict` run, so the one contract rules training files too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from census_salary.contract import (
    COLUMNS,
    TARGET,
    canonical_columns,
    canonical_name,
    check_columns,
    columns_of_frame,
    show_value,
)
from census_salary.errors import DataUnavailableError, InputError, RowProblem

if TYPE_CHECKING:
    from census_salary.rows import RowChunk

logger = logging.getLogger(__name__)

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
class Split:
    train_x: pd.DataFrame
    train_y: pd.Series
    test_x: pd.DataFrame
    test_y: pd.Series


def split_data(data: CensusData, test_size: float, seed: int) -> Split:
    """The stratified train/test split; the same data and seed give the same split."""
    train_x, test_x, train_y, test_y = _stratified(
        data.features, data.target, labels=data.target, test_size=test_size, seed=seed
    )
    return Split(train_x, train_y, test_x, test_y)


def split_counts(
    negatives: int, positives: int, test_size: float, seed: int
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The rows of each class, (<=50K, >50K), that `split_data` puts in the training split
    and in the held-out split of data with these counts (it deals each class out by its
    count alone); None where it cannot split them: a class of fewer than two rows, or a
    split of fewer rows than there are classes."""
    rows = negatives + positives
    held_out = math.ceil(test_size * rows)  # as scikit-learn counts it
    if min(negatives, positives) < 2 or min(held_out, rows - held_out) < 2:
        return None
    labels = np.repeat(np.array([0, 1], dtype=np.int8), [negatives, positives])
    train, test = _stratified(labels, labels=labels, test_size=test_size, seed=seed)
    return _pair(np.bincount(train, minlength=2)), _pair(np.bincount(test, minlength=2))


def _pair(counts: np.ndarray) -> tuple[int, int]:
    return int(counts[0]), int(counts[1])


def _stratified(*arrays: Any, labels: Any, test_size: float, seed: int) -> list[Any]:
    """The one stratified split of `split_data` and `split_counts`."""
    from sklearn.model_selection import train_test_split

    return train_test_split(*arrays, test_size=test_size, random_state=seed, stratify=labels)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_census(path: Path, *, target: str = TARGET) -> CensusData:
    """Read a labelled census file as published (or a variant of it), clean and validate it.

    Accepts the messy published layout: spaces after commas, `?` for missing values,
    hyphenated names, `fnlwgt`/`income` spellings, `>50K.` labels, a byte order mark and
    files without a header row (UCI `adult.data`): a first line is the header when it names
    a census column or the label. JSON, JSON Lines and Parquet rows are read as `census
    predict` reads them, and their problems named as it names them. Exact duplicate rows
    are dropped and counted.
    """
    if not path.is_file():
        raise DataUnavailableError(
            f"No data file at {path}. Copy the census data (adult.data or census.csv from "
            f"the UCI Adult dataset) to {path}; see data/README.md."
        )
    other = _rows_of_another_format(path)
    # (a CSV file's problems are named as they are: by its rows)
    raw, named = other if other is not None else (_published_csv(path, target), list)
    target = canonical_name(target)
    raw.columns = canonical_columns(list(raw.columns), label=target)
    if target not in raw.columns:
        raise InputError(
            f"{path} has no {target!r} column; a labelled file needs one "
            f"(columns found: {', '.join(raw.columns)})."
        )
    checked = check_columns(columns_of_frame(raw))
    labels, label_problems = parse_labels(raw[target], target)
    problems = named(sorted(checked.problems + label_problems, key=lambda p: p.row))
    if problems:
        raise InputError(summarise(problems, path), problems)
    # Missing categories as NaN, as scikit-learn's encoders expect in a table.
    frame = pd.DataFrame(dict(checked.columns)).fillna(np.nan).assign(**{TARGET: labels})
    duplicated = frame.duplicated()
    frame = frame.loc[~duplicated].reset_index(drop=True)
    logger.info("read %d rows from %s, dropped %d duplicates", len(raw), path, duplicated.sum())
    return CensusData(
        features=frame[COLUMNS],
        target=frame[TARGET],
        rows_read=len(raw),
        duplicates_dropped=int(duplicated.sum()),
        sha256=file_sha256(path),
    )


def _published_csv(path: Path, target: str) -> pd.DataFrame:
    """A CSV file's rows as text, as published: notes first, with a header or without."""
    # utf-8-sig: a byte order mark (Excel writes one) is not part of the first line.
    with path.open("r", encoding="utf-8-sig", errors="strict", newline="") as handle:
        try:
            notes, header = _layout(path, target)
            if header is not None:
                refuse_repeated_names(header)
            return read_csv_text(handle, header=header is not None, skip=notes)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text: {exc}") from None
        except InputError as exc:  # the file's structure: which file, since it may be any
            raise InputError(f"In {path}: {exc}", exc.problems) from None


Renumber = Callable[[list[RowProblem]], list[RowProblem]]


def _rows_of_another_format(path: Path) -> tuple[pd.DataFrame, Renumber] | None:
    """The rows of a JSON, JSON Lines or Parquet file as `census predict` reads them (the
    one reader, `rows.read_rows`), and what names their problems as it does (`line 3` of
    JSON Lines); None for a CSV file."""
    from census_salary.rows import JsonRowProblem, read_rows

    with path.open("rb") as handle:
        try:
            fmt, chunks = read_rows(handle, None, 50_000, name=path)
            if fmt == "csv":
                return None
            read = list(chunks)
        except InputError as exc:
            message = str(exc) if str(path) in str(exc) else f"In {path}: {exc}"
            raise InputError(message, exc.problems) from None
    refused = [problem for chunk in read for problem in chunk.refused]
    if refused:  # rows that are not objects, or give a field twice
        raise InputError(summarise(refused, path), refused)
    frame = pd.concat([_frame_of(c) for c in read], ignore_index=True) if read else pd.DataFrame()
    if not read or read[0].numbers is None:  # Parquet: rows are numbered as they come
        return frame, list
    numbers = [number for chunk in read for number in chunk.numbers or ()]
    unit = read[0].unit

    def renumber(problems: list[RowProblem]) -> list[RowProblem]:
        return [JsonRowProblem(numbers[p.row - 1], p.field, p.message, unit) for p in problems]

    return frame, renumber


def _frame_of(chunk: RowChunk) -> pd.DataFrame:
    if not isinstance(chunk.table, list):  # Parquet
        return chunk.table.to_pandas()
    # JSON rows: the census fields as the check takes them, a field a row leaves out
    # marked so (a missing value of a DataFrame would read as unknown, not as missing).
    frame = pd.DataFrame.from_records(chunk.table)
    return frame.assign(**{name: list(chunk.columns[name]) for name in COLUMNS})


def _layout(path: Path, target: str) -> tuple[int, str | None]:
    """How many note lines (`|1x3 Cross validator` in adult.test) come first, and the
    header line that follows: None where that line is a row of values (`adult.data`), that
    is where it names no census column and not the label (`_names_columns`), whatever its
    values are (`+39`, `"39"`, `?` or a bad one, which the check then names)."""
    notes = 0
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("|"):
                notes = number  # skip up to and with the last note line
            elif line.strip():
                return notes, line if _names_columns(line, target) else None
    return notes, ""


def _names_columns(line: str, target: str) -> bool:
    """Whether a CSV line names a census column or the label (`target`, or `salary`), in
    any spelling the contract takes (`canonical_name`): a header, not a row of values."""
    known = {*COLUMNS, TARGET, canonical_name(target)}
    fields = _first_record(line)
    return any(canonical_name(field) in known for field in fields or line.split(","))


def _first_record(text: str) -> list[str] | None:
    """The fields of CSV `text`'s first record (None where the csv module cannot read it)."""
    try:
        return next(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True), [])
    except csv.Error:
        return None


def refuse_repeated_names(text: str) -> list[str] | None:
    """Refuse CSV `text` whose header (its first record) names a column twice
    (`contract.canonical_columns`), before pandas would rename the second (`age.1`) and
    read the row's first value where a JSON row gives its last; else the header's names
    as written (None where the csv module cannot read the line: pandas words why)."""
    names = _first_record(text)
    if names is not None:
        canonical_columns(names)
    return names


def names_as_written(names: Sequence[str], written: Sequence[str] | None) -> list[str]:
    """pandas' names of a CSV file's columns, with "" where the header (`written`, its
    names as `refuse_repeated_names` gives them) left one empty: pandas says `Unnamed: 3`,
    and a name passed through must come back as it was."""
    if written is None or len(written) != len(names):
        return list(names)
    return [name if given else "" for name, given in zip(names, written, strict=True)]


def read_csv_text(
    source: IO[str],
    *,
    header: bool = True,
    skip: int = 0,
    chunksize: int | None = None,
    line_offset: int = 0,
) -> Any:
    """CSV as text columns, exactly as written (ids keep their leading zeros): a DataFrame,
    or with `chunksize` a `CsvChunks` reader.

    Every row must give one value for each column (the header's, or without a header the
    census columns and the label): a row with fewer fields is refused, not padded with
    empty values, and one with more is refused too (`wrong_field_count` words both).
    `line_offset` lines after the header's come before `source` in the input, for messages.
    """
    expected = None if header else len(COLUMNS) + 1
    counted = _CountedFields(source, expected=expected, skip=skip, line_offset=line_offset)
    try:
        frame_or_reader = pd.read_csv(
            counted,
            header=0 if header else None,
            names=None if header else [*COLUMNS, TARGET],
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            skip_blank_lines=True,
            skiprows=skip,
            chunksize=chunksize,
        )
    except pd.errors.EmptyDataError:
        raise InputError("The CSV input is empty: expected a header row and data rows.") from None
    except pd.errors.ParserError as exc:
        raise counted.malformed(exc) from None
    if chunksize is not None:
        return CsvChunks(frame_or_reader, counted)
    counted.finish()
    counted.check()
    return frame_or_reader


def wrong_field_count(line: int, fields: int, expected: int, *, header: bool = True) -> str:
    """The one message for a CSV row with more or fewer fields than there are columns."""
    columns = (
        f"the header names {expected}"
        if header
        else f"a file without a header row has {expected} columns (the census columns and the "
        "label)"
    )
    return (
        f"Line {line} has {fields} field{'' if fields == 1 else 's'}; {columns}. Give every row "
        "a value for each column (empty is allowed; quote a value that holds a comma)."
    )


class CsvChunks:
    """`read_csv_text`'s rows a chunk at a time; a chunk that holds a row of the wrong width
    fails (pandas fails the chunk of a row too long; the count fails that of one too short)."""

    def __init__(self, reader: Any, counted: _CountedFields) -> None:
        self._reader = reader
        self._counted = counted
        self._rows = 0

    def get_chunk(self, size: int) -> pd.DataFrame:
        """The next `size` rows or fewer; StopIteration after the last."""
        try:
            frame = self._reader.get_chunk(size)
        except StopIteration:
            self._counted.finish()
            self._counted.check()
            raise
        except pd.errors.ParserError as exc:
            raise self._counted.malformed(exc) from None
        self._rows += len(frame)
        self._counted.check(self._rows)
        return frame


class _OutOfText(Exception):
    """The text read so far ends (inside a row, or where one would start)."""


def _then_out_of_text(lines: list[str]) -> Iterator[str]:
    yield from lines
    raise _OutOfText


@dataclass(frozen=True, slots=True)
class _Refusal:
    row: int  # the refused row's place among the data rows (0-based, as pandas gives them)
    message: str


class _CountedFields(io.TextIOBase):
    """The text pandas reads, each row's fields counted by the csv module on the way.

    pandas' C parser pads a row with fewer fields than the header with empty values, as if
    they had been written empty, and its line numbers skip line breaks inside quotes. The
    csv module splits the same fields (spaces that open one dropped, quotes doubled), so a
    second reading tells the two apart and names the physical line. It reads each piece
    pandas reads as a whole (lines without a quote by their commas, with numpy; others by
    the csv module in one call) and goes row by row only when a width is off, or a row
    goes on past the piece. On 1M rows, pandas takes a tenth longer with the count (rows
    without quotes), or 60% longer when every row holds a quote.
    """

    def __init__(
        self, source: IO[str], *, expected: int | None, skip: int, line_offset: int
    ) -> None:
        self._source = source
        self._line_offset = line_offset  # (`read_csv_text`)
        self._header = expected is None
        self.expected = expected  # the number of columns, once known
        self._skip = skip  # lines before the header (notes), which pandas skips
        self._pieces: list[str] = []  # text not yet counted (from the start of a record)
        self._size = 0
        self._count_at = 0  # a long unfinished record is counted again only when doubled
        self._after_cr = False  # the text counted ends in \r (and its \n may come next)
        self._line = 1  # the line the text not yet counted starts on (as `source` numbers it)
        self._shift = 0  # what to add to line numbers once the header is read
        self._rows = 0  # the data rows counted
        self._refusal: _Refusal | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        text = self._source.read(size)
        if self._refusal is None and not self._done:
            self._pieces.append(text)
            self._size += len(text)
            if not text or size is None or size < 0:
                self.finish()
            elif self._size >= self._count_at:
                self._count(final=False)
        return text

    def finish(self) -> None:
        """Count what is left: the text pandas has read ends there."""
        if self._refusal is None and not self._done:
            self._count(final=True)
            self._done = True

    def check(self, rows: int | None = None) -> None:
        """Refuse the first row of the wrong width, if it is among the first `rows` rows
        (None: anywhere in the text counted)."""
        if self._refusal is not None and (rows is None or self._refusal.row < rows):
            raise InputError(self._refusal.message)

    def malformed(self, exc: pd.errors.ParserError) -> InputError:
        """The error for what pandas could not parse: the row of the wrong width where the
        count found one (it numbers lines as the file does), else pandas' words."""
        self.finish()
        if self._refusal is not None:
            return InputError(self._refusal.message)
        offset = self._line_offset
        message = re.sub(r"(?<=line )\d+", lambda found: str(int(found[0]) + offset), str(exc))
        return InputError(f"The CSV input is malformed: {message}")

    def _count(self, *, final: bool) -> None:
        text = "".join(self._pieces)
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # (the end of a \r\n that the pieces split: no line of its own)
        if final and text and not text.endswith(("\n", "\r")):
            text += "\n"  # (so that the csv module ends the last row as pandas does)
        # A last line without its end may go on in the next piece. (One that has it is
        # counted now: pandas may give its row before reading on.)
        cut = max(text.rfind("\n"), text.rfind("\r")) + 1
        text, rest = text[:cut], text[cut:]
        self._after_cr = unfinished = False
        if self._skip or self.expected in (None, 1) or not self._plain_widths(text):
            lines = io.StringIO(text, newline="").readlines()
            skipped = min(self._skip, len(lines))
            self._skip -= skipped
            self._line += skipped
            lines = lines[skipped:]
            done = self._widths(lines)
            if done > len(lines):  # (a width is off, a row goes on, or the header is to come)
                done = self._row_by_row(lines)
            self._line += done
            unfinished = done < len(lines)
            self._after_cr = not rest and not unfinished and text.endswith("\r")
            rest = "".join([*lines[done:], rest])
        self._pieces, self._size = [rest], len(rest)
        self._count_at = 2 * len(rest) if unfinished else 0

    def _plain_widths(self, text: str) -> bool:
        """Count whole lines without a quote (or a lone \\r) by their commas, all at once;
        False when a row needs a closer look."""
        if '"' in text or text.count("\r") != text.count("\r\n"):
            return False
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        ends = np.flatnonzero(data == ord("\n"))
        widths = np.diff(np.searchsorted(np.flatnonzero(data == ord(",")), ends), prepend=0) + 1
        lengths = np.diff(ends, prepend=-1) - 1
        blank = (lengths == 0) | ((lengths == 1) & (data[ends - 1] == ord("\r")))
        if not np.all(blank | (widths == self.expected)):
            return False
        self._rows += len(ends) - int(np.count_nonzero(blank))
        self._line += len(ends)
        return True

    def _widths(self, lines: list[str]) -> int:
        """Count whole lines by the csv module, all at once: the lines they take, or more
        than all when a row needs a closer look (or the header is to come)."""
        if self.expected in (None, 1):
            return len(lines) + 1
        try:  # (a blank line ends them: inside quotes, it joins a row of at least one field)
            widths = list(map(len, csv.reader([*lines, "\n"], skipinitialspace=True)))
        except csv.Error:
            return len(lines) + 1
        if widths.pop() != 0 or not set(widths) <= {0, self.expected}:  # (blank: no field)
            return len(lines) + 1
        self._rows += len(widths) - widths.count(0)
        return len(lines)

    def _row_by_row(self, lines: list[str]) -> int:
        """Count row by row, naming the first of the wrong width; the lines counted."""
        reader = csv.reader(_then_out_of_text(lines), skipinitialspace=True)
        done = 0
        while self._refusal is None:
            line = self._line + done + self._shift
            try:
                fields = len(next(reader))
            except (StopIteration, _OutOfText):
                break
            except csv.Error as exc:  # a field longer than the csv module takes
                self._refuse(
                    f"Line {line} cannot be read as CSV: {exc}. A census value takes a few "
                    "dozen characters: is a quote left open?"
                )
                break
            first, done = lines[done], reader.line_num
            if fields == 0 or (fields == 1 and not first.strip(" \t\r\n")):
                continue  # a blank line (or one of spaces and tabs): pandas skips it too
            if self.expected is None:
                self.expected, self._shift = fields, self._line_offset
            elif fields != self.expected:
                self._refuse(wrong_field_count(line, fields, self.expected, header=self._header))
            else:
                self._rows += 1
        return done

    def _refuse(self, message: str) -> None:
        self._refusal = _Refusal(self._rows, message)


def parse_labels(column: pd.Series, name: str = TARGET) -> tuple[pd.Series, list[RowProblem]]:
    """1 for >50K, 0 for <=50K (a trailing period, as in adult.test, is allowed); a
    problem names the label column `name`."""
    text = column.astype(str).str.strip().str.rstrip(".")
    labels = text.map(LABELS)
    bad = labels.isna()
    problems = [
        RowProblem(
            int(i) + 1,
            name,
            f"got {show_value(column.iloc[i])}; expected {' or '.join(LABELS)}",
        )
        for i in np.flatnonzero(bad.to_numpy())
    ]
    return labels.fillna(0).astype("int8"), problems


def summarise(problems: list[RowProblem], source: Path | str) -> str:
    """One message for a list of problems, naming the first few."""
    shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_IN_MESSAGE])
    more = len(problems) - MAX_PROBLEMS_IN_MESSAGE
    tail = f" (and {more} more)" if more > 0 else ""
    return (
        f"{len(problems)} invalid value(s) in {source}: {shown}{tail}. Fix the rows and try again."
    )
