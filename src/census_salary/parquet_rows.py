"""Parquet rows for `census predict`, read by record batches.

A Parquet file is read a batch of `chunk_size` rows at a time (`ParquetFile.iter_batches`,
which decodes one row group after another), never whole. Its columns keep their types;
each chunk gives its census columns as distinct values (`csv_rows.distinct_column`), the
same path as CSV, so `contract.check_columns` judges the values: text as in CSV, numbers
as JSON numbers. `rows.read_rows` is the door; this module (and `pyarrow.parquet`) is
imported only for Parquet input.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

from census_salary.csv_rows import TableChunker
from census_salary.errors import InputError
from census_salary.rows import ByteStream, RowChunk


def parquet_chunks(
    seekable: IO[bytes] | None, pieces: Iterable[bytes], chunk_size: int
) -> Iterator[RowChunk]:
    """A Parquet file's rows in chunks of `chunk_size` (one empty chunk if it has none).

    `seekable` is the file, at its start, when it can seek; otherwise `pieces` (its
    bytes) are copied to a temporary file first, since Parquet is read from its end.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with contextlib.ExitStack() as stack:
        if seekable is None:
            seekable = stack.enter_context(tempfile.TemporaryFile(prefix="census-"))
            shutil.copyfileobj(ByteStream(iter(pieces)), seekable, 1 << 20)
        seekable.seek(0)
        try:
            parquet = stack.enter_context(pq.ParquetFile(seekable))
            schema = parquet.schema_arrow.remove_metadata()
            batches = parquet.iter_batches(batch_size=chunk_size, use_pandas_metadata=False)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"The Parquet input cannot be read: {exc}") from None
        chunker = TableChunker(chunk_size)
        yield from chunker.add(schema.empty_table())  # no row: the output still has columns
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:  # a row group cut off or corrupt
                raise InputError(f"The Parquet input cannot be read: {exc}") from None
            if batch is None:
                break
            table = pa.Table.from_batches([batch], schema=schema)
            yield from chunker.add(table)
        yield from chunker.flush()
