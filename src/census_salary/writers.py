"""Scored rows (`ScoredChunk`) and how they are written: CSV, a JSON array, JSON Lines or
Parquet.

No DataFrame is built on the way: CSV goes out through pyarrow (Python's csv module for
a value that needs quoting, as pandas would quote it), JSON through orjson. Every float
(a probability, a contribution) is written as Python's repr writes it, so it reads
back as the same number: equal to the API's to the last bit. Parquet goes out through
pyarrow's ParquetWriter, a row group per chunk: the caller's columns with their types,
and the added ones as text (`prediction`) and float64.

Values a format has no type for are written one documented way, the same in every
format. A missing value (null, or a float NaN as pandas marks one) is an empty CSV field
and JSON's null; Parquet keeps what the input gave. An object or array passed through
(a JSON field, a Parquet struct, list or map; a map as an array of `[key, value]` pairs) is
its JSON text in a CSV field, as JSON output holds it. Bytes (a Parquet binary column)
are base64 text (RFC 4648, padded) in CSV and JSON: the text form JSON has for bytes
(BigQuery and Spark export them so), which reads back as the same bytes whatever they
hold, where decoding them as UTF-8 would fail on some and guess on others. In Parquet
output of JSON rows, a field that holds an object or array in any row is a text column
of each value's JSON text (field metadata `census_salary: JSON text`): pyarrow would
merge the objects into one struct, giving each the keys only others have as null, and
turn the 1 of `[1, 2.5]` into 1.0. A column Parquet cannot store at all is refused,
naming it.
"""

from __future__ import annotations

import base64
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
# The field metadata of a Parquet column of JSON text (`_records_table`).
JSON_TEXT = {b"census_salary": b"JSON text"}


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
    last: ScoredChunk | None = None
    for chunk in chunks:
        last = chunk
        if fmt == "json" and not opened:
            out.write(b"[")
            opened = True
        if fmt == "csv":
            if header is None and (len(chunk) or not isinstance(chunk.table, list)):
                header = _output_header(chunk)
                out.write(_csv_text([header]))
            if header is not None:
                _same_columns(header, chunk, rows, "CSV")
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
    if fmt == "csv" and header is None and last is not None:  # JSON input, no row written
        out.write(_csv_text([last.column_names]))
    return rows


def _output_header(chunk: ScoredChunk) -> list[str]:
    """The columns of CSV or Parquet output: a table's, or the first JSON row's (not those
    of the rows read with it, which depend on how the input arrived: a slow pipe gives
    smaller chunks, and the same rows must give the same output)."""
    if not isinstance(chunk.table, list):
        return chunk.column_names
    return [*chunk.table[0], *chunk.column_names[len(chunk.names) :]]


def _same_columns(header: list[str], chunk: ScoredChunk, rows: int, fmt: str) -> None:
    """Refuse a row with a field the header lacks, naming it (the first row decides)."""
    known = set(header)
    if isinstance(chunk.table, list):
        bad = next((n for n, row in enumerate(chunk.table) if not known.issuperset(row)), None)
        if bad is None:
            return
        added = [name for name in chunk.table[bad] if name not in known]
        where = f"Row {rows + bad + 1} of the output"
    else:
        added = [name for name in chunk.column_names if name not in known]
        if not added:
            return
        where = f"Rows after row {rows}"
    raise InputError(
        f"{where} brings field(s) {', '.join(map(str, added))} that the first row lacks; "
        f"{fmt} output takes its columns from the first row: give every field there (null "
        "where empty), or use --output-format json or jsonl."
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
            if header is None and not (isinstance(chunk.table, list) and not len(chunk)):
                header = _output_header(chunk)
            if header is None:  # JSON rows, none of them written yet
                continue
            _same_columns(header, chunk, rows, "Parquet")
            schema = writer.schema if writer is not None else None
            table = _arrow_table(chunk, header, schema, rows + 1)
            try:
                if writer is None:
                    writer = pq.ParquetWriter(gate, table.schema)
                writer.write_table(table)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise _unwritable(table, rows + 1, exc) from None
            rows += len(chunk)
        if writer is None:  # no chunk at all (an empty JSON array): the added columns only
            fields = [(PREDICTION, pa.string()), (PROBABILITY, pa.float64())]
            writer = pq.ParquetWriter(gate, pa.schema(fields))
        writer.close()
    except BaseException:
        gate.shut = True  # the writer, closed when it goes, must not write its footer
        raise
    return rows


def _unwritable(table: pa.Table, first_row: int, exc: Exception) -> InputError:
    """The error for rows pyarrow refuses to write to Parquet, naming the first column it
    refuses on its own (each is tried into a sink that keeps nothing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def refused(column: pa.Table) -> bool:
        try:
            with pq.ParquetWriter(pa.MockOutputStream(), column.schema) as writer:
                writer.write_table(column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return True
        return False

    field = next((f for i, f in enumerate(table.schema) if refused(table.select([i]))), None)
    where = f"Rows {first_row} to {first_row + len(table) - 1}" if len(table) else "The rows"
    instead = "Write CSV or JSON output instead (--output-format csv, json or jsonl)"
    if field is None:
        return InputError(f"{where} cannot be written as Parquet ({exc}). {instead}.")
    return InputError(
        f"{where} cannot be written as Parquet: it cannot store column {field.name!r} of "
        f"type {field.type} ({exc}). {instead}, or drop that column from the input."
    )


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
    as `_records_table` types them) and the added ones; of `schema` (the first chunk's),
    if given."""
    if isinstance(chunk.table, list):
        records = [{name: record.get(name) for name in header} for record in chunk.records()]
        return _records_table(records, header, schema, first_row)
    table = chunk.table.append_column(PREDICTION, _arrow_labels(chunk.predictions)).append_column(
        PROBABILITY, _arrow_floats(chunk.probabilities)
    )
    for name, values in chunk.explained_columns().items():
        table = table.append_column(name, _arrow_floats(values))
    table = table.replace_schema_metadata(None)
    return table if schema is None else table.cast(schema)


def _records_table(
    records: list[dict[str, Any]], names: list[str], schema: pa.Schema | None, first_row: int
) -> pa.Table:
    """JSON rows as an arrow table, typed as pyarrow types them, except that a field with an
    object or array in any row is a column of each value's JSON text (`JSON_TEXT`); after
    the first chunk, the fields `schema` marks so. `records` are the caller's to change."""
    import pyarrow as pa

    if schema is not None:
        _to_json_text(records, [f.name for f in schema if f.metadata == JSON_TEXT], first_row)
        return _from_pylist(records, schema, first_row)
    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        # (a field of objects and numbers, say)
        nested = [name for name in names if any(isinstance(r[name], _NESTED) for r in records)]
        if not nested:
            raise _mixed_types(len(records), first_row, exc) from None
    else:  # (the common case: plain values, typed in one pass)
        nested = [field.name for field in table.schema if pa.types.is_nested(field.type)]
        if not nested:
            return table
    _to_json_text(records, nested, first_row)
    table = _from_pylist(records, None, first_row)
    fields = [f.with_metadata(JSON_TEXT) if f.name in nested else f for f in table.schema]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields))


def _from_pylist(
    records: list[dict[str, Any]], schema: pa.Schema | None, first_row: int
) -> pa.Table:
    import pyarrow as pa

    try:
        return pa.Table.from_pylist(records, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise _mixed_types(len(records), first_row, exc) from None


def _mixed_types(rows: int, first_row: int, exc: Exception) -> InputError:
    return InputError(
        f"Rows {first_row} to {first_row + rows - 1} cannot go into one Parquet "
        f"table with the rows before them ({exc}); Parquet gives each column one "
        "type, so use --output-format json or jsonl."
    )


def _to_json_text(records: list[dict[str, Any]], names: list[str], first_row: int) -> None:
    """Each value of the `names` fields as its JSON text (as JSON output writes it); a
    missing value stays null."""
    for n, record in enumerate(records):
        for name in names:
            value = record[name]
            try:
                record[name] = None if _missing(value) else _json_bytes(value).decode()
            except RecursionError:
                raise _too_deep(record, first_row + n, _json_bytes) from None


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
            text += _json_bytes(record)
        except RecursionError:
            raise _too_deep(record, first_row + n, _json_bytes) from None
    text += after
    return text


def _json_bytes(value: Any) -> bytes:
    """`value` as JSON: by orjson, or past its limits (an integer beyond 64 bits, nesting
    past 255 levels) by the json module, alike. NaN and the infinities are null; a value
    JSON has no type for is `_json_default`'s text. RecursionError when nested past the
    stack."""
    try:
        return orjson.dumps(value, default=_json_default)
    except orjson.JSONEncodeError:
        return _json_text(value).encode()


def _json_text(value: Any) -> str:
    """`value` as orjson writes it, by the json module (NaN made null first: the json
    module writes `NaN`, which is not JSON)."""
    return json.dumps(
        _finite(value), separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def _finite(value: Any) -> Any:
    """`value` with each NaN and infinity in it null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, _NESTED):
        return [_finite(item) for item in value]
    return value


def _json_default(value: Any) -> str:
    """The JSON text of a value JSON has no type for: bytes as base64 (RFC 4648, padded),
    anything else (a Parquet decimal, say) as Python's text of it."""
    if isinstance(value, _BYTES):
        return base64.b64encode(value).decode("ascii")
    return str(value)


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
    table = None
    if not isinstance(chunk.table, list) and chunk.column_names == header:
        table = _plain_columns(chunk.table)
    if table is not None:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        table = table.append_column(PREDICTION, _arrow_labels(chunk.predictions)).append_column(
            PROBABILITY, _float_text(chunk.probabilities)
        )
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
    except RecursionError:  # a list or object nested past the stack
        for n, record in enumerate(records):
            if any(_overflows(_csv_cell, value) for value in record.values()):
                raise _too_deep(record, first_row + n, _csv_cell) from None
        raise


def _plain_columns(table: pa.Table) -> pa.Table | None:
    """The table as pyarrow's CSV writer writes it as `_csv_cell` would, a float NaN as
    null; None if a column holds values only `_csv_cell` writes so (objects, arrays,
    bytes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, column in enumerate(table.columns):
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            if pa.types.is_floating(kind):  # (NaN in its dictionary: rare, left to Python)
                return None
        if pa.types.is_nested(kind) or _is_bytes(kind):
            return None
        if pa.types.is_floating(kind):
            nan = pc.is_nan(column, memory_pool=arrow_pool())
            if pc.any(nan).as_py():
                missing = pa.scalar(None, column.type)
                column = pc.if_else(nan, missing, column, memory_pool=arrow_pool())
                table = table.set_column(i, table.field(i), column)
    return table


def _is_bytes(kind: pa.DataType) -> bool:
    import pyarrow as pa

    is_view = getattr(pa.types, "is_binary_view", None)  # (pyarrow 16 on)
    return (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or (is_view is not None and is_view(kind))
    )


def _csv_text(rows: Iterable[Iterable[Any]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


def _csv_cell(value: Any) -> Any:
    """A value in CSV: nothing for a missing one (as pandas writes it); an object or array
    as its JSON text and bytes as base64, as JSON output holds them (see the top)."""
    if value.__class__ in _PLAIN:  # (the common case, at once)
        return value
    if _missing(value):
        return ""
    if isinstance(value, _NESTED):
        return _json_bytes(value).decode()
    if isinstance(value, _BYTES):
        return _json_default(value)
    return value


_PLAIN = frozenset({str, int, bool})
_NESTED = (dict, list, tuple)  # (a tuple: a pair of a Parquet map)
_BYTES = (bytes, bytearray, memoryview)


def _missing(value: Any) -> bool:
    """Null, or a float NaN (pandas' missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


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
