"""Score streams of rows: N rows in, N rows out, in order, the caller's columns kept.

CSV rows stay pyarrow text from reading to writing (written by pyarrow's CSV writer),
Parquet rows pyarrow columns of their types, JSON rows the Python objects they were
decoded as (written by orjson): no DataFrame is built on the way, and neither pandas nor
pyarrow is imported for JSON.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from census_salary.bundle import Bundle
from census_salary.contract import (
    COLUMNS,
    SPECS,
    CheckedColumns,
    ColumnTable,
    DistinctColumn,
    check_columns,
)
from census_salary.csv_rows import arrow_pool
from census_salary.errors import CensusError, InputError, RowProblem
from census_salary.files import atomic_open
from census_salary.progress import NoProgress, Progress
from census_salary.rows import InputFormat, RowChunk, named_format, read_rows
from census_salary.trees import TreeTables
from census_salary.writers import (
    BASE_VALUE,
    CONTRIBUTION,
    PREDICTION,
    PROBABILITY,
    OutputFormat,
    ScoredChunk,
    arrow_bools,
    write_predictions,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

T = TypeVar("T")
SCORING_THREADS = 2  # threads scoring with the tree tables
SCORING_ROWS = 4096  # rows they score at a time (memory grows with it)
READ_AHEAD = 1  # chunks read ahead of the one being checked
READER_STOP_SECONDS = 1.0  # how long a stopped stream waits for its reader to stop
Kept = tuple[Any, list[str]]  # a chunk's good rows (as in `RowChunk.table`), its columns


@dataclass
class UnknownValues:
    """The category values the model never saw, which it scored as missing, counted as
    rows stream past: per column, the rows in all, and the rows of each of the first
    `KEPT` values (so that ever-new values cannot grow it)."""

    KEPT: ClassVar[int] = 20
    rows: dict[str, int] = field(default_factory=dict)
    values: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, found: Mapping[str, Mapping[str, int]]) -> None:
        """Count what `Bundle.unknown_values` found in some rows."""
        for name, held in found.items():
            kept = self.values.setdefault(name, {})
            for value, rows in held.items():
                self.rows[name] = self.rows.get(name, 0) + rows
                if value in kept or len(kept) < self.KEPT:
                    kept[value] = kept.get(value, 0) + rows

    def add_others(self, name: str, rows: int) -> None:
        """Count rows of column `name` whose values were not kept where they were counted
        (another process's `UnknownValues`, past its `KEPT`)."""
        self.values.setdefault(name, {})
        self.rows[name] = self.rows.get(name, 0) + rows


@dataclass(frozen=True)
class Predicted:
    """What `predict_file` found beside the rows it wrote: the rows it left out (with
    `skip_bad`), and the category values the model never saw, which it scored as missing."""

    problems: list[RowProblem]
    unknown: UnknownValues


@dataclass
class ScoredStream(Generic[T]):
    """Chunks of scored rows; with `skip_bad`, the problems of the rows left out; and, as
    the chunks are read, the category values the model never saw among the rows scored."""

    chunks: Iterator[T]
    problems: list[RowProblem] = field(default_factory=list)
    unknown: UnknownValues = field(default_factory=UnknownValues)


def score_rows(
    bundle: Bundle,
    chunks: Iterable[RowChunk],
    *,
    threshold: float | None = None,
    skip_bad: bool = False,
    source: str = "the input",
    explain: bool = False,
    first_row: int = 1,
) -> ScoredStream[ScoredChunk]:
    """Score chunks as they come, in order. A bad row raises InputError unless `skip_bad`.
    `first_row` is the number problems give the first row (a partition's place in its input);
    JSON chunks number their rows themselves (`RowChunk.numbers`: a row, or a line).

    The tree tables score with numpy, which lets go of the interpreter's lock, so while
    this thread checks the next chunk, `SCORING_THREADS` threads score this one.
    Another scorer (the pipeline, which has threads of its own; a remote server, sent one
    request at a time) scores each chunk in turn. A failure comes after the rows before it.
    With `explain`, each row's contributions are added (`explain.explain`, in turn).
    """
    stream: ScoredStream[ScoredChunk] = ScoredStream(chunks=iter(()))
    threads = SCORING_THREADS if isinstance(bundle.scorer, TreeTables) and not explain else 0

    def checked_chunks() -> Iterator[tuple[Kept, CheckedColumns, bool]]:
        """Per chunk: its good rows and its columns, its census columns checked, and
        whether the input paused after it (`RowChunk.paused`)."""
        row = first_row
        known = _KnownValues()
        for chunk in chunks:
            names = chunk.column_names
            added = {PREDICTION, PROBABILITY}
            if explain:
                added |= {BASE_VALUE, *(f"{CONTRIBUTION}{name}" for name in COLUMNS)}
            if clash := sorted(added & set(names)):
                raise InputError(
                    f"The input already has column(s) {', '.join(clash)} (the output of an "
                    "earlier run?); drop or rename them, since the output adds its own."
                )
            checked = known.check(chunk.distinct) if chunk.distinct is not None else None
            if checked is None:
                checked = check_columns(chunk.columns, first_row=row)
            if checked.problems or chunk.refused:
                problems = chunk.problems(checked.problems, row)
                if not skip_bad:
                    from census_salary.data import summarise  # (pandas: only on failure)

                    raise InputError(summarise(problems, source), problems)
                stream.problems.extend(problems)
            stream.unknown.add(bundle.unknown_values(checked.columns))
            row += len(checked.good)
            yield (_kept(chunk.table, checked.good), names), checked, chunk.paused

    def scored(kept: Kept, probabilities: np.ndarray) -> ScoredChunk:
        labels = bundle.labels(probabilities, threshold)
        return ScoredChunk(*kept, labels, probabilities)

    def in_turn() -> Iterator[ScoredChunk]:
        for kept, checked, _ in checked_chunks():
            chunk = scored(kept, bundle.probabilities(checked.columns))
            if explain:
                from census_salary.explain import explain as explain_rows

                explained = explain_rows(bundle, checked.columns)
                chunk = replace(
                    chunk, contributions=explained.values, base_value=explained.base_value
                )
            yield chunk

    def overlapped() -> Iterator[ScoredChunk]:
        pending: deque[tuple[Kept, list[Future[np.ndarray]]]] = deque()
        failure: Exception | None = None
        pool = ThreadPoolExecutor(threads, thread_name_prefix="census-score")
        finished = False
        try:
            try:
                for kept, checked, paused in checked_chunks():
                    # In pieces: both threads work on one chunk, and each holds little.
                    pieces = [
                        pool.submit(bundle.probabilities, piece)
                        for piece in _pieces(checked.columns, len(checked), SCORING_ROWS)
                    ]
                    pending.append((kept, pieces))
                    # One chunk is scored while the next is checked, unless the input has
                    # paused: then no next chunk is coming soon, and this one goes out now.
                    while len(pending) > (0 if paused else 1):
                        yield scored(*_joined(pending.popleft()))
            except Exception as exc:  # the rows before it go out first, as they would in turn
                failure = exc
            while pending:
                yield scored(*_joined(pending.popleft()))
            finished = True
        finally:
            # A stream left unfinished is closed by whoever drops it, even the garbage
            # collector in the middle of starting a thread: joining threads there can
            # deadlock (it did, in CI), so its threads are told to stop and not waited for.
            pool.shutdown(wait=finished, cancel_futures=not finished)
        if failure is not None:
            raise failure

    stream.chunks = overlapped() if threads else in_turn()
    return stream


def score_chunks(
    bundle: Bundle,
    chunks: Iterable[RowChunk],
    *,
    threshold: float | None = None,
    skip_bad: bool = False,
    source: str = "the input",
) -> ScoredStream[pd.DataFrame]:
    """`score_rows`, each chunk as a pandas DataFrame with `prediction` and `probability`."""
    rows = score_rows(bundle, chunks, threshold=threshold, skip_bad=skip_bad, source=source)
    return ScoredStream((chunk.to_frame() for chunk in rows.chunks), rows.problems, rows.unknown)


def _pieces(columns: ColumnTable, n_rows: int, size: int) -> Iterator[ColumnTable]:
    """Columns of checked rows, `size` rows at a time (at least one piece, maybe empty)."""
    for start in range(0, max(n_rows, 1), size):
        yield columns.rows(slice(start, start + size))


def _joined(scored: tuple[Kept, list[Future[np.ndarray]]]) -> tuple[Kept, np.ndarray]:
    kept, pieces = scored
    return kept, np.concatenate([piece.result() for piece in pieces])


def _kept(
    table: pa.Table | list[dict[str, Any]], good: np.ndarray
) -> pa.Table | list[dict[str, Any]]:
    if good.all():
        return table
    if isinstance(table, list):
        return [row for row, keep in zip(table, good.tolist(), strict=True) if keep]
    import pyarrow.compute as pc

    return pc.filter(table, arrow_bools(good), memory_pool=arrow_pool())


class _KnownValues:
    """Per census column, what `check_columns` made of each text it has accepted.

    `check_columns` decides each value on its own (`contract.parse_value`), so a CSV
    chunk is checked by checking the distinct texts of its columns that earlier chunks
    did not have, and each row takes its values' results. When a text is refused, the
    chunk is checked row by row instead, for the row numbers.
    """

    LIMIT = 1 << 16  # texts remembered per column; then it starts afresh

    def __init__(self) -> None:
        self._known: dict[str, dict[Any, Any]] = {name: {} for name in COLUMNS}

    def check(self, distinct: Mapping[str, DistinctColumn]) -> CheckedColumns | None:
        """The chunk's columns as `check_columns` gives them, or None if a value is refused
        (or a column is missing: `check_columns` says which)."""
        if any(name not in distinct for name in COLUMNS):
            return None
        # (set and map work in C: this runs while other threads wait for the lock)
        try:
            new = {
                name: list(set(distinct[name].values).difference(self._known[name]))
                for name in COLUMNS
            }
        except TypeError:  # a list or an object (from Parquet): refused, row by row
            return None
        longest = max(map(len, new.values()))
        if longest:
            # Every column as long as the longest list of new texts, filled with a text
            # of its own that is known to pass.
            checked = check_columns(
                {
                    name: texts + [(texts or distinct[name].values)[0]] * (longest - len(texts))
                    for name, texts in new.items()
                }
            )
            if checked.problems:
                return None
            for name, texts in new.items():
                parsed = checked.columns[name][: len(texts)].tolist()
                self._known[name].update(zip(texts, parsed, strict=True))
        columns: dict[str, np.ndarray | DistinctColumn] = {}
        for name, column in distinct.items():
            if name not in SPECS:
                continue
            known = self._known[name]
            parsed = DistinctColumn(list(map(known.__getitem__, column.values)), column.codes)
            if SPECS[name].kind == "number":
                columns[name] = np.array(parsed.values, dtype=np.float64)[parsed.codes]
            else:
                columns[name] = parsed
            if len(known) > self.LIMIT:
                known.clear()
        n_rows = len(distinct[COLUMNS[0]])
        good = np.ones(n_rows, dtype=bool)
        return CheckedColumns(columns=ColumnTable(columns), good=good, problems=[])


# --- files -------------------------------------------------------------------------------


def predict_file(
    bundle: Bundle,
    input_path: Path | None,
    output_path: Path | None,
    *,
    input_format: InputFormat | None = None,
    output_format: OutputFormat | None = None,
    threshold: float | None = None,
    skip_bad: bool = False,
    chunk_size: int = 50_000,
    progress: Progress | None = None,
    explain: bool = False,
) -> Predicted:
    """Score a file (or stdin) to a file (or stdout); return the problems of skipped rows
    and the category values the model never saw.

    The input's format, when not given, is detected (`rows.read_rows`); the output's is
    the one its suffix names (`rows.SUFFIX_FORMATS`), else the input's.

    The output file is written whole or not at all: on a bad row it is left as it was.
    """
    source = str(input_path) if input_path else "standard input"
    with contextlib.ExitStack() as stack:
        if input_path is None:
            handle: IO[bytes] = stack.enter_context(_standard_input())
        else:
            try:
                handle = stack.enter_context(input_path.open("rb"))
            except OSError as exc:
                raise InputError(f"Cannot read {input_path}: {exc.strerror}.") from None
        fmt, chunks = read_rows(handle, input_format, chunk_size, name=input_path)
        out_fmt = output_format or named_format(output_path) or fmt
        if output_path is None and out_fmt == "parquet" and sys.stdout.isatty():
            raise InputError(
                "Parquet output is binary: write it to a file with --output FILE "
                "(or pipe standard output into one)."
            )
        # (JSON is decoded by Python, which holds the lock throughout. Parquet is decoded
        # by pyarrow's own threads: reading ahead gained 3% on 1M rows for 45 MB more,
        # and a reader left mid-batch in a thread of ours aborts the process on exit)
        if fmt == "csv":
            chunks = _read_ahead(chunks, READ_AHEAD)
        chunks = _counted(chunks, progress or NoProgress())
        stream = score_rows(
            bundle,
            chunks,
            threshold=threshold,
            skip_bad=skip_bad,
            source=source,
            explain=explain,
        )
        if output_path is None:
            _write_to_stdout(stream.chunks, out_fmt)
        else:
            with atomic_open(output_path, "wb") as out:
                write_predictions(stream.chunks, out_fmt, out)
    return Predicted(stream.problems, stream.unknown)


@contextlib.contextmanager
def _standard_input() -> Iterator[IO[bytes]]:
    """Standard input, unbuffered, over a copy of its descriptor (when it has one).

    The read-ahead thread may be waiting on a pipe when Ctrl-C ends the process. Were it
    reading `sys.stdin.buffer`, it would hold that buffer's lock, and the interpreter,
    closing `sys.stdin` on its way out, would abort ("could not acquire lock for <stdin>
    at interpreter shutdown"); a raw file of our own has no lock, and closing it does not
    wait for the thread.
    """
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by one without a descriptor
        yield sys.stdin.buffer
        return
    with io.FileIO(os.dup(fd)) as raw:
        yield raw


def _write_to_stdout(chunks: Iterator[ScoredChunk], fmt: OutputFormat) -> None:
    """Rows go out as they are scored; a failure later on says how many already went."""
    written = 0

    def counted() -> Iterator[ScoredChunk]:
        nonlocal written
        for chunk in chunks:
            yield chunk
            written += len(chunk)  # resumed once the chunk has been written
            out.flush()  # for a reader of rows piped in slowly, before waiting for more

    out = _Stdout(sys.stdout.buffer)
    try:
        _write_failed(sys.stdout.flush)  # bytes go to the buffer beneath: printed text first
        write_predictions(counted(), fmt, out)
        out.flush()
    except CensusError as exc:
        if written:
            exc.args = (f"{exc} ({written} row(s) were written to standard output before this.)",)
        raise


class _Stdout(io.RawIOBase):
    """Standard output, whose failure to take the rows (a full disk, say) is an InputError;
    a reader gone away (BrokenPipeError) is left to the CLI, which stops quietly."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return _write_failed(self._out.write, data)

    def flush(self) -> None:
        _write_failed(self._out.flush)


def _write_failed(write: Callable[..., T], *args: Any) -> T:
    try:
        return write(*args)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise InputError(
            f"Cannot write the output: {exc.strerror or exc}; standard output refused it "
            "(write to a file with --output FILE instead)."
        ) from None


def _counted(chunks: Iterable[RowChunk], progress: Progress) -> Iterator[RowChunk]:
    """Pass chunks through, counting their rows on the progress display."""
    progress.start("Scoring rows")
    for chunk in chunks:
        yield chunk
        progress.advance(len(chunk))


def _read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items`, taken from them by a thread of their own up to `depth` ahead: reading and
    parsing (pyarrow lets go of the interpreter's lock) go on while chunks are checked,
    scored and written. An exception is raised here, in its turn."""
    box: queue.Queue[tuple[bool, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                box.put(item, timeout=0.1)
                return True
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
        except BaseException as exc:  # handed over to the consumer, which raises it
            put((True, exc))
        else:
            put((True, None))

    # A daemon: after an error it may still wait on a pipe, and must not keep the process.
    reader = threading.Thread(target=run, name="census-read", daemon=True)
    reader.start()
    try:
        while True:
            done, item = box.get()
            if done:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        # Stopped early (a bad row, Ctrl-C), the reader may be parsing a block in pyarrow,
        # without the interpreter's lock: were the process to end under it, pyarrow's
        # memory would be freed as it works (a crash, seen on Ctrl-C in a busy machine).
        # It stops at its next chunk; waiting on a pipe, it is left to wait.
        reader.join(READER_STOP_SECONDS)
