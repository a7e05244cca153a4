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

from census_salary.fairness import FairnessSummary
from census_salary.metrics import Metrics, SliceMetrics, SliceReport
from census_salary.report import fmt, fmt_interval, limit_text, metric_rows

if TYPE_CHECKING:
    from census_salary.artifacts import RunStatus, Switch
    from census_salary.monitoring import MonitorReport
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
    """The slices within 80 columns: rows, selection rate, F1 with its interval, error rates
    and the F1 gap (the other formats have every rate with its interval)."""
    caption = (
        "sel: predicted positive rate; FPR, FNR: false positive and negative rates; "
        f"slices under {report.min_rows} rows are too small to judge."
    )
    if report.bootstrap:
        caption += (
            f" In brackets: 95% intervals ({report.bootstrap} bootstrap resamples); "
            f"uncertain: F1 interval wider than {report.max_f1_width}, not ranked."
        )
    table = Table(
        title=f"Slices at threshold {report.threshold:.4f}",
        caption=Text(caption),
        box=box.SIMPLE_HEAD,
        padding=0,  # one space between columns, so it fits 80 columns
    )
    for name in ("feature", "value", "rows", "sel", "F1", "FPR", "FNR", "F1 gap"):
        left = name in ("feature", "value")
        # Values fold (wrap anywhere) rather than lose their end: they are data.
        wrap = {"overflow": "fold"} if name == "value" else {"no_wrap": True}
        table.add_column(name, justify="left" if left else "right", **wrap)
    for s in [report.overall, *report.slices]:
        if s.too_uncertain:
            style = "yellow"
        elif s.too_small:
            style = "dim"
        else:
            style = "red" if (s.f1_gap or 0) < -0.1 else None
        style = "bold" if s is report.overall else style
        table.add_row(*map(Text, _slice_row(s)), style=style)  # values are data, not markup
    return table


def _slice_row(s: SliceMetrics) -> list[str]:
    head = [s.feature, s.value, str(s.rows)]
    if s.too_small:
        return [*head, "", "too small", "", "", ""]
    return [
        *head,
        fmt(s.selection_rate, 2),
        fmt_interval(s.f1, s.intervals.get("f1"), 2),
        fmt(s.false_positive_rate, 2),
        fmt(s.false_negative_rate, 2),
        "uncertain" if s.too_uncertain else fmt(s.f1_gap, 2, signed=True),
    ]


SHORT_MEASURES = {
    "demographic_parity_difference": "parity difference",
    "demographic_parity_ratio": "parity ratio",
    "equalized_odds_difference": "equalized odds",
    "false_positive_rate_gap": "FPR gap",
    "false_negative_rate_gap": "FNR gap",
}
VERDICT_STYLES = {"breach": "red", "unclear": "yellow", "within": "green", "undefined": "dim"}


def fairness_table(fairness: FairnessSummary) -> Table:
    """Each fairness measure of each sensitive feature against its limit, within 80 columns."""
    table = Table(
        title="Fairness between groups",
        caption=Text(
            "breach: the whole interval lies beyond the limit ([fairness] in census.toml); "
            "unclear: it straddles the limit. groups: highest vs lowest rate."
        ),
        box=box.SIMPLE_HEAD,
        padding=0,
    )
    for name in ("feature", "measure", "value", "limit", "verdict", "groups"):
        right = name in ("value", "limit")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "groups")
    for feature in fairness.features:
        for d in feature.disparities:
            table.add_row(
                Text(feature.feature),
                SHORT_MEASURES[d.name],
                fmt_interval(d.value, d.interval, 2),
                limit_text(d),
                Text(d.verdict, style=VERDICT_STYLES[d.verdict]),
                Text(f"{d.high} vs {d.low}" if d.high is not None else ""),
            )
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


def drift_table(report: MonitorReport, fail_over: float | None) -> Table:
    """PSI per feature, its level, and the bin that moved most."""
    drift = report.drift
    rate = fmt(drift.predicted_positive_rate)
    table = Table(
        title=f"Drift of {report.rows:,} rows of {report.source} against model "
        f"{drift.model_version}",
        caption=Text(
            f"Predicted >50K: {rate} (training {drift.reference_positive_rate:.3f}). PSI "
            "under 0.1 is stable, 0.1-0.25 a moderate shift, over 0.25 a major one."
        ),
        box=box.SIMPLE_HEAD,
    )
    for name in ("feature", "PSI", "level", "bin moved most", "training", "batch"):
        table.add_column(
            name, justify="left" if name in ("feature", "level", "bin moved most") else "right"
        )
    for f in drift.features:
        moved = max(f.bins, key=lambda b: abs((b.observed_share or 0) - b.reference_share))
        over = fail_over is not None and f.psi is not None and f.psi > fail_over
        style = "red" if over or f.level == "major" else "yellow" if f.level == "moderate" else None
        table.add_row(
            *map(
                Text,
                [
                    f.feature,
                    fmt(f.psi),
                    f.level or "",
                    moved.label,
                    fmt(moved.reference_share),
                    fmt(moved.observed_share),
                ],
            ),
            style=style,
        )
    return table


def periods_table(report: MonitorReport, training: Metrics) -> Table:
    """Metrics per period, with the training (held-out) figures first."""
    names = ("accuracy", "precision", "recall", "f1", "positive_rate", "selection_rate")
    table = Table(
        title=f"Performance per {report.period}"
        + (" (from the Monday given)" if report.period == "week" else ""),
        caption="pos: share labelled >50K; sel: share predicted >50K.",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("period")
    table.add_column("rows", justify="right")
    for header in ("accuracy", "precision", "recall", "F1", "pos", "sel"):
        table.add_column(header, justify="right")
    table.add_row(
        "training",
        f"{training.rows:,}",
        *(fmt(getattr(training, name)) for name in names),
        style="bold",
    )
    for p in report.periods:
        label = str(p.start) if report.period == "week" else p.period
        table.add_row(label, f"{p.rows:,}", *(fmt(getattr(p, name)) for name in names))
    return table
