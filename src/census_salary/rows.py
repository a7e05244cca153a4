"""Streams of rows for `census predict`: CSV, a JSON array, `{"inputs": [...]}` or JSON Lines.

Nothing is read whole: CSV and JSON Lines stream by chunk, and a JSON array is decoded
element by element. Each chunk carries the caller's table (for the output) and its
census columns (for `contract.check_columns`, the one check every door runs).
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

import pandas as pd

from census_salary.contract import ABSENT, COLUMNS, Columns, as_record, columns_of_frame
from census_salary.data import read_csv_text
from census_salary.errors import InputError

InputFormat = Literal["csv", "json", "jsonl"]
MAX_ROW_CHARS = 1 << 20  # one JSON row may take this much text; a census row takes ~300


@dataclass(frozen=True)
class RowChunk:
    """Some rows of the input: as the caller gave them, and as census columns."""

    table: pd.DataFrame
    columns: Columns


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
) -> tuple[InputFormat, Iterator[RowChunk]]:
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


def _chunks(stream: IO[str], fmt: InputFormat, chunk_size: int) -> Iterator[RowChunk]:
    if fmt == "csv":
        try:
            for frame in read_csv_text(stream, chunksize=chunk_size):
                yield RowChunk(frame, columns_of_frame(frame))
        except pd.errors.ParserError as exc:  # the reader parses lazily, chunk by chunk
            raise InputError(f"The CSV input is malformed: {exc}") from None
        return
    records = _iter_jsonl(stream) if fmt == "jsonl" else _iter_json_array(stream)
    while batch := list(itertools.islice(records, chunk_size)):
        yield _record_chunk(batch)


def _record_chunk(records: list[dict[str, Any]]) -> RowChunk:
    """JSON rows: checked as the Python values they are, output as a table."""
    columns = {name: [record[name] for record in records] for name in COLUMNS}
    present = [{k: v for k, v in record.items() if v is not ABSENT} for record in records]
    return RowChunk(pd.DataFrame.from_records(present), columns)


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
        yield as_record(record, number)


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

    def value(self, row: int | None = None) -> Any:
        """The next JSON value; `row` is its number among the rows, for messages."""
        self.next_char()
        where = f" in row {row}" if row is not None else ""
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                # Only an error at the buffer's end (or in an open string) can be a row cut
                # off by the block boundary; anything else is final, so a bad file fails at
                # once instead of being read whole.
                cut = exc.pos >= len(self._buffer) - 16 or exc.msg.startswith("Unterminated")
                if cut and len(self._buffer) - self._pos > MAX_ROW_CHARS:
                    raise InputError(
                        f"Row {row} is longer than {MAX_ROW_CHARS:,} characters; "
                        "a census row is a few hundred."
                    ) from None
                if cut and self._fill():
                    continue
                raise InputError(f"Invalid JSON input{where}: {exc.msg}.") from None
            except (ValueError, RecursionError) as exc:  # beyond Python's limits
                raise InputError(f"The JSON input cannot be read as rows{where}: {exc}.") from None
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
        for row in itertools.count(1):
            yield self.value(row)
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
        yield as_record(element, number)
    if wrapped:
        reader.expect("}", 'the end of {"inputs": [...]} (no other keys are accepted)')
    if reader.next_char():
        raise InputError("Invalid JSON input: unexpected text after the rows.")
