"""`census monitor`: the drift of a batch of rows, and the model's performance over time.

Rows are read as `census predict` reads them (`rows.read_rows`: CSV, JSON, JSON Lines),
checked by the one contract check and scored by the bundle. Their drift against the
bundle's training profile is the same report `/drift` gives (`drift.DriftReport`).

When the rows carry their label (`salary`, or another spelling of it) and a time column,
they are grouped by day, week or month, and each period gets its row count, accuracy,
precision, recall, F1, positive rate (true `>50K` share) and selection rate (predicted),
from `metrics.evaluate` (the one definition of each). Those periods are appended to the
history file `monitor.jsonl` in the artifacts folder, beside `runs.jsonl`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import pandas as pd

from census_salary.bundle import Bundle
from census_salary.contract import TARGET, canonical_name, check_columns, show_value
from census_salary.drift import DriftCounts, DriftReport
from census_salary.errors import InputError, ModelError, RowProblem, no_rows
from census_salary.files import atomic_write
from census_salary.metrics import Metrics
from census_salary.progress import NoProgress, Progress
from census_salary.rows import InputFormat, RowChunk, read_rows

HISTORY_FILE = "monitor.jsonl"
Period = Literal["day", "week", "month"]
_PANDAS_PERIOD = {"day": "D", "week": "W-SUN", "month": "M"}  # weeks from Monday


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodMetrics(_Record):
    """The model's performance on the labelled rows of one period."""

    period: str  # "2026-11-28", "2026-11-23/2026-11-29" (a week) or "2026-11"
    start: date
    rows: int
    accuracy: float
    precision: float | None
    recall: float | None
    f1: float | None
    positive_rate: float  # share of rows labelled >50K
    selection_rate: float  # share of rows predicted >50K


class MonitorReport(_Record):
    source: str
    rows: int
    drift: DriftReport
    period: Period | None = None
    periods: list[PeriodMetrics] = []


class HistoryRecord(PeriodMetrics):
    """One line of `monitor.jsonl`: one period of one `census monitor` run."""

    recorded_at: datetime
    model_version: str
    source: str
    period_kind: Period


def monitor_rows(
    bundle: Bundle,
    source: IO[bytes],
    *,
    name: str = "the input",
    fmt: InputFormat | None = None,
    chunk_size: int = 50_000,
    time_column: str | None = None,
    period: Period = "month",
    progress: Progress | None = None,
    target: str = TARGET,
) -> MonitorReport:
    """The drift of the rows in `source` against `bundle`'s profile; with `time_column`,
    also its performance per `period` (the rows need their label then). `name` is the
    file's, for messages (and a .jsonl name reads JSON Lines; see `rows.read_rows`)."""
    if bundle.profile is None:
        raise ModelError(
            f"Model {bundle.version} has no drift profile (it was trained before census "
            "stored one), so there is nothing to compare with. Retrain with `census train`."
        )
    progress = progress or NoProgress()
    progress.start(f"Reading {name}", total=None)
    counts = DriftCounts(bundle.profile)
    probabilities, truths, times = [], [], []
    first_row = 1
    _, chunks = read_rows(source, fmt, chunk_size, name=name)
    for chunk in chunks:
        checked = check_columns(chunk.columns, first_row=first_row)
        problems = checked.problems
        if time_column is not None and not problems:
            labels = _column(chunk, _label_column(chunk, target), "the label")
            y, when, problems = labels_and_times(
                labels, _column(chunk, time_column, "--time-column"), time_column, first_row, target
            )
            truths.append(y)
            times.append(when)
        if problems or chunk.refused:
            from census_salary.data import summarise  # (pandas: only on failure)

            problems = chunk.problems(problems, first_row)  # JSON Lines: file lines
            raise InputError(summarise(problems, name), problems)
        scored = bundle.probabilities(checked.columns)
        counts.add(checked.columns, scored >= bundle.threshold)
        probabilities.append(scored)
        first_row += len(chunk)
        progress.advance(len(chunk))
    drift = counts.report(bundle.version)
    if first_row == 1:
        raise no_rows(name)
    if time_column is None:
        return MonitorReport(source=name, rows=drift.rows, drift=drift)
    import pandas as pd

    periods = _periods(
        np.concatenate(probabilities),
        np.concatenate(truths),
        pd.concat(times),
        bundle.threshold,
        period,
    )
    return MonitorReport(source=name, rows=drift.rows, drift=drift, period=period, periods=periods)


def _label_column(chunk: RowChunk, target: str) -> str:
    """The input's column of the label (`[data] target`, in any spelling)."""
    label = canonical_name(target)
    for column in chunk.column_names:
        if canonical_name(column) == label:
            return column
    also = " (or income/class)" if label == TARGET else ""
    raise InputError(
        f"--time-column needs each row's label to measure performance, and the input has "
        f"no {target!r} column{also}; add it, or leave out --time-column."
    )


def _column(chunk: RowChunk, column: str, what: str) -> list[Any]:
    table = chunk.table
    if isinstance(table, list):  # JSON rows
        if not any(column in row for row in table):
            raise _no_column(column, what)
        return [row.get(column) for row in table]
    if column not in table.column_names:
        raise _no_column(column, what)
    return table.column(column).to_pylist()


def _no_column(column: str, what: str) -> InputError:
    return InputError(f"The input has no column {column!r} ({what}).")


def performance_by_period(
    probabilities: np.ndarray,
    labels: list[Any],
    times: list[Any],
    threshold: float,
    time_column: str,
    period: Period,
    source: str,
) -> list[PeriodMetrics]:
    """Per period, in time order: the metrics of the rows whose time falls in it."""
    y, when, problems = labels_and_times(labels, times, time_column)
    if problems:
        from census_salary.data import summarise

        raise InputError(summarise(problems, source), problems)
    return _periods(probabilities, y, when, threshold, period)


def labels_and_times(
    labels: list[Any],
    times: list[Any],
    time_column: str,
    first_row: int = 1,
    target: str = TARGET,
) -> tuple[np.ndarray, pd.Series, list[RowProblem]]:
    """Rows' labels (1 for >50K) and times (UTC), and the problems of the rows whose label
    or time is not one, in row order, the rows numbered from `first_row`."""
    import pandas as pd

    from census_salary.data import parse_labels

    y, problems = parse_labels(pd.Series(labels, dtype=object), target)
    raw = pd.Series(times, dtype=object)
    when = pd.to_datetime(raw.astype(str), errors="coerce", utc=True, format="ISO8601")
    # In UTC, a time may leave the years Python's dates hold (9999-12-31T23:00-12:00).
    bad = when.isna() | raw.isna() | ~when.dt.year.between(1, 9999)
    problems += [
        RowProblem(
            int(i) + 1,
            time_column,
            f"got {show_value(raw.iloc[i])}; expected a calendar date or time of the years "
            "1 to 9999 in UTC (ISO 8601, as 2026-11-28 or 2026-11-28T09:30:00Z; not a week "
            "date such as 2026-W48-6)",
        )
        for i in np.flatnonzero(bad.to_numpy())
    ]
    shifted = [replace(p, row=p.row + first_row - 1) for p in problems]
    return y.to_numpy(), when, sorted(shifted, key=lambda p: p.row)


def _periods(
    probabilities: np.ndarray, y: np.ndarray, when: pd.Series, threshold: float, period: Period
) -> list[PeriodMetrics]:
    from census_salary.metrics import evaluate  # scikit-learn: only with labels

    spans = when.reset_index(drop=True).dt.tz_localize(None).dt.to_period(_PANDAS_PERIOD[period])
    result = []
    for span in sorted(spans.unique()):
        rows = (spans == span).to_numpy()
        m = evaluate(y[rows], probabilities[rows], threshold)
        result.append(
            PeriodMetrics(
                period=str(span),
                start=span.start_time.date(),
                rows=m.rows,
                accuracy=m.accuracy,
                precision=m.precision,
                recall=m.recall,
                f1=m.f1,
                positive_rate=m.positive_rate,
                selection_rate=m.selection_rate,
            )
        )
    return result


def write_plot(path: Path, report: MonitorReport, training: Metrics) -> None:
    """Draw the report (`charts.monitor`) into a PNG at `path`, whole or not at all."""
    from census_salary.charts import monitor, png_of

    try:
        atomic_write(path, png_of(monitor(report, training)))
    except OSError as exc:
        raise InputError(f"Cannot write the plot to {path}: {exc.strerror or exc}.") from None


def history_records(report: MonitorReport, version: str) -> Iterator[HistoryRecord]:
    now = datetime.now(UTC).replace(microsecond=0)
    for item in report.periods:
        yield HistoryRecord(
            **item.model_dump(),
            recorded_at=now,
            model_version=version,
            source=report.source,
            period_kind=report.period or "month",
        )


def append_history(artifacts_dir: Path, report: MonitorReport, version: str) -> Path:
    """Add the report's periods to `monitor.jsonl`: one write in append mode, so a whole
    run's lines go in together, never interleaved with another's, and fsynced."""
    path = artifacts_dir / HISTORY_FILE
    data = "".join(r.model_dump_json() + "\n" for r in history_records(report, version))
    if not data:
        return path
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(
            f"Cannot append to {path}: {exc.strerror or exc}. Make the folder writable, or "
            "leave out the history with --no-history."
        ) from None
    return path


def read_history(artifacts_dir: Path) -> list[HistoryRecord]:
    """The history, oldest first."""
    path = artifacts_dir / HISTORY_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [HistoryRecord.model_validate_json(line) for line in lines if line.strip()]
