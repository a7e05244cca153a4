"""Streams of rows for `census predict`: CSV, JSON (an array, `{"inputs": [...]}`, JSON
Lines) or Parquet.

Nothing is read whole: CSV and JSON Lines stream by chunk, and a JSON array is decoded
element by element. Each chunk carries the caller's rows (for the output) and its
census columns (for `contract.check_columns`, the one check every door runs).

CSV is read by `csv_rows` (pyarrow for plain blocks, the one cleaning rule of
`data.read_csv_text` for the rest). A CSV chunk also gives each census column as its
distinct values and, per row, the index of its value (`DistinctColumn`): the check
decides each value on its own, so checking the few distinct values decides every row.
Parquet is read by `parquet_rows`, by record batches, into the same chunks.

JSON rows are numbered as a person finds them: the Nth row of an array is row N, and a
row of JSON Lines is named by its line in the file, blank lines counted, as an editor
numbers it (`JsonRowProblem`).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import select
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar

from census_salary.contract import (
    SHORTEST_TOO_DEEP,
    Columns,
    DistinctColumn,
    TooDeepError,
    canonical_records,
    decode_json,
    refuse_half_surrogates,
    refuse_too_deep,
    too_many_digits,
)
from census_salary.errors import InputError, RowProblem

if TYPE_CHECKING:
    import pyarrow as pa

InputFormat = Literal["csv", "json", "jsonl", "parquet"]
Unit = Literal["row", "line"]  # what a JSON row's number counts: rows, or lines of the file
# What a file's suffix says it holds (`named_format`).
SUFFIX_FORMATS: dict[str, InputFormat] = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
PARQUET_MAGIC = b"PAR1"  # the first (and last) bytes of a Parquet file
MAX_ROW_CHARS = 1 << 20  # one JSON row may take this much text; a census row takes ~300
BLOCK_BYTES = 1 << 20  # CSV is parsed in blocks of about this many bytes (~8,000 rows)


def too_long(unit: str, number: int | None) -> InputError:
    """A row or line past MAX_ROW_CHARS, refused as soon as that much of it is read."""
    return InputError(
        f"{unit} {number} is longer than {MAX_ROW_CHARS:,} characters; "
        "a census row is a few hundred."
    )


_PEEK_BYTES = 64 * 1024
# A pipe with nothing more to read for this long has paused (`ByteStream.paused`): the
# rows read so far are scored and written without waiting for more.
PAUSE_SECONDS = 0.05
_PIECE_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
T = TypeVar("T")


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class JsonRowProblem(RowProblem):
    """A bad JSON row, named by its `unit`: `row N` of an array, `line N` of JSON Lines;
    a row refused whole (not an object) names no field."""

    unit: Unit = "row"

    def __str__(self) -> str:
        where = f"{self.unit} {self.row}"
        return (
            f"{where}, field {self.field!r}: {self.message}"
            if self.field
            else f"{where}: {self.message}"
        )


@dataclass(frozen=True)
class RowChunk:
    """Some rows of the input: as the caller gave them, and as census columns.

    `table` is a pyarrow Table of text for CSV and a list of objects for JSON (census
    fields under their canonical names). `columns` holds the census columns row by row,
    for `contract.check_columns`; for CSV, `distinct` holds the same columns as
    distinct values, and `columns` is decoded from them only if it is read.

    JSON rows carry their `numbers` in the input (each a `unit`: a row, or a line of JSON
    Lines), and the problems of the rows left out as they were read (`refused`: not
    objects, or a field given twice). A chunk cut short because the input `paused` (see
    `ByteStream`) is to be scored and written at once, not held back for the next one.
    """

    table: pa.Table | list[dict[str, Any]]
    columns: Columns
    distinct: Mapping[str, DistinctColumn] | None = None
    numbers: Sequence[int] | None = None
    unit: Unit = "row"
    refused: tuple[RowProblem, ...] = ()
    paused: bool = False  # the input paused after these rows: score and write them now

    def __len__(self) -> int:
        return len(self.table)

    @property
    def column_names(self) -> list[str]:
        return column_names(self.table)

    def problems(self, checked: list[RowProblem], first_row: int) -> list[RowProblem]:
        """Every problem of the chunk's rows, in row order: those left out as they were read
        (`refused`) and those `check_columns(self.columns, first_row)` found (`checked`),
        under the numbers the input gives their rows (the same, unless the chunk has
        `numbers`)."""
        if self.numbers is not None:
            checked = [
                JsonRowProblem(self.numbers[p.row - first_row], p.field, p.message, self.unit)
                for p in checked
            ]
        return sorted([*self.refused, *checked], key=lambda problem: problem.row)


def column_names(table: pa.Table | list[dict[str, Any]]) -> list[str]:
    """A table's columns (JSON rows: every field any row has, in order of appearance)."""
    if isinstance(table, list):
        return list(dict.fromkeys(itertools.chain.from_iterable(table)))
    return list(table.column_names)


def named_format(path: str | PurePath | None) -> InputFormat | None:
    """The format a file's suffix names (`SUFFIX_FORMATS`, any case); None for another
    suffix, or no file."""
    return SUFFIX_FORMATS.get(PurePath(path).suffix.lower()) if path is not None else None


_INPUTS_KEY = re.compile(r'\{\s*"inputs"\s*:')


def detect_format(head: str) -> InputFormat:
    """Guess the format from the first characters of the input."""
    stripped = head.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        first_line, *rest = stripped.split("\n", 1)
        try:
            value = json.loads(first_line)
        except json.JSONDecodeError:
            if not rest:  # a first line longer than the head: what its first key says
                return "json" if _INPUTS_KEY.match(stripped) else "jsonl"
            return "json"  # an object spread over several lines: {"inputs": [...]}
        except (ValueError, RecursionError):
            return "jsonl"  # a whole line beyond Python's limits: reading it will say so
        return "json" if isinstance(value, dict) and "inputs" in value else "jsonl"
    return "csv"


def read_rows(
    source: IO[bytes] | IO[str],
    fmt: InputFormat | None,
    chunk_size: int,
    *,
    name: str | PurePath | None = None,
) -> tuple[InputFormat, Iterator[RowChunk]]:
    """The input's format and its raw rows in chunks of `chunk_size`.

    The format is `fmt`, else detected from the first characters: Parquet by its magic
    bytes, JSON by a leading `[` or `{` (JSON Lines when the first line is a whole object
    other than `{"inputs": ...}`, or when the file's `name` ends in .jsonl or .ndjson),
    else CSV. "json" given covers JSON Lines too, as files of JSON Lines are often named
    .json.

    `source` is UTF-8 bytes (a text stream is taken too), or a Parquet file (detected by
    its first bytes, `PAR1`). Nothing is read whole: CSV and JSON Lines stream by chunk,
    a JSON array (or the array in `{"inputs": [...]}`) is decoded element by element, and
    Parquet is read by record batches. Parquet is read from its end, so a source that
    cannot seek back to its start (a pipe) is first copied to a temporary file. Rows keep
    the caller's columns and values; census fields in JSON rows take their canonical names.
    A JSON row that is not an object, or gives a field twice, is left out of its chunk and
    named in the chunk's `refused` (`RowChunk.problems` lists them with the check's).
    """
    start = _seekable_start(source)
    pieces = _Pieces(source)
    head = b""
    for piece in pieces:  # a pipe may give less than asked: gather the head, or the first
        head += piece  # line if the writer has paused (its rows are not held back)
        if len(head) >= _PEEK_BYTES or (pieces.short and b"\n" in head):
            break
    if fmt == "parquet" or (fmt is None and head.startswith(PARQUET_MAGIC)):
        if isinstance(source, io.TextIOBase):
            raise InputError("Parquet is binary: read it from a byte stream, not text.")
        if not head:
            raise InputError("The input is empty: expected a Parquet file.")
        from census_salary.parquet_rows import parquet_chunks  # pyarrow.parquet: only here

        seekable = source if start == 0 else None
        return "parquet", parquet_chunks(seekable, itertools.chain([head], pieces), chunk_size)
    head = head.removeprefix(_BOM)
    text = head[:_PEEK_BYTES].decode("utf-8", errors="replace")
    if not text.strip("\ufeff \t\r\n"):
        raise InputError("The input is empty: expected CSV, JSON, JSON Lines or Parquet rows.")
    detected = detect_format(text)
    named = named_format(name)
    if detected == "json" and named == "jsonl":
        detected = "jsonl"  # named so: its first line is a row, whatever it holds
    hint = None  # (JSON named .jsonl, or JSON Lines named .json, is read as it is)
    if fmt is None and named not in (None, detected) and not {detected, named} <= _JSON:
        hint = _read_as(detected, named)
    fmt = "jsonl" if fmt == "json" and detected == "jsonl" else fmt or detected
    stream = ByteStream(itertools.chain([head], pieces), lambda: pieces.short)
    if fmt == "csv":
        from census_salary.csv_rows import csv_chunks  # pyarrow: only for CSV

        return fmt, _explained(csv_chunks(stream, chunk_size), name, hint)
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    chunks = _json_chunks(text, fmt, chunk_size, lambda: stream.paused)
    return fmt, _explained(chunks, name, hint)


_JSON = {"json", "jsonl"}
_FORMAT_NAMES: dict[InputFormat, str] = {
    "csv": "CSV",
    "json": "JSON",
    "jsonl": "JSON Lines",
    "parquet": "Parquet",
}


def _read_as(detected: InputFormat, named: InputFormat) -> str:
    """What to say when an input whose content and name disagree on its format fails."""
    return (
        f"it was read as {_FORMAT_NAMES[detected]}, as its first characters say, though "
        f"its name says {_FORMAT_NAMES[named]}: pass --format {named} to read it so"
    )


def _explained(
    chunks: Iterator[RowChunk], name: str | PurePath | None, hint: str | None
) -> Iterator[RowChunk]:
    """The chunks of a text input, with what fails reading them said in full: bytes that
    are not UTF-8 (wherever they are found: a CSV header, a line, a JSON string), and,
    where the input's content and name disagree on its format, which one it was read as."""
    try:
        yield from chunks
    except UnicodeDecodeError as exc:
        where = name or "The input"
        raise InputError(
            f"{where} is not UTF-8 text ({exc.reason}); save it as UTF-8 and try again."
        ) from None
    except InputError as exc:
        if hint is None:
            raise
        raise InputError(f"{str(exc).rstrip('.')} ({hint}).", exc.problems) from None


def _seekable_start(source: IO[bytes] | IO[str]) -> int | None:
    """Where a byte source that can seek stands now (None for a pipe or text)."""
    if isinstance(source, io.TextIOBase):
        return None
    try:
        return source.tell() if source.seekable() else None
    except (OSError, ValueError):
        return None


class _Pieces:
    """The source's bytes, a piece at a time (text is read in smaller pieces, so that a
    JSON reader that fails early has read little of it).

    `short` says whether the source has paused: a pipe, socket or terminal that gave
    less than asked and nothing more within PAUSE_SECONDS (a writer that sends rows now
    and then). A file never pauses, and a steady writer's pipe refills before that.
    """

    def __init__(self, source: IO[bytes] | IO[str]) -> None:
        self._source = source
        self._text = isinstance(source, io.TextIOBase)
        self._size = _PEEK_BYTES if self._text else _PIECE_BYTES
        self._fd = None if self._text else _pausable_descriptor(source)
        self.short = False

    def __iter__(self) -> _Pieces:
        return self

    def __next__(self) -> bytes:
        data = self._source.read(self._size)
        if not data:
            raise StopIteration
        self.short = (
            self._fd is not None
            and len(data) < self._size
            and not select.select([self._fd], [], [], PAUSE_SECONDS)[0]
        )
        return data.encode("utf-8") if isinstance(data, str) else data


def _pausable_descriptor(source: IO[bytes] | IO[str]) -> int | None:
    """The source's file descriptor if it is a pipe, a socket or a terminal."""
    try:
        fd = source.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):  # (io.UnsupportedOperation is an OSError)
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd) else None


class ByteStream(io.RawIOBase):
    """A readable byte stream over pieces of bytes (what was peeked, then the rest).

    `paused` says whether every byte the source has given is read and its last read was
    `short` (a pipe whose writer has nothing more for now): the readers then pass on the
    rows they hold rather than wait for a full block or chunk, so that rows written
    slowly (`tail -f rows.csv | census predict`) are scored as they come.
    """

    def __init__(self, pieces: Iterator[bytes], short: Callable[[], bool] = _never) -> None:
        self._pieces = pieces
        self._piece = memoryview(b"")
        self._short = short

    @property
    def paused(self) -> bool:
        return not self._piece and self._short()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when `size` is negative); b"" at the end."""
        if size is None or size < 0:
            rest = bytes(self._piece) + b"".join(self._pieces)
            self._piece = memoryview(b"")
            return rest
        while not self._piece:
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._piece = memoryview(piece)
        data, self._piece = self._piece[:size], self._piece[size:]
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# --- JSON --------------------------------------------------------------------------------


def _json_chunks(
    stream: IO[str], fmt: InputFormat, chunk_size: int, paused: Callable[[], bool] = _never
) -> Iterator[RowChunk]:
    """JSON rows: checked as the Python values they are, written back as given (census
    fields under their canonical names); rows that are not objects of fields set aside.
    A chunk is cut short where the input has `paused` (see `ByteStream`)."""
    unit: Unit = "line" if fmt == "jsonl" else "row"
    numbered = _iter_jsonl(stream) if fmt == "jsonl" else _iter_json_array(stream)
    while batch := _batch(numbered, chunk_size, paused):
        numbers, values = zip(*batch, strict=True)
        records = canonical_records(values, numbers)
        refused = tuple(JsonRowProblem(p.row, p.field, p.message, unit) for p in records.refused)
        yield RowChunk(
            records.rows, records.columns, None, records.numbers, unit, refused, paused()
        )


def _batch(items: Iterator[T], size: int, paused: Callable[[], bool]) -> list[T]:
    """Up to `size` items, fewer if the input pauses after one."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size or paused():
            break
    return batch


def _iter_jsonl(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """Each line's number in the file (for messages) and value; blank lines skipped. A line
    is read up to MAX_ROW_CHARS (and its line break) only, so a file that is one huge line
    is refused without being held in memory."""
    for number in itertools.count(1):
        line = stream.readline(MAX_ROW_CHARS + 2)
        if not line:
            return
        if len(line) > MAX_ROW_CHARS and line[MAX_ROW_CHARS:] not in ("\n", "\r", "\r\n"):
            raise too_long("Line", number)
        if not line.strip():
            continue
        try:
            value = decode_json(line, exact_integers=True)  # other keys are written back
        except json.JSONDecodeError as exc:
            raise InputError(f"Line {number} is not valid JSON: {exc.msg}.") from None
        except ValueError as exc:  # nested past MAX_NESTING, or a number beyond Python's limits
            raise InputError(f"Line {number} cannot be read as JSON rows: {exc}.") from None
        yield number, value


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

    def value(self, above: int, row: int | None = None) -> Any:
        """The next JSON value, `above` levels deep in the document; `row` is its number
        among the rows, for messages."""
        self.next_char()
        where = f" in row {row}" if row is not None else ""
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except RecursionError:  # far past MAX_NESTING: the stack gave out first
                raise InputError(
                    f"The JSON input cannot be read as rows{where}: {TooDeepError()}."
                ) from None
            except json.JSONDecodeError as exc:
                # Only an error at the buffer's end (or in an open string) can be a row cut
                # off by the block boundary; anything else is final, so a bad file fails at
                # once instead of being read whole.
                cut = exc.pos >= len(self._buffer) - 16 or exc.msg.startswith("Unterminated")
                if cut and len(self._buffer) - self._pos > MAX_ROW_CHARS:
                    raise too_long("Row", row) from None
                if cut and self._fill():
                    continue
                raise InputError(f"Invalid JSON input{where}: {exc.msg}.") from None
            except ValueError as exc:  # a number beyond Python's limits
                reason = too_many_digits(exc) or exc
                raise InputError(
                    f"The JSON input cannot be read as rows{where}: {reason}."
                ) from None
            # A value that ends the buffer (a number, say) may go on in the next block.
            if end == len(self._buffer) and self._fill():
                continue
            text = self._buffer[self._pos : end]
            try:
                if len(text) + 2 * above >= SHORTEST_TOO_DEEP:  # (no call for a short row)
                    refuse_too_deep(value, text, above)
                refuse_half_surrogates(value, text)
            except ValueError as exc:
                raise InputError(f"The JSON input cannot be read as rows{where}: {exc}.") from None
            self._pos = end
            return value

    def elements(self, above: int) -> Iterator[Any]:
        """The elements of the array next in the input, itself `above` levels deep."""
        self.expect("[", "'[' to open the list of rows")
        if self.next_char() == "]":
            self._pos += 1
            return
        for row in itertools.count(1):
            yield self.value(above + 1, row)
            if self.next_char() == ",":
                self._pos += 1
                continue
            self.expect("]", "',' or ']' after a row")
            return


def _iter_json_array(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """Each row's number (for messages) and value."""
    reader = _JsonArrayReader(stream)
    wrapped = reader.next_char() == "{"
    if wrapped:
        reader.expect("{", "'{'")
        key = reader.value(1)
        if key != "inputs":
            raise InputError(
                f'Invalid JSON input: expected {{"inputs": [...]}}, found key {key!r}.'
            )
        reader.expect(":", "':' after \"inputs\"")
    yield from enumerate(reader.elements(1 if wrapped else 0), start=1)
    if wrapped:
        reader.expect("}", 'the end of {"inputs": [...]} (no other keys are accepted)')
    if reader.next_char():
        raise InputError("Invalid JSON input: unexpected text after the rows.")
