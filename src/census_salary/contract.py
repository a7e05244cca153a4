"""The row contract: the one declaration of the 14 census columns, and all that derives
from it.

`COLUMN_SPECS` says, per column, its name and other spellings, whether it is a number or
a category, its range, a description and an example. From it come the column lists,
the one coercion rule (`parse_value`), the vectorised check every door runs
(`check_columns`, `check_records`); and, in `row_schema`, the pydantic row model
`CensusRow` (the OpenAPI schema and its example) and the column document that
`/metadata` and the form page show (`contract_document`). Category vocabularies are
not declared here: they are learned from the training data and travel in the model
bundle.

The check gives a `ColumnTable`: numbers as float64 arrays, categories by their distinct
values (`DistinctColumn`), so what a reader decides per value (a tree's bin, a drift
bin, whether the model knows it) it decides once per distinct value (`distinct`).

The coercion rule, the same at every door (the API, `census predict` in every format,
and the training-data check):

- Numbers are whole and within the column's range. Accepted: a JSON integer; a JSON
  number with nothing after the point (`39.0`); text that, with surrounding white space
  removed, is ASCII digits with an optional sign and an optional point followed only by
  zeros (`"39"`, `" +39 "`, `"39."`, `"39.00"`). Refused: `true`/`false`, NaN and
  infinity, fractions, exponents (`"1e1"`), separators (`"2,174"`, `"1_0"`), other
  scripts' digits, empty text, `?` and null (a number cannot be missing).
- Categories are text of at most 100 characters after surrounding white space is
  removed; the case is kept as given. Empty text, `?`, null and NaN mean "missing".
  A value the model never saw (including another case of a known one) is scored as
  missing and reported as a warning. Numbers, booleans, lists and objects are refused.
- Field names may be snake_case, hyphenated as published, or another published
  spelling (`fnlwgt`), in any case, with surrounding spaces. Other fields pass through.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import operator
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import orjson

from census_salary.errors import InputError, RowProblem

POSITIVE, NEGATIVE = ">50K", "<=50K"
TARGET = "salary"
MAX_CATEGORY_LENGTH = 100
MAX_MONEY = 1_000_000_000  # US$; far above the data's top-coded 99,999, and finite
# Levels of lists and objects one within another that a JSON document (a request body, a
# file, a line of JSON Lines) may nest; a census row in `{"inputs": [...]}` takes 3. The
# deepest orjson writes back (it refuses 255), so every row read can be written out; far
# below what orjson reads (1,024) and what the standard library's decoder (the JSON array
# reader, and the fallback for `NaN`) reads on any caller's stack (about 1,000 less it).
MAX_NESTING = 254
# Text shorter than this cannot nest past MAX_NESTING: each level takes two brackets.
SHORTEST_TOO_DEEP = 2 * (MAX_NESTING + 1)
MISSING_MARKERS = frozenset({"", "?"})


@dataclass(frozen=True)
class ColumnSpec:
    """One census column. Numbers have a range; categories learn their values in training."""

    name: str
    kind: Literal["number", "category"]
    description: str
    example: int | str
    low: int = 0
    high: int = MAX_MONEY
    aliases: tuple[str, ...] = ()

    @property
    def published_name(self) -> str:
        return self.name.replace("_", "-")

    @property
    def expected(self) -> str:
        """What the column must hold, in words, for error messages."""
        if self.kind == "number":
            return f"a whole number from {self.low:,} to {self.high:,}"
        return f"text of at most {MAX_CATEGORY_LENGTH} characters, or ? (or null) when unknown"

    @property
    def leniency(self) -> str:
        """What the check also takes, in words, for the schema a client reads."""
        if self.kind == "number":
            return 'Also read from a whole float (39.0) or from text ("39", " +39 ").'
        return "Spaces at either end are dropped first (the length limit counts what is left)."


def _number(name: str, description: str, example: int, **limits: Any) -> ColumnSpec:
    return ColumnSpec(name, "number", description, example, **limits)


def _category(name: str, description: str, example: str) -> ColumnSpec:
    return ColumnSpec(name, "category", description, example)


COLUMN_SPECS: tuple[ColumnSpec, ...] = (
    _number("age", "Age in years.", 39, high=120),
    _category("workclass", "Kind of employer.", "State-gov"),
    _number("fnlgt", "Census sampling weight.", 77516, high=100_000_000, aliases=("fnlwgt",)),
    _category("education", "Highest education level.", "Bachelors"),
    _number("education_num", "Education level as a number (1-16).", 13, low=1, high=16),
    _category("marital_status", "Marital status.", "Never-married"),
    _category("occupation", "Occupation.", "Adm-clerical"),
    _category("relationship", "Role in the household.", "Not-in-family"),
    _category("race", "Race, as the census recorded it.", "White"),
    _category("sex", "Sex, as the census recorded it.", "Male"),
    _number("capital_gain", "Capital gains in US$.", 2174),
    _number("capital_loss", "Capital losses in US$.", 0),
    _number("hours_per_week", "Hours worked per week.", 40, high=168),
    _category("native_country", "Country of origin.", "United-States"),
)
SPECS: dict[str, ColumnSpec] = {spec.name: spec for spec in COLUMN_SPECS}
COLUMNS: list[str] = list(SPECS)
CATEGORICAL: list[str] = [s.name for s in COLUMN_SPECS if s.kind == "category"]
NUMERICAL: list[str] = [s.name for s in COLUMN_SPECS if s.kind == "number"]
NUMERIC_RANGES: dict[str, tuple[int, int]] = {
    s.name: (s.low, s.high) for s in COLUMN_SPECS if s.kind == "number"
}
# The published example row (the first of adult.data), with the published names.
EXAMPLE_ROW: dict[str, Any] = {s.published_name: s.example for s in COLUMN_SPECS}
# Other spellings, after lower-casing and `-` -> `_`; the label's too.
_ALIASES = {alias: s.name for s in COLUMN_SPECS for alias in s.aliases} | {
    "income": TARGET,
    "class": TARGET,
}


# The caches below keep what a request or file repeats (its keys, its values) and are
# bounded in entries AND in the length of what they keep, so that rows sent with ever-new
# or huge keys or values cannot grow a server's memory: longer text is worked out anew.
_CACHED_LENGTH = 2 * MAX_CATEGORY_LENGTH


_FIELDS = frozenset(COLUMNS)
_FIELDS_AND_LABEL = _FIELDS | {TARGET}


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    return _ALIASES.get(key, key)


_cached_canonical_name = functools.lru_cache(maxsize=4096)(_canonical_name)


def canonical_name(name: str) -> str:
    """`" Education-Num"` -> `"education_num"`; `fnlwgt` -> `fnlgt`; other names kept."""
    if isinstance(name, str) and len(name) > _CACHED_LENGTH:
        return _canonical_name(name)
    return _cached_canonical_name(name)


# --- the coercion rule ---------------------------------------------------------------


class _Invalid:
    """What `parse_value` returns for a value the column refuses."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()
_WHOLE = re.compile(r"([+-]?[0-9]{1,20})(?:\.0*)?", re.ASCII)


def _parse_number(value: Any, spec: ColumnSpec) -> Any:
    if isinstance(value, str):
        match = _WHOLE.fullmatch(value.strip())
        number: Any = int(match.group(1)) if match else INVALID
    elif isinstance(value, (bool, np.bool_)):
        return INVALID
    elif isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        number = int(value)  # is_integer() is False for NaN and infinity
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        number = int(value)  # a Parquet decimal column: 39, or 39.00
    else:
        return INVALID
    return number if number is not INVALID and spec.low <= number <= spec.high else INVALID


def _parse_category(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text in MISSING_MARKERS:
            return None
        return text if len(text) <= MAX_CATEGORY_LENGTH else INVALID
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return INVALID


def _parse(value: Any, name: str) -> Any:
    spec = SPECS[name]
    return _parse_number(value, spec) if spec.kind == "number" else _parse_category(value)


_parse_cached = functools.lru_cache(maxsize=1 << 16, typed=True)(_parse)


def parse_value(value: Any, name: str) -> Any:
    """The value column `name` holds for `value` (an int, text or None), or INVALID.

    Typed caching keeps `true`, `1` and `1.0` apart while a file's repeated values
    are parsed once.
    """
    if isinstance(value, str) and len(value) > _CACHED_LENGTH:
        return _parse(value, name)
    try:
        return _parse_cached(value, name)
    except TypeError:  # unhashable: a list or an object, which no column takes
        return INVALID


# --- checking many rows at once ----------------------------------------------------------


class _Absent:
    """Stands for a field a JSON row leaves out, so the check can say so."""

    def __repr__(self) -> str:
        return "nothing (the field is missing)"


ABSENT: Any = _Absent()
Columns = Mapping[str, Any]  # column name -> a sequence of values, one per row


@dataclass(frozen=True)
class DistinctColumn:
    """A column as the values its rows take and, per row, the index of its value.

    A census column repeats a few dozen values, so what is decided per value (the
    check, a tree's bin, a drift bin, whether the model knows it) is decided once per
    value in `values` and handed to every row by `codes`. A value may appear in `values`
    more than once (`" White"` and `"White"` check to the same text).
    """

    values: list[Any]
    codes: np.ndarray  # row -> index into `values`

    @classmethod
    def of(cls, column: Sequence[Any]) -> DistinctColumn:
        """A column (of hashable values) by its distinct values."""
        if isinstance(column, np.ndarray):
            column = column.tolist()  # Python walks a list faster than an object array
        elif hasattr(column, "to_numpy"):  # a pandas column: ~10x faster as a list
            column = column.to_numpy(dtype=object).tolist()
        index = dict(zip(dict.fromkeys(column), itertools.count()))
        codes = np.fromiter(map(index.__getitem__, column), dtype=np.intp, count=len(column))
        return cls(list(index), codes)

    def __len__(self) -> int:
        return len(self.codes)

    def decoded(self) -> np.ndarray:
        """The column row by row (an object array)."""
        values = np.empty(len(self.values), dtype=object)
        values[:] = self.values
        return values[self.codes]

    def mapped(self, table: Mapping[Any, Any], default: Any) -> np.ndarray:
        """Each row's value looked up in `table` (`default` where it is not a key), one
        look-up per distinct value."""
        return np.array([table.get(value, default) for value in self.values])[self.codes]

    def rows(self, index: slice | np.ndarray) -> DistinctColumn:
        return DistinctColumn(self.values, self.codes[index])

    @classmethod
    def joined(cls, parts: Sequence[DistinctColumn]) -> DistinctColumn:
        """The parts' rows one after another (at least one part; a few numpy calls,
        however many parts)."""
        every_codes = [part.codes for part in parts]
        starts = np.cumsum([0, *[len(part.values) for part in parts[:-1]]])
        shift = np.repeat(starts, [len(codes) for codes in every_codes])
        codes = np.concatenate(every_codes) + shift
        values = list(itertools.chain.from_iterable(part.values for part in parts))
        return cls(values, codes.astype(np.intp, copy=False))


class ColumnTable(Mapping[str, np.ndarray]):
    """Columns row by row, some kept as `DistinctColumn`s and decoded only when read
    (`distinct` gives them as they are kept)."""

    def __init__(self, columns: Mapping[str, np.ndarray | DistinctColumn]) -> None:
        self._columns = dict(columns)
        self._decoded: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        column = self._columns[name]
        if not isinstance(column, DistinctColumn):
            return column
        if name not in self._decoded:
            self._decoded[name] = column.decoded()
        return self._decoded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def kept(self, name: str) -> np.ndarray | DistinctColumn:
        return self._columns[name]

    def row_values(self, name: str) -> list[Any]:
        """Column `name` row by row as Python values (floats, str or None)."""
        column = self._columns[name]
        if isinstance(column, DistinctColumn):
            return list(map(column.values.__getitem__, column.codes.tolist()))
        return column.tolist()

    @classmethod
    def joined(cls, tables: Sequence[Columns]) -> ColumnTable:
        """The tables' rows one after another, column by column (the first's columns)."""

        kept = [t._columns if isinstance(t, ColumnTable) else t for t in tables]
        columns: dict[str, np.ndarray | DistinctColumn] = {}
        for name in tables[0] if tables else ():
            parts = [table[name] for table in kept]
            if any(isinstance(part, DistinctColumn) for part in parts):
                columns[name] = DistinctColumn.joined(
                    [p if isinstance(p, DistinctColumn) else DistinctColumn.of(p) for p in parts]
                )
            else:
                columns[name] = np.concatenate([np.asarray(part) for part in parts])
        return cls(columns)

    def rows(self, index: slice | np.ndarray) -> ColumnTable:
        """Some of the rows (a slice, a boolean mask or row numbers), every column alike."""
        return ColumnTable({name: _take(column, index) for name, column in self._columns.items()})

    def with_rows_of(self, name: str, index: np.ndarray) -> ColumnTable:
        """The table with column `name`'s values taken at `index` (a column shuffled, say),
        the other columns as they are."""
        return ColumnTable({**self._columns, name: _take(self._columns[name], index)})


def _take(column: np.ndarray | DistinctColumn, index: slice | np.ndarray) -> Any:
    return column[index] if isinstance(column, np.ndarray) else column.rows(index)


def row_count(columns: Columns) -> int:
    """How many rows the columns hold (0 without columns), decoding none."""
    first = next(iter(columns), None)
    if first is None:
        return 0
    return len(columns.kept(first) if isinstance(columns, ColumnTable) else columns[first])


def distinct(columns: Columns, name: str) -> DistinctColumn:
    """Column `name` by its distinct values: as the check kept it, or found now."""
    if isinstance(columns, ColumnTable):
        column = columns.kept(name)
        if isinstance(column, DistinctColumn):
            return column
    return DistinctColumn.of(columns[name])


@dataclass(frozen=True)
class CheckedColumns:
    """The rows that passed, as columns ready to score, and the problems of the rest."""

    columns: ColumnTable  # good rows only: numbers float64, categories str/None
    good: np.ndarray  # boolean mask over the rows given
    problems: list[RowProblem]

    def __len__(self) -> int:
        return int(self.good.sum())


def check_columns(columns: Columns, first_row: int = 1) -> CheckedColumns:
    """Check rows given as columns (canonical names) against the contract.

    `first_row` is the 1-based number of the first row in the whole input, so problems
    name the row a person would count to.
    """
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise InputError(
            f"Missing column(s) {', '.join(missing)}; every row needs the 14 census fields "
            f"({', '.join(COLUMNS)}), with hyphens or underscores."
        )
    parsed: dict[str, np.ndarray | DistinctColumn] = {}
    refused: dict[str, np.ndarray] = {}  # column -> mask of its refused values, if any
    for name, spec in SPECS.items():
        parsed[name], invalid = _parse_column(columns[name], spec)
        if invalid is not None:
            refused[name] = invalid
    good = np.ones(row_count(columns), dtype=bool)
    problems: list[RowProblem] = []
    for name, invalid in refused.items():
        good &= ~invalid
        problems += [
            RowProblem(
                first_row + int(i),
                name,
                f"got {show_value(columns[name][i])}; expected {SPECS[name].expected}",
            )
            for i in np.flatnonzero(invalid)
        ]
    table = ColumnTable(parsed)
    if refused:
        table = table.rows(good)
    problems.sort(key=lambda p: p.row)
    return CheckedColumns(columns=table, good=good, problems=problems)


_TEXT_OR_NULL = {str, type(None)}
_FEW_ROWS = 16  # up to this many rows, values are parsed one by one: less work than numpy's
_IDENTITY = tuple(np.arange(n) for n in range(_FEW_ROWS + 1))  # row i takes value i
for _codes in _IDENTITY:
    _codes.flags.writeable = False


def _parse_column(
    raw: Sequence[Any], spec: ColumnSpec
) -> tuple[np.ndarray | DistinctColumn, np.ndarray | None]:
    """A column's values as scored (numbers a float64 array, categories str/None by
    their distinct values) and a mask of the refused ones, None when there are none:
    `parse_value` for each value."""
    n_rows = len(raw)
    types = set(map(type, raw)) if n_rows > _FEW_ROWS and spec.kind == "number" else set()
    if spec.kind == "number" and types and types <= {int, np.int64}:
        # Whole numbers (JSON integers, an integer column): only the range to check.
        try:
            whole = np.fromiter(raw, dtype=np.int64, count=n_rows)
        except OverflowError:  # beyond 64 bits: out of every range, refused one by one
            pass
        else:
            invalid = (whole < spec.low) | (whole > spec.high)
            if not invalid.any():
                return whole.astype(np.float64), None
            return np.where(invalid, math.nan, whole.astype(np.float64)), invalid
    column = None
    if spec.kind == "category" and n_rows > _FEW_ROWS:
        # Text (a CSV column, a JSON category) repeats a few dozen values: parse each
        # distinct one once, and look for refused values among those alone.
        try:
            column = DistinctColumn.of(raw)
        except TypeError:  # a list or an object: refused, one by one
            pass
        else:  # (`True` and `1` would share a key: the distinct values must be text, or
            # null, JSON's missing value, which shares a key with nothing else)
            if not set(map(type, column.values)) <= _TEXT_OR_NULL:
                column = None
    elif types == {str}:
        column = DistinctColumn.of(raw)
    # Each value (or each distinct one) parsed; `codes`, if any, hands them to the rows.
    codes = None if column is None else column.codes
    values = [parse_value(value, spec.name) for value in (raw if column is None else column.values)]
    refused = [i for i, value in enumerate(values) if value is INVALID]
    invalid = None
    if refused and codes is None:
        invalid = np.zeros(n_rows, dtype=bool)
        invalid[refused] = True
    elif refused:
        invalid = np.isin(codes, refused)
    if spec.kind == "number":
        numbers = np.array([math.nan if v is INVALID else v for v in values], dtype=np.float64)
        return (numbers if codes is None else numbers[codes]), invalid
    if codes is not None:
        return DistinctColumn(values, codes), invalid
    if n_rows > _FEW_ROWS:  # parsed one by one: by their distinct values now
        return DistinctColumn.of(values), invalid
    return DistinctColumn(values, _IDENTITY[n_rows]), invalid


def canonical_columns(names: Sequence[str], label: str = TARGET) -> list[str]:
    """A table's column names, census fields and the `label` (canonical) under their
    canonical spellings and other columns as given (as a JSON row's keys are taken); an
    InputError when two name the same column (`age` twice, `education-num` and
    `education_num`, `id` twice)."""
    known = _FIELDS | {label}
    canonical = [field if (field := canonical_name(name)) in known else name for name in names]
    repeated = sorted({name for name in canonical if canonical.count(name) > 1})
    if repeated:
        spellings: dict[str, list[str]] = {name: [] for name in repeated}
        for given, name in zip(names, canonical, strict=True):
            if name in spellings and given not in spellings[name]:
                spellings[name].append(given)
        alike = [" and ".join(map(repr, s)) for s in spellings.values() if len(s) > 1]
        why = f" ({'; '.join(alike)} name the same column)" if alike else ""
        raise InputError(
            f"Column(s) {', '.join(map(repr, repeated))} given more than once{why}; "
            "give each column once."
        )
    return canonical


def columns_of_frame(frame: Any) -> dict[str, Any]:
    """A table's columns (pandas or alike), census fields and the label under their
    canonical names (`canonical_columns`)."""
    names = canonical_columns(list(frame.columns))
    return {
        name: _values(frame[original]) for name, original in zip(names, frame.columns, strict=True)
    }


def _values(column: Any) -> np.ndarray:
    """A pandas column's values as the check takes them: a missing value of an extension
    type (`pd.NA` of a "string" or "Int64" column) as None, JSON's missing value."""
    if isinstance(column.dtype, np.dtype):
        return column.to_numpy()
    return column.to_numpy(dtype=object, na_value=None)


def _key_plan(keys: tuple[Any, ...]) -> tuple[tuple[tuple[Any, Any], ...], Any]:
    """For a JSON row's keys, in order: (name, key) pairs that put census fields and the
    label under their canonical names and keep other keys (as `canonical_columns` names a
    table's columns), and the first key that names a field already given (or None)."""
    pairs: dict[Any, Any] = {}
    for key in keys:
        name = canonical_name(key)
        name = name if name in _FIELDS_AND_LABEL else key
        if name in pairs:
            return tuple(pairs.items()), key
        pairs[name] = key
    return tuple(pairs.items()), None


# Rows of one request or file share their keys: each set of keys is planned once.
_cached_key_plan = functools.lru_cache(maxsize=256)(_key_plan)
_CACHED_KEYS = 64  # rows with more keys than this (or a longer key) are planned anew


def _plan_of(row: dict[Any, Any]) -> tuple[tuple[tuple[Any, Any], ...], Any]:
    keys = tuple(row)
    if len(keys) > _CACHED_KEYS or max(map(len, keys), default=0) > _CACHED_LENGTH:
        return _key_plan(keys)
    return _cached_key_plan(keys)


# What a JSON value that is not an object is, in JSON's words.
_JSON_KINDS = {
    type(None): "null",
    bool: "true or false",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
}


def as_record(value: Any, row: int) -> dict[str, Any] | RowProblem:
    """A JSON row with census fields under their canonical names (other keys untouched),
    or, for a row that is not an object or gives a field twice, its problem (row `row`)."""
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        return RowProblem(row, "", f"got {kind}; expected an object of census fields")
    pairs, twice = _plan_of(value)
    if twice is not None:
        return RowProblem(
            row, canonical_name(twice), f"the field is given twice (as {twice!r} too)"
        )
    record = {name: value[key] for name, key in pairs}
    for name in COLUMNS:
        record.setdefault(name, ABSENT)
    return record


def decode_json(text: bytes | str, exact_integers: bool = False) -> Any:
    """A JSON document: orjson (2x faster on a batch; it reads an integer beyond 64 bits as
    a double, as most JSON readers do), the standard library where orjson refuses
    (`NaN`, `Infinity`, `1e400`), so what is accepted and the message of a
    syntax error are the standard library's; text that is not Unicode is refused
    (`refuse_half_surrogates`) as orjson refuses it, and so is a document nested deeper
    than MAX_NESTING (`TooDeepError`).

    `exact_integers`: an integer beyond 64 bits keeps every digit (the standard library
    reads the document again), as values passed through to the output must.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if exc.msg.startswith("depth limit"):  # past orjson's 1,024: past ours too
            raise TooDeepError() from None
        return _decode_by_the_standard_library(text)
    if exact_integers and _holds_a_rounded_integer(value):
        return _decode_by_the_standard_library(text)
    if len(text) >= SHORTEST_TOO_DEEP:  # (not even a call for a short row: once a line)
        refuse_too_deep(value, text)
    return value


def _decode_by_the_standard_library(text: bytes | str) -> Any:
    # Bytes as UTF-8 only, as orjson and the files' doors read them (json.loads would
    # guess UTF-16 or UTF-32, and let encoded halves of surrogate pairs through).
    decoded = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    try:
        value = json.loads(decoded)
    except RecursionError:
        raise TooDeepError() from None
    except ValueError as exc:
        reason = too_many_digits(exc)
        if reason is None:
            raise
        raise ValueError(reason) from None
    refuse_too_deep(value, decoded)
    return refuse_half_surrogates(value, decoded)


# orjson reads an integer outside -2**63 .. 2**64-1 as a float; a float this large may be
# one (or may have been written as one: read again, it is the same float).
_ROUNDED_INTEGER_FROM = float(2**63)


_MAY_HOLD_ONE = frozenset({float, dict, list})


def _holds_a_rounded_integer(value: Any) -> bool:
    """Whether a decoded document holds a float that may be an integer orjson rounded."""
    if type(value) is dict and _MAY_HOLD_ONE.isdisjoint(map(type, value.values())):
        return False  # a row of numbers and text, as most are: one pass in C
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif type(item) is float and abs(item) >= _ROUNDED_INTEGER_FROM:
            return True
    return False


def too_many_digits(exc: ValueError) -> str | None:
    """For Python's refusal to read a number of more digits than it converts, what to tell
    whoever sent it (Python's advice, sys.set_int_max_str_digits, is not theirs to follow);
    None for any other error."""
    if "integer string conversion" not in str(exc):
        return None
    limit = sys.get_int_max_str_digits()
    return f"a number has more than {limit:,} digits, far beyond any census field's range"


class TooDeepError(ValueError):
    """JSON nested deeper than MAX_NESTING: every JSON door refuses it with this message."""

    def __init__(self) -> None:
        super().__init__(
            f"it nests lists and objects more than {MAX_NESTING} levels deep, the limit; "
            "flatten the deeply nested field or leave it out"
        )


def refuse_too_deep(value: Any, text: bytes | str, above: int = 0) -> None:
    """Raise TooDeepError when `value`, decoded from `text` and found `above` levels deep in
    its document, takes the document past MAX_NESTING levels.

    Each level takes two characters, and one opening bracket: short text, or text with
    few brackets, is let through at once (a request of 1,000 rows holds 1,002, one for each
    row and two around them, and nests 3 deep); only the rest is walked.
    """
    if len(text) + 2 * above < SHORTEST_TOO_DEEP:
        return
    brackets = _opening_brackets(text)  # as many lists and objects at most (some in strings)
    if above + brackets <= MAX_NESTING:
        return
    rows = value["inputs"] if type(value) is dict and value.keys() == {"inputs"} else value
    if type(rows) is list and rows and set(map(type, rows)) == {dict}:
        brackets -= len(rows) - 1  # objects side by side in one list: one level for them all
    if above + brackets > MAX_NESTING and above + nesting(value) > MAX_NESTING:
        raise TooDeepError()


def _opening_brackets(text: bytes | str) -> int:
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    codes = np.frombuffer(text, dtype=np.uint8)  # (4x faster than bytes.count on a batch)
    return int(np.count_nonzero((codes | 0x20) == ord("{")))  # `[` | 0x20 is `{`


def nesting(value: Any) -> int:
    """How many levels of lists and objects `value` nests (0 for neither), counted level
    by level without recursion, up to one past MAX_NESTING."""
    depth, level = 0, [value]
    while depth <= MAX_NESTING:
        level = [item for item in level if isinstance(item, (list, dict))]
        if not level:
            break
        depth += 1
        level = list(
            itertools.chain.from_iterable(
                item.values() if isinstance(item, dict) else item for item in level
            )
        )
    return depth


# JSON may escape one half of a UTF-16 surrogate pair alone (`"\ud800"`): Python reads it
# into a str that no UTF-8 file or response can hold, so writing it out would fail.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def refuse_half_surrogates(value: Any, text: bytes | str) -> Any:
    """`value`, decoded by the standard library from `text`, or a ValueError when a string
    in it holds half a surrogate pair (looked for only where `text` escapes one)."""
    escape = _SURROGATE_ESCAPE if isinstance(text, str) else _SURROGATE_ESCAPE_BYTES
    where = _half_surrogate_at(value) if escape.search(text) else None  # type: ignore[arg-type]
    if where is not None:
        where = where if len(where) <= 80 else f"{where[:77]}..."  # a deeply nested one
        raise ValueError(
            f"{where} holds half of a UTF-16 surrogate pair (an escape from \\ud800 to "
            "\\udfff without its other half), which is not text; fix or remove it"
        )
    return value


def _half_surrogate_at(value: Any, path: str = "") -> str | None:
    """Where in `value` a string holds half a surrogate pair (`field note`, `field
    inputs[3].note`, `a key of inputs[3]`, `the value`); None when nowhere."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return f"field {path}" if path else "the value"
    elif isinstance(value, dict):
        for key, item in value.items():
            if _half_surrogate_at(key) is not None:
                return f"a key of {path}" if path else "a key"
            found = _half_surrogate_at(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _half_surrogate_at(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def check_records(records: Sequence[Any], first_row: int = 1) -> CheckedColumns:
    """Check JSON rows (objects of fields, any accepted spelling) against the contract.

    A row that is not an object, or gives a field twice, is one problem of its own (its
    values are not looked at), listed with the other rows' problems in row order.
    """
    alike = _alike_columns(records)
    if alike is not None:
        return check_columns(alike[1], first_row)
    sorted_out = _records_one_by_one(records, range(first_row, first_row + len(records)))
    if not sorted_out.refused:
        return check_columns(sorted_out.columns, first_row)
    checked = check_columns(sorted_out.columns)  # (its rows numbered from 1 among those kept)
    numbers = sorted_out.numbers
    good = np.zeros(len(records), dtype=bool)
    good[np.array(numbers, dtype=np.intp) - first_row] = checked.good
    problems = [replace(p, row=numbers[p.row - 1]) for p in checked.problems]
    problems += sorted_out.refused
    return CheckedColumns(checked.columns, good, sorted(problems, key=lambda p: p.row))


@dataclass(frozen=True)
class Records:
    """JSON rows sorted out: those that are objects of fields, with census fields under
    their canonical names and other keys kept (`rows`, as a file's rows are written
    back), their census `columns` and their `numbers`; and the problems of the rows set
    aside (`refused`: not objects, or giving a field twice), whose values are not looked at.
    """

    rows: list[dict[str, Any]]
    columns: dict[str, Any]
    numbers: Sequence[int]
    refused: list[RowProblem]


def canonical_records(records: Sequence[Any], numbers: Sequence[int]) -> Records:
    """JSON rows sorted out (`Records`); `numbers` are the rows' numbers in the input."""
    alike = _alike_columns(records)
    if alike is None:
        return _records_one_by_one(records, numbers)
    pairs, columns = alike
    if all(name == key for name, key in pairs):
        return Records(list(records), columns, numbers, [])
    # Every row has the first's keys: its values taken by them in one call, renamed.
    names, take = [name for name, _ in pairs], operator.itemgetter(*[key for _, key in pairs])
    rows = [dict(zip(names, take(record), strict=True)) for record in records]
    return Records(rows, columns, numbers, [])


def _records_one_by_one(records: Sequence[Any], numbers: Sequence[int]) -> Records:
    """`canonical_records` of rows spelled differently, or not all objects of fields: the
    one place where rows are set aside."""
    rows: list[dict[str, Any]] = []
    kept: list[int] = []
    refused: list[RowProblem] = []
    for value, number in zip(records, numbers, strict=True):
        record = as_record(value, number)
        if isinstance(record, RowProblem):
            refused.append(record)
        else:
            rows.append(record)
            kept.append(number)
    columns = {name: [row[name] for row in rows] for name in COLUMNS}
    written = [{k: v for k, v in row.items() if v is not ABSENT} for row in rows]
    return Records(written, columns, tuple(kept), refused)


def _alike_columns(
    records: Sequence[Any],
) -> tuple[tuple[tuple[Any, Any], ...], dict[str, Any]] | None:
    """For rows that all have the first row's keys (the usual request or file: every row
    spells its fields alike), the first row's (name, key) plan and the census columns,
    made in C; None for any other rows."""
    if not records or set(map(type, records)) != {dict}:  # (in C, not a loop of ours)
        return None
    first = records[0]
    pairs, twice = _plan_of(first)
    if twice is not None or len(first) < 2 or len(set(map(len, records))) != 1:
        return None
    try:  # a row as long as the first that has every key of the first has no other key
        fields = list(zip(*map(operator.itemgetter(*first), records), strict=True))
    except KeyError:
        return None
    position = {key: i for i, key in enumerate(first)}
    field_key = dict(pairs)
    return pairs, {
        name: fields[position[field_key[name]]] if name in field_key else [ABSENT] * len(records)
        for name in COLUMNS
    }


def show_value(value: Any) -> str:
    """A value as a message quotes it: JSON-like, at most 40 characters."""
    if value is ABSENT:
        return repr(value)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no value"
    try:
        if isinstance(value, Decimal):
            text = str(value)  # a number as written: 39.5
        else:
            text = repr(value) if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError, RecursionError):  # not JSON, or nested past the stack
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def labels_at(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """'>50K' where P(>50K) reaches the threshold, '<=50K' elsewhere."""
    return np.where(probabilities >= threshold, POSITIVE, NEGATIVE)
