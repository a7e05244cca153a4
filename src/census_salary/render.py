"""Rich renderings for people at a terminal (the CLI's side of "render at the edge")."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich import box
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

from census_salary.metrics import Metrics, SliceReport
from census_salary.report import fmt, metric_rows, slice_cells

if TYPE_CHECKING:
    from census_salary.artifacts import RunStatus, Switch
    from census_salary.train import TrainResult

# Version ids are shown from their start (what `census use` takes) up to the second they
# were made, longer only where two would look alike.
SHORT_VERSION = len("20261127T120301Z")
MODEL_NAMES = {
    "hist_gradient_boosting": "hist GB",
    "random_forest": "forest",
    "logistic_regression": "log-reg",
}


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
    if result.removed:
        removed = ", ".join(short_versions(list(result.removed)).values())
        table.add_row("older bundles removed", Text(removed))
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


def short_versions(versions: list[str]) -> dict[str, str]:
    """{version: the shortest start of it, from SHORT_VERSION characters on, that no other
    of `versions` shares}."""
    short = {}
    for version in versions:
        length = SHORT_VERSION
        while length < len(version) and any(
            other != version and other.startswith(version[:length]) for other in versions
        ):
            length += 1
        short[version] = version[:length]
    return short


def runs_table(history: list[RunStatus]) -> Table:
    """One line per run, within 80 columns: its bundle marked current, kept or removed."""
    table = Table(
        title=f"{len(history)} training run(s)",
        caption="bundle: current, kept (`census use VERSION` makes it current) or removed "
        "(only the run's record is left).",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,  # one space between columns, so it fits 80 columns
    )
    table.add_column("version", no_wrap=True)
    table.add_column("bundle", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for name in ("threshold", "accuracy", "F1", "ROC AUC"):
        table.add_column(name, justify="right", no_wrap=True)
    short = short_versions([status.run.version for status in history])
    for status in history:
        run = status.run
        bundle = "current" if status.current else ("kept" if status.kept else "removed")
        table.add_row(
            short[run.version],
            bundle,
            MODEL_NAMES.get(run.model_kind, run.model_kind),
            fmt(run.threshold, 4),
            fmt(run.metrics.accuracy),
            fmt(run.metrics.f1),
            fmt(run.metrics.roc_auc),
            style="bold" if status.current else ("dim" if not status.kept else None),
        )
    return table


def switch_text(switch: Switch) -> Text:
    version = switch.version
    if switch.previous == version:
        done = f"{version} was already the current model; its checks pass."
    elif switch.previous is None:
        done = f"{version} is now the current model."
    else:
        done = f"{version} is now the current model (it was {switch.previous})."
    return Text(f"{done} A running `census serve` loads it when it restarts.")
