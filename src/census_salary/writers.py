"""Scored rows (`ScoredChunk`) and how they are written: CSV, a JSON array, JSON Lines or
Parquet.

No DataFrame is built on the way: CSV goes out through pyarrow (Python's csv module for
a value that needs quoting, as pandas would quote it), JSON through orjson. Every float
(a probability, a contribution) is written as Python's repr writes it, so it reads
back as the same number: equal to the API's to the last bit. Parquet goes out through
pyarrow's ParquetWriter, a row group per chunk: the caller's columns with their types,
and the added ones as text (`prediction`) and float64.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
import orjson

from census_salary.contract import COLUMNS
from census_salary.csv_rows import arrow_pool
from census_salary.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

OutputFormat = Literal["csv", "json", "jsonl", "parquet"]
PREDICTION, PROBABILITY = "prediction", "probability"
CONTRIBUTION, BASE_VALUE = "contribution_", "base_value"


@dataclass(frozen=True)
class ScoredChunk:
    """Rows as the caller gave them (the good ones), with their predictions."""

    table: pa.Table | list[dict[str, Any]]  # as in `RowChunk`
    names: list[str]  # the caller's columns, those of rows left out too
    predictions: np.ndarray
    probabilities: np.ndarray
    # With --explain: each row's contribution of every contract column (log-odds), and
    # the model's base value; `contribution_<column>` and `base_value` in the output.
    contributions: np.ndarray | None = None
    base_value: float | None = None

    def __len__(self) -> int:
        return len(self.probabilities)

    @property
    def column_names(self) -> list[str]:
        """The caller's columns, then `prediction` and `probability` (and with
        explanations, one `contribution_<column>` per column and `base_value`)."""
        return [*self.names, PREDICTION, PROBABILITY, *self.explained_columns()]

    def explained_columns(self) -> dict[str, np.ndarray]:
        """The explanation columns by output name (none without --explain)."""
        if self.contributions is None:
            return {}
        columns = {
            f"{CONTRIBUTION}{name}": self.contributions[:, j] for j, name in enumerate(COLUMNS)
        }
        return {**columns, BASE_VALUE: np.full(len(self), self.base_value)}

    def records(self) -> Iterator[dict[str, Any]]:
        """One object per row: the chunk's fields (null where a row lacks one, as in a
        table), `prediction` and `probability`."""
        names = self.names
        rows = self.table if isinstance(self.table, list) else self.table.to_pylist()
        explained = {name: values.tolist() for name, values in self.explained_columns().items()}
        for i, (row, label, p) in enumerate(
            zip(rows, self.predictions.tolist(), self.probabilities.tolist(), strict=True)
        ):
            fields = row if len(row) == len(names) else {name: row.get(name) for name in names}
            yield {
                **fields,
                PREDICTION: label,
                PROBABILITY: p,
                **{name: values[i] for name, values in explained.items()},
            }

    def to_frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (for notebooks; the CLI never builds one)."""
        import pandas as pd

        if isinstance(self.table, list):
            frame = pd.DataFrame.from_records(self.table)
        else:
            frame = self.table.to_pandas()
        added = {PREDICTION: self.predictions, PROBABILITY: self.probabilities}
        return frame.assign(**added, **self.explained_columns())


def write_predictions(chunks: Iterable[ScoredChunk], fmt: OutputFormat, out: IO[bytes]) -> int:
    """Write scored chunks as CSV, a JSON array or JSON Lines; return the rows written.

    Nothing is written before the first chunk has been scored, so an input that fails at
    once leaves the output empty.
    """
    if fmt == "parquet":
        return _write_parquet(chunks, out)
    rows = 0
    header: list[str] | None = None
    opened = False
    for chunk in chunks:
        if fmt == "json" and not opened:
            out.write(b"[")
            opened = True
        if fmt == "csv":
            names = chunk.column_names
            if header is None:
                header = names
                out.write(_csv_text([header]))
            _same_columns(header, names, rows, "CSV")
            out.write(_csv_rows(chunk, header, rows + 1))
        elif len(chunk):
            if fmt == "jsonl":
                out.write(_json_rows(chunk, b"", b"\n", b"\n", rows + 1))
            else:
                first = b"\n" if rows == 0 else b",\n"
                out.write(_json_rows(chunk, first, b",\n", b"", rows + 1))
        rows += len(chunk)
    if fmt == "json":
        out.write((b"\n]\n" if rows else b"]\n") if opened else b"[]\n")
    return rows


def _same_columns(header: list[str], names: list[str], rows: int, fmt: str) -> None:
    if added := [c for c in names if c not in header]:
        raise InputError(
            f"Rows after row {rows} bring field(s) {', '.join(map(str, added))} that "
            f"earlier rows lack; {fmt} output needs one set of columns, so use "
            "--output-format json or jsonl."
        )


def _write_parquet(chunks: Iterable[ScoredChunk], out: IO[bytes]) -> int:
    """Each chunk as a row group; a failure leaves the output without its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    header: list[str] | None = None
    writer: pq.ParquetWriter | None = None
    gate = _Gate(out)
    try:
        for chunk in chunks:
            header = header or chunk.column_names
            _same_columns(header, chunk.column_names, rows, "Parquet")
            schema = writer.schema if writer is not None else None
            table = _arrow_table(chunk, header, schema, rows + 1)
            if writer is None:
                writer = pq.ParquetWriter(gate, table.schema)
            writer.write_table(table)
            rows += len(chunk)
        if writer is None:  # no chunk at all (an empty JSON array): the added columns only
            fields = [(PREDICTION, pa.string()), (PROBABILITY, pa.float64())]
            writer = pq.ParquetWriter(gate, pa.schema(fields))
        writer.close()
    except BaseException:
        gate.shut = True  # the writer, closed when it goes, must not write its footer
        raise
    return rows


class _Gate(io.RawIOBase):
    """A sink that passes writes to `out` until shut (and counts them, for `tell`)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._written = 0
        self.shut = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if not self.shut:
            self._out.write(data)
            self._written += size
        return size

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        if not self.shut:
            self._out.flush()


def _arrow_table(
    chunk: ScoredChunk, header: list[str], schema: pa.Schema | None, first_row: int
) -> pa.Table:
    """The scored rows as an arrow table: the caller's columns (as given, or for JSON rows
    as pyarrow types them) and the added ones; of `schema` (the first chunk's), if given."""
    import pyarrow as pa

    if isinstance(chunk.table, list):
        records = [{name: record.get(name) for name in header} for record in chunk.records()]
        try:
            return pa.Table.from_pylist(records, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise InputError(
                f"Rows {first_row} to {first_row + len(chunk) - 1} cannot go into one Parquet "
                f"table with the rows before them ({exc}); Parquet gives each column one "
                "type, so use --output-format json or jsonl."
            ) from None
    table = chunk.table.append_column(PREDICTION, _arrow_labels(chunk.predictions)).append_column(
        PROBABILITY, _arrow_floats(chunk.probabilities)
    )
    for name, values in chunk.explained_columns().items():
        table = table.append_column(name, _arrow_floats(values))
    table = table.replace_schema_metadata(None)
    return table if schema is None else table.cast(schema)


def _json_rows(
    chunk: ScoredChunk, before: bytes, between: bytes, after: bytes, first_row: int
) -> bytearray:
    """The rows as JSON objects, one a line; floats (the probability) in the shortest text
    that reads back as the same number, so they equal the API's to the last bit.
    `first_row` is the output's number of the chunk's first row, for messages.

    Each object is copied out at once: orjson gives each its own 8 kB buffer, and 50,000
    of them would hold 400 MB.
    """
    text = bytearray(before)
    for n, record in enumerate(chunk.records()):
        if n:
            text += between
        try:
            text += orjson.dumps(record)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits, or nested past 255
            try:  # levels, passed through (default: Parquet's decimals, say, as text)
                text += _json_text(record).encode()
            except RecursionError:
                raise _too_deep(record, first_row + n, _json_text) from None
    text += after
    return text


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _too_deep(record: dict[str, Any], row: int, write: Callable[[Any], Any]) -> InputError:
    """The error for a row (numbered as in the output) with a field nested past the stack.

    JSON rows are read up to `contract.MAX_NESTING` levels deep, which orjson writes; rows
    from elsewhere (a caller's own chunks) may nest deeper than Python can write.
    """
    field = next((name for name, value in record.items() if _overflows(write, value)), None)
    where = f"row {row}" if field is None else f"row {row}, field {field!r}"
    return InputError(
        f"The output cannot be written in {where}: it is nested too deeply to write; "
        "flatten that field or drop it from the input."
    )


def _overflows(write: Callable[[Any], Any], value: Any) -> bool:
    try:
        write(value)
    except RecursionError:
        return True
    return False


def _csv_rows(chunk: ScoredChunk, header: list[str], first_row: int) -> bytes | memoryview:
    """The rows in the header's columns, quoted only where needed (as pandas writes)."""
    if not isinstance(chunk.table, list) and chunk.column_names == header:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        table = chunk.table.append_column(
            PREDICTION, _arrow_labels(chunk.predictions)
        ).append_column(PROBABILITY, _float_text(chunk.probabilities))
        for name, values in chunk.explained_columns().items():
            table = table.append_column(name, _float_text(values))
        sink = pa.BufferOutputStream()
        options = pcsv.WriteOptions(include_header=False, quoting_style="none")
        try:
            pcsv.write_csv(table, sink, write_options=options, memory_pool=arrow_pool())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a comma, quote or line
            # break to quote; a Parquet type the writer lacks
            pass
        else:
            return memoryview(sink.getvalue())
    records = list(chunk.records())
    try:
        return _csv_text([[_csv_cell(record.get(name)) for name in header] for record in records])
    except RecursionError:  # a list or object nested past the stack (csv writes its repr)
        for n, record in enumerate(records):
            if _overflows(_csv_text, [list(record.values())]):
                raise _too_deep(record, first_row + n, repr) from None
        raise


def _csv_text(rows: Iterable[Iterable[Any]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


def _csv_cell(value: Any) -> Any:
    """A JSON value as pandas wrote it into CSV: nothing for null (and NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _arrow_floats(values: np.ndarray) -> pa.Array:
    import pyarrow as pa

    floats = np.ascontiguousarray(values, dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), len(floats), [None, pa.py_buffer(floats)])


def _float_text(p: np.ndarray) -> pa.Array:
    """Each float (a probability, a contribution) as Python's repr spells it: the shortest
    text that reads back as the same float. pyarrow finds the same digits, and spells them
    as repr does except for whole numbers, magnitudes below 1e-4 and from 1e9 (`0` for `0.0`,
    `0.00005` for `5e-05`); those few are spelled by repr."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _arrow_floats(p).cast(pa.string(), memory_pool=arrow_pool())
    size = np.abs(p)
    odd = (size < 1e-4) | (size >= 1e9) | (p == np.floor(p))
    if odd.any():
        text = pc.replace_with_mask(
            text,
            arrow_bools(odd),
            _arrow_strings([repr(x) for x in p[odd].tolist()]),
            memory_pool=arrow_pool(),
        )
    return text


# Arrow arrays are built from numpy's buffers here: `pa.array` imports pandas (to ask
# whether the data is pandas'), which would cost this process a third of a second.


def arrow_bools(mask: np.ndarray) -> pa.Array:
    import pyarrow as pa

    bits = np.packbits(mask.astype(bool, copy=False), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def _arrow_strings(texts: list[str]) -> pa.Array:
    import pyarrow as pa

    data = [text.encode() for text in texts]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(item) for item in data], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    )


def _arrow_labels(labels: np.ndarray) -> pa.Array:
    """A column of a few distinct texts (the predictions)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kinds, index = np.unique(labels, return_inverse=True)
    positions = np.ascontiguousarray(index.reshape(-1), dtype=np.int64)
    indices = pa.Array.from_buffers(pa.int64(), len(positions), [None, pa.py_buffer(positions)])
    return pc.take(_arrow_strings(kinds.tolist()), indices, memory_pool=arrow_pool())
