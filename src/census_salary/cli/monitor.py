"""`census monitor`: drift of a batch of rows and performance over time (see `monitoring`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from census_salary.cli.app import (
    app,
    current_bundle,
    out_console,
    print_json,
    progress_bar,
    settings_of,
)
from census_salary.cli.scoring import RowFormat


class PeriodChoice(StrEnum):
    day = "day"
    week = "week"
    month = "month"


@app.command()
def monitor(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Option(
            "--data", exists=True, dir_okay=False, help="Rows: CSV, JSON, JSON Lines or Parquet."
        ),
    ],
    input_format: Annotated[
        RowFormat | None,
        typer.Option("--format", help="Input format (default: detected)."),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column",
            help="Column with each row's date or time (ISO 8601): also report accuracy, "
            "precision, recall, F1 and positive rate per period (the rows need their label).",
        ),
    ] = None,
    period: Annotated[
        PeriodChoice, typer.Option("--period", help="Periods of --time-column.")
    ] = PeriodChoice.month,
    history: Annotated[
        bool,
        typer.Option(
            "--history/--no-history",
            help="With --time-column, append the periods to monitor.jsonl in the artifacts folder.",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", dir_okay=False, help="Also draw the report as a PNG here."),
    ] = None,
    fail_over: Annotated[
        float | None,
        typer.Option(
            "--fail-over",
            min=0,
            help="Exit with code 5 when a feature's PSI is above this (0.25: a major shift).",
        ),
    ] = None,
) -> None:
    """Drift of a batch of rows against the training data (PSI per feature), and with
    labels and --time-column the model's performance per period."""
    from census_salary.collector import paused, settled

    with paused():  # then settled: see census_salary.collector
        from census_salary.monitoring import append_history, monitor_rows, write_plot

        settings = settings_of(ctx)
        bundle = current_bundle(settings)
    with progress_bar() as progress, settled(), data.open("rb") as source:
        report = monitor_rows(
            bundle,
            source,
            name=str(data),
            fmt=input_format.value if input_format else None,
            time_column=time_column,
            period=period.value,
            progress=progress,
            target=settings.data.target,
        )
    if history and report.periods:
        append_history(settings.artifacts_dir, report, bundle.version)
    if plot is not None:
        write_plot(plot, report, bundle.metadata.metrics)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        from census_salary.render import drift_table, periods_table

        console = out_console()
        console.print(drift_table(report, fail_over))
        if report.periods:
            console.print(periods_table(report, bundle.metadata.metrics))
    if fail_over is not None:
        report.drift.check_psi(fail_over)
