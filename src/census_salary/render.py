"""Rich renderings for people at a terminal (the CLI's side of "render at the edge")."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from census_salary.metadata import RunRecord
from census_salary.metrics import Metrics, SliceReport
from census_salary.report import fmt, metric_rows, slice_cells

if TYPE_CHECKING:
    from census_salary.train import TrainResult


class RichProgress:
    """The library's Progress protocol drawn as a rich progress bar on stderr."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def start(self, description: str, total: float | None = None) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: float = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


def metrics_table(metrics: Metrics, title: str) -> Table:
    table = Table(title=Text(title), show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for name, value in metric_rows(metrics):
        table.add_row(name, value)
    return table


def train_table(result: TrainResult) -> Table:
    meta = result.metadata
    table = metrics_table(meta.metrics, title=f"Trained model {meta.version}")
    table.add_row("model kind", meta.model_kind)
    table.add_row("training rows", str(meta.data.rows_train))
    table.add_row("duplicates dropped", str(meta.data.duplicates_dropped))
    table.add_row("seconds", f"{result.seconds:.1f}")
    table.add_row("bundle", Text(str(result.bundle_dir)))
    return table


def slice_table(report: SliceReport) -> Table:
    table = Table(
        title=f"Slices at threshold {report.threshold:.4f}",
        caption="pos: actual positive rate; sel: predicted positive rate; "
        f"slices under {report.min_rows} rows are too small to judge.",
    )
    headers = (
        "feature",
        "value",
        "rows",
        "pos",
        "sel",
        "prec",
        "rec",
        "F1",
        "FPR",
        "FNR",
        "F1 gap",
    )
    for name in headers:
        left = name in ("feature", "value")
        table.add_column(name, justify="left" if left else "right", no_wrap=not left)
    table.add_row(*map(Text, slice_cells(report.overall)), style="bold")
    for s in report.slices:
        style = "dim" if s.too_small else ("red" if (s.f1_gap or 0) < -0.1 else None)
        table.add_row(*map(Text, slice_cells(s)), style=style)  # values are data, not markup
    return table


def runs_table(runs: list[RunRecord]) -> Table:
    table = Table(title=f"{len(runs)} training run(s)")
    for name in ("version", "model", "threshold", "accuracy", "F1", "ROC AUC", "data SHA-256"):
        table.add_column(name)
    for run in runs:
        table.add_row(
            run.version,
            run.model_kind,
            fmt(run.threshold, 4),
            fmt(run.metrics.accuracy),
            fmt(run.metrics.f1),
            fmt(run.metrics.roc_auc),
            run.data_sha256[:12],
        )
    return table
