"""CSV rows for `census predict`, read fast and cleaned by the one rule.

CSV follows one cleaning rule, `data.read_csv_text` (pandas: text as written, spaces
after a comma dropped, `""` kept as empty text, blank lines skipped, a row with fewer or
more fields than the header refused by its line). Most files are
plain (no quote character, one line per row, every row complete), and for those
pyarrow's multi-threaded reader gives exactly what that rule gives once the spaces
that open a field are dropped, several times faster. So blocks of plain lines go
through pyarrow, and at the first block that is not plain (a quote, a short or long
row, a blank line of spaces, an old Mac line end, bytes that are not UTF-8) the rest of
the input goes through `read_csv_text` itself, which also words any error. A chunk
also gives each census column as its distinct values and, per row, the index of its
value (`contract.DistinctColumn`); Parquet tables (`parquet_rows`) are chunked the same way.
`rows.read_rows` is the door; this module is imported only for CSV and Parquet input, so
JSON input never loads pyarrow.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from census_salary.contract import COLUMNS, ColumnTable, DistinctColumn, canonical_columns
from census_salary.rows import BLOCK_BYTES, MAX_ROW_CHARS, ByteStream, RowChunk, too_long

if TYPE_CHECKING:
    import pyarrow as pa


def csv_chunks(stream: ByteStream, chunk_size: int) -> Iterator[RowChunk]:
    """CSV rows in chunks of `chunk_size`: plain blocks through pyarrow, the rest (from the
    first block that is not plain) through `data.read_csv_text`."""
    chunker = TableChunker(chunk_size)
    for table in _csv_tables(stream, chunker):
        yield from chunker.add(table)
        if stream.paused:  # the rows read so far, now, not when a chunk is full
            yield from chunker.release()
    yield from chunker.flush()


def _csv_tables(stream: ByteStream, chunker: TableChunker) -> Iterator[pa.Table]:
    """The input's rows as tables of text, a block at a time."""
    blocks = _line_blocks(stream)
    header = next(blocks, b"")
    names = _plain_header(header)
    if names is None:  # (pandas reads it: data.py's import of it costs nothing more)
        from census_salary.data import names_as_written, refuse_repeated_names

        written = refuse_repeated_names(header.decode("utf-8", errors="replace"))
        for table in _pandas_tables([header], blocks, chunker, line_offset=0):
            yield table.rename_columns(names_as_written(table.column_names, written))
        return
    yield _empty_table(names)  # a header alone still gives the output its header
    lines_read, last_line = header.count(b"\n"), b""
    for block in blocks:
        table = _plain_block(block, names)
        if table is None:
            # From here on, pandas reads. A line it has already read comes first, so that
            # it judges the first row as it would have mid-file; that row is dropped.
            context = [last_line] if last_line else []
            yield from _pandas_tables(
                [header, *context, block],
                blocks,
                chunker,
                line_offset=lines_read - 1 - len(context),
                skip_rows=len(context),
            )
            return
        # numpy counts without holding the interpreter's lock, and 5 times as fast
        lines_read += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))
        if table.num_rows:  # (a block may hold only blank lines)
            last_line = block.rstrip(b"\r\n").rpartition(b"\n")[2] + b"\n"
        yield table


def _line_blocks(stream: ByteStream) -> Iterator[bytes]:
    """The header line, then blocks of whole lines (the last may lack its line end): of
    about BLOCK_BYTES, or the whole lines read so far when the input pauses. A line longer
    than MAX_ROW_CHARS is refused once that much of it has been read (/dev/zero, a sparse
    file), not held in memory whole."""
    pieces: list[bytes] = []
    size = 0
    header_done = False
    lines = 0  # line breaks given out, for the message
    unended = 0  # bytes read since the last line end
    while True:
        data = stream.read(BLOCK_BYTES)
        pieces.append(data)
        size += len(data)
        # (old Mac files end their lines with \r alone: pandas reads those)
        last_end = max(data.rfind(b"\n"), data.rfind(b"\r"))
        unended = len(data) - last_end - 1 if last_end >= 0 else unended + len(data)
        if unended > MAX_ROW_CHARS:  # (bytes counted: a character takes one or more)
            raise too_long("Line", lines + sum(map(_line_ends, pieces)) + 1)
        if not header_done:
            if data and b"\n" not in data and size < BLOCK_BYTES:
                continue
            pending = b"".join(pieces)
            end = pending.find(b"\n") + 1 or len(pending)
            header_done = True
            header = pending[:end]
            lines += _line_ends(header)
            yield header
            pieces, size = [pending[end:]], len(pending) - end
        if not data:
            if rest := b"".join(pieces):
                yield rest
            return
        if (size >= BLOCK_BYTES and last_end >= 0) or stream.paused:
            pending = b"".join(pieces)
            end = (pending.rfind(b"\n") + 1) or (pending.rfind(b"\r") + 1)
            if end:
                block = pending[:end]
                lines += _line_ends(block)
                yield block
            pieces, size = [pending[end:]], len(pending) - end


def _line_ends(text: bytes) -> int:
    """The lines `text` ends, for messages: by \n, or by \r in a file of old Mac lines."""
    return text.count(b"\n") or text.count(b"\r")


def _is_plain(text: bytes) -> bool:
    """No quote, and every line ends in \\n or \\r\\n (pyarrow and pandas agree on it)."""
    return b'"' not in text and (b"\r" not in text or text.count(b"\r") == text.count(b"\r\n"))


def _plain_header(line: bytes) -> list[str] | None:
    """The column names pandas gives a plain header line (spaces that open a name dropped);
    None when the line is not plain: empty or repeated names, a quote, one column."""
    if not _is_plain(line):
        return None
    names = [name.lstrip(" ") for name in line.rstrip(b"\r\n").decode("utf-8").split(",")]
    if len(names) < 2 or "" in names or len(set(names)) < len(names):
        return None
    return names


def _plain_block(block: bytes, names: list[str]) -> pa.Table | None:
    """A block of plain lines as pyarrow reads it, spaces that open a field dropped; None
    when pyarrow and pandas could differ on it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    if not _is_plain(block):
        return None
    try:
        table = pcsv.read_csv(
            pa.py_buffer(block),
            read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 20),
            parse_options=pcsv.ParseOptions(ignore_empty_lines=True),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
            memory_pool=arrow_pool(),
        )
    except pa.ArrowInvalid:  # a short or long row, a line of spaces, bytes not UTF-8
        return None
    return pa.table(
        [pc.utf8_ltrim(column, " ", memory_pool=arrow_pool()) for column in table.columns],
        names=names,
    )


class TableChunker:
    """Tables in, chunks of `chunk_size` rows out (one empty chunk if no table has rows)."""

    def __init__(self, chunk_size: int) -> None:
        self.size = chunk_size
        self._pending: list[pa.Table] = []
        self.pending_rows = 0
        self._empty: pa.Table | None = None  # the columns, while no row has come
        self._rows_seen = False

    def add(self, table: pa.Table) -> Iterator[RowChunk]:
        import pyarrow as pa

        if not table.num_rows:
            self._empty = self._empty or table
            return
        self._rows_seen = True
        self._pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows < self.size:
            return
        whole = pa.concat_tables(self._pending, memory_pool=arrow_pool())
        full = whole.num_rows - whole.num_rows % self.size
        for start in range(0, full, self.size):
            yield table_chunk(whole.slice(start, self.size))
        # (no empty slice is kept: pyarrow's CSV writer, given a table with an empty chunk
        # at an offset, writes bytes from beyond it)
        self._pending = [whole.slice(full)] if whole.num_rows > full else []
        self.pending_rows = whole.num_rows - full

    def release(self) -> Iterator[RowChunk]:
        """The rows waiting for a chunk to fill, as a chunk of their own now (the input has
        paused: see `rows.ByteStream`)."""
        import pyarrow as pa

        if self.pending_rows:
            whole = pa.concat_tables(self._pending, memory_pool=arrow_pool())
            self._pending, self.pending_rows = [], 0
            yield table_chunk(whole, paused=True)

    def flush(self) -> Iterator[RowChunk]:
        """What is left (an empty chunk for an input without rows, as pandas gives)."""
        if self.pending_rows:
            yield from self.release()
        elif not self._rows_seen and self._empty is not None:
            yield table_chunk(self._empty)


def arrow_pool() -> pa.MemoryPool:
    """The memory pool of this module's pyarrow work (and `predict`'s): the C library's
    allocator, which hands freed memory back where pyarrow's default (mimalloc) keeps it,
    about 50 MB more at the peak of a large file."""
    import pyarrow as pa

    return pa.system_memory_pool()


def _empty_table(names: list[str]) -> pa.Table:
    import pyarrow as pa

    empty = pa.Array.from_buffers(
        pa.string(), 0, [None, pa.py_buffer(np.zeros(1, dtype=np.int32)), pa.py_buffer(b"")]
    )
    return pa.table([empty] * len(names), schema=_text_schema(names))


def _ints(array: pa.Array) -> np.ndarray:
    """An int32 arrow array without nulls as numpy, without a copy.

    Not `to_numpy`, nor `pa.array` the other way: they import pandas (to ask whether
    the data is pandas'), which costs this process a third of a second and 40 MB.
    """
    return np.frombuffer(
        array.buffers()[1], dtype=np.int32, count=len(array), offset=array.offset * 4
    )


def table_chunk(table: pa.Table, *, paused: bool = False) -> RowChunk:
    """A chunk of a table (CSV text, or Parquet), with its census columns as distinct
    values; `paused`: see `RowChunk`."""
    names = canonical_columns(table.column_names)
    distinct = {
        name: distinct_column(column)
        for name, column in zip(names, table.columns, strict=True)
        if name in COLUMNS
    }
    return RowChunk(table, ColumnTable(distinct), distinct, paused=paused)


def distinct_column(column: pa.ChunkedArray) -> DistinctColumn:
    """A column (text, or a Parquet column of any type) as its distinct values, nulls too.

    The values are the Python values pyarrow gives (`str`, `int`, `float`, None...), which
    `contract.check_columns` judges as it judges JSON values: text alike, whatever its
    arrow type; 37.0 as 37 and 37.5 refused; a number where a category belongs refused.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):  # (its indices may hold nulls, and its dictionary
        column = column.cast(column.type.value_type)  # repeats and differ between batches)
    whole = column.combine_chunks(memory_pool=arrow_pool())
    try:
        encoded = pc.dictionary_encode(whole, "encode", memory_pool=arrow_pool())
    except pa.ArrowNotImplementedError:  # lists, structs: no column takes them, row by row
        return DistinctColumn(whole.to_pylist(), np.arange(len(whole), dtype=np.int32))
    return DistinctColumn(encoded.dictionary.to_pylist(), _ints(encoded.indices))


def _pandas_tables(
    head: Sequence[bytes],
    rest: Iterator[bytes],
    chunker: TableChunker,
    *,
    line_offset: int,
    skip_rows: int = 0,
) -> Iterator[pa.Table]:
    """CSV through `data.read_csv_text`, the rule itself, as tables of text.

    pandas reads up to the end of the chunk under way, then a chunk at a time, so that a
    malformed line (a row of the wrong width too) fails the chunk it would have failed all
    along. `line_offset` lines come after the header's and before the rest of `head` in
    the input (for messages); the first `skip_rows` rows are dropped.
    """
    import pyarrow as pa

    from census_salary.data import read_csv_text

    text = io.TextIOWrapper(ByteStream(itertools.chain(head, rest)), encoding="utf-8", newline="")
    reader = read_csv_text(text, chunksize=chunker.size, line_offset=line_offset)
    size = chunker.size - chunker.pending_rows + skip_rows
    while True:
        try:
            frame = reader.get_chunk(size)
        except StopIteration:
            return
        table = pa.Table.from_pandas(frame.iloc[skip_rows:], preserve_index=False)
        yield table.cast(_text_schema(table.column_names)).replace_schema_metadata(None)
        size, skip_rows = chunker.size, 0


def _text_schema(names: list[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(name, pa.string()) for name in names])
