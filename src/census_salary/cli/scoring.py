"""Commands that score rows: predict (files and streams), serve (HTTP)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from census_salary.cli.app import app, current_bundle, err_console, progress_bar, settings_of

if TYPE_CHECKING:
    from census_salary.errors import RowProblem
    from census_salary.partition import FileProblem, FilesPredicted
    from census_salary.predict import UnknownValues


class RowFormat(StrEnum):
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


class OnError(StrEnum):
    stop = "stop"
    skip = "skip"


class Engine(StrEnum):
    spark = "spark"
    dask = "dask"


@app.command()
def predict(
    ctx: typer.Context,
    input_path: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Rows to score (default: standard input)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (whole or not at all) instead of stdout."),
    ] = None,
    input_format: Annotated[
        RowFormat | None,
        typer.Option(
            "--format",
            help="Input format (default: detected). Parquet from stdin is first copied "
            "to a temporary file (it is read from its end); --input reads it in place.",
        ),
    ] = None,
    output_format: Annotated[
        RowFormat | None,
        typer.Option(
            "--output-format",
            help="Output format (default: by the suffix of --output, else as the input; "
            "with --engine, Parquet parts). Parquet is binary: to --output, "
            "or to stdout when it is not a terminal.",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", min=0, max=1, help="Override the model's decision threshold."),
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option("--on-error", help="stop at a bad row (exit 2), or skip it and list it."),
    ] = OnError.stop,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Rows read and scored at a time.")
    ] = 50_000,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Score on a running `census serve` at this URL instead."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="CENSUS_API_KEY", help="API key for --url."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per request with --url.")
    ] = 1000,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Add each row's contributions: one contribution_<feature> column per "
            "feature (SHAP values, log-odds) and base_value; they add up to the log-odds.",
        ),
    ] = False,
    engine: Annotated[
        Engine | None,
        typer.Option(
            "--engine",
            help="Score on a cluster: --input is a file, directory or glob of CSV, JSON, "
            "JSON Lines or Parquet files, --output a directory of part files (Parquet, or "
            "--output-format csv).",
        ),
    ] = None,
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master URL (default: local[*]).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (default: a local cluster)."),
    ] = None,
) -> None:
    """Score rows (CSV, JSON array, {"inputs": [...]}, JSON Lines or Parquet) from a file or
    stdin."""
    if engine is not None:
        found = _predict_on_engine(
            ctx,
            engine,
            master if engine is Engine.spark else scheduler,
            input_path,
            output,
            input_format=input_format,
            output_format=output_format,
            threshold=threshold,
            skip_bad=on_error is OnError.skip,
            chunk_size=chunk_size,
            other=bool(url or explain),
        )
        _print_skipped(found.problems)
        _print_unknown(found.unknown)
        return
    if url is not None and explain:  # (refused before the server is asked anything)
        from census_salary.errors import InputError

        raise InputError(
            "--explain works on a local bundle only (it needs the model's trees); "
            "drop --url to explain rows with the local model, or drop --explain."
        )
    from census_salary.collector import paused, settled

    with paused():  # then settled: see census_salary.collector
        from census_salary.predict import predict_file

        if url is not None:
            from census_salary.remote import open_remote

            bundle = open_remote(url, api_key=api_key, batch_size=batch_size)
        else:
            bundle = current_bundle(settings_of(ctx))
    # A bar on stderr would tangle with rows printed to the same terminal.
    with (
        progress_bar(enabled=output is not None or not sys.stdout.isatty()) as progress,
        settled(),  # rows by the thousand, made and dropped: fewer, shorter collections
    ):
        predicted = predict_file(
            bundle,
            input_path,
            output,
            input_format=input_format,
            output_format=output_format,
            threshold=threshold,
            skip_bad=on_error is OnError.skip,
            chunk_size=chunk_size,
            progress=progress,
            explain=explain,
        )
    _print_skipped(predicted.problems)
    _print_unknown(predicted.unknown)


def _print_skipped(problems: Sequence[RowProblem | FileProblem]) -> None:
    from rich.markup import escape

    for problem in problems:
        err_console().print(
            f"[yellow]Skipped[/] {escape(str(problem))}", highlight=False, soft_wrap=True
        )


def _print_unknown(unknown: UnknownValues) -> None:
    from rich.markup import escape

    columns = []
    for name, rows in unknown.rows.items():
        values = unknown.values[name]
        shown = ", ".join(f"{value!r} ({_rows(n)})" for value, n in values.items())
        if (left := rows - sum(values.values())) > 0:
            shown += f" and other values ({_rows(left)})"
        columns.append(f"{name} {shown}")
    if columns:
        err_console().print(
            f"[yellow]Warning:[/] values the model never saw, scored as missing: "
            f"{escape('; '.join(columns))}.",
            highlight=False,
            soft_wrap=True,
        )


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _predict_on_engine(
    ctx: typer.Context,
    engine: Engine,
    address: str | None,
    input_path: Path | None,
    output: Path | None,
    *,
    input_format: RowFormat | None,
    output_format: RowFormat | None,
    other: bool,
    **options: Any,
) -> FilesPredicted:
    from census_salary.bundle import current_bundle_dir
    from census_salary.errors import InputError
    from census_salary.partition import engine_runner, predict_files

    if input_path is None or output is None or other:
        raise InputError(
            "--engine needs --input and --output, and takes neither --url nor --explain."
        )
    if output_format not in (None, RowFormat.csv, RowFormat.parquet):
        raise InputError("--engine writes Parquet parts (or CSV: --output-format csv).")
    settings = settings_of(ctx)
    return predict_files(
        engine_runner(engine.value, address),
        current_bundle_dir(settings.artifacts_dir),
        str(input_path),
        output,
        scorer=settings.model.scorer,
        input_format=input_format and input_format.value,
        output_format=output_format.value if output_format else "parquet",
        **options,
    )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port (default: $PORT, then census.toml)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: $WEB_CONCURRENCY, then config)."),
    ] = None,
) -> None:
    """Serve the model over HTTP: a form at /, /health, /ready, /predict and /docs."""
    from census_salary.collector import paused

    with paused():  # until the server settles, its model loaded: see census_salary.collector
        from census_salary.server import run_server

        run_server(settings_of(ctx), host=host, port=port, workers=workers)
