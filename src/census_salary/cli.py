"""The `census` command: one short function per command over the library.

Heavy libraries (pandas, scikit-learn, fastapi) are imported inside the commands that
need them, so `census --help` answers at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from census_salary import __version__
from census_salary.errors import CensusError, ExitCode

if TYPE_CHECKING:
    from census_salary.bundle import Bundle
    from census_salary.config import Settings
    from census_salary.metrics import SliceReport
    from census_salary.progress import Progress


class _CensusGroup(TyperGroup):
    """Turns the library's errors into one red line and a documented exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CensusError as exc:
            # escape: the message may quote the user's values, such as "[/]"
            err_console().print(
                f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # The reader went away (`census predict ... | head`): stop quietly, as cat does.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(ExitCode.OK) from None


app = typer.Typer(
    cls=_CensusGroup,
    help="Train, audit, run and serve the census income classifier.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def err_console() -> Console:
    return Console(stderr=True)


class SliceFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"
    text = "text"


class RowFormat(StrEnum):
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


class OnError(StrEnum):
    stop = "stop"
    skip = "skip"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"census {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="census.toml to use (default: $CENSUS_CONFIG, or the nearest census.toml "
            "in this folder or a parent).",
            dir_okay=False,
        ),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
    ] = 0,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Also append the log to this file.")
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    from census_salary.logs import configure_logging

    # A server logs its start and one line per request even without -v.
    verbose += ctx.invoked_subcommand == "serve"
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    configure_logging(level, log_file, show_time=verbose > 1)
    ctx.obj = config


def _settings(ctx: typer.Context) -> Settings:
    from census_salary.config import find_config, load_settings

    path = ctx.obj or find_config(Path.cwd(), os.environ)
    return load_settings(path)


def _bundle(settings: Settings) -> Bundle:
    from census_salary.bundle import load_bundle

    return load_bundle(settings.artifacts_dir, settings.model.scorer)


@contextlib.contextmanager
def _progress(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar on a terminal; silence when stderr is piped or captured."""
    from census_salary.progress import NoProgress

    if not enabled or not sys.stderr.isatty():
        yield NoProgress()
        return
    from census_salary.render import RichProgress

    with RichProgress(err_console()) as progress:
        yield progress


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@app.command()
def train(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Clean the data, fit the model, choose the threshold, evaluate and write the bundle."""
    from census_salary.render import train_table
    from census_salary.train import train as run_training

    settings = _settings(ctx)
    with _progress() as progress:
        result = run_training(settings, progress)
    if as_json:
        _print_json(result.metadata.model_dump(mode="json"))
    else:
        Console().print(train_table(result))


@app.command()
def evaluate(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A labelled census file (default: the held-out split)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Metrics of the current model on its held-out split or on a labelled file."""
    from census_salary.audit import evaluate_bundle
    from census_salary.render import metrics_table

    settings = _settings(ctx)
    metrics = evaluate_bundle(settings, _bundle(settings), data)
    if as_json:
        _print_json(metrics.model_dump(mode="json"))
    else:
        Console().print(
            metrics_table(metrics, title=f"Evaluation on {data or 'the held-out split'}")
        )


@app.command("slice-report")
def slice_report(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A labelled census file (default: the held-out split)."),
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option("--feature", "-f", help="Feature to slice (repeat; default: all)."),
    ] = None,
    output_format: Annotated[
        SliceFormat, typer.Option("--format", help="Output format.")
    ] = SliceFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    max_f1_gap: Annotated[
        float | None,
        typer.Option(
            "--max-f1-gap",
            min=0,
            help="Exit with code 5 when a slice's F1 is more than this below the overall F1.",
        ),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Features to cross, comma-separated: `--by sex,race` slices by each "
            "combination (repeat for more; adds to --feature; default: all, one by one).",
        ),
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(
            "--bootstrap",
            min=0,
            help="Bootstrap resamples behind the 95% intervals; 0: none "
            "(default: \\[slices] bootstrap in census.toml).",
        ),
    ] = None,
    fail_on_breach: Annotated[
        bool,
        typer.Option(
            "--fail-on-breach",
            help="Exit with code 5 when a fairness measure's interval lies wholly beyond "
            "its limit (\\[fairness] in census.toml).",
        ),
    ] = False,
) -> None:
    """Metrics on every slice of the data, with intervals, and a fairness summary, to expose
    where the model does worse and for whom."""
    from census_salary.audit import slice_bundle

    settings = _settings(ctx)
    crosses = [tuple(name.strip() for name in names.split(",")) for names in by or []]
    slicings = [*(feature or []), *crosses]
    report = slice_bundle(settings, _bundle(settings), data, slicings, bootstrap)
    _emit_slices(report, output_format, output)
    if max_f1_gap is not None:
        report.check_f1_gap(max_f1_gap)
    if fail_on_breach:
        report.check_fairness()


def _emit_slices(report: SliceReport, output_format: SliceFormat, output: Path | None) -> None:
    from census_salary import report as text

    if output_format is SliceFormat.table and output is None:
        from census_salary.render import fairness_table, slice_table

        console = Console()
        console.print(slice_table(report))
        if report.fairness is not None and report.fairness.features:
            console.print(fairness_table(report.fairness))
        return
    renderers = {
        SliceFormat.csv: text.render_slice_csv,
        SliceFormat.json: lambda r: r.model_dump_json(indent=2) + "\n",
        SliceFormat.markdown: text.render_slice_markdown,
        SliceFormat.text: text.render_slice_text,
        SliceFormat.table: text.render_slice_text,
    }
    rendered = renderers[output_format](report)
    if output is None:
        typer.echo(rendered, nl=False)
    else:
        from census_salary.files import atomic_write

        atomic_write(output, rendered.encode())


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
        typer.Option("--format", help="Input format (default: detected)."),
    ] = None,
    output_format: Annotated[
        RowFormat | None,
        typer.Option("--output-format", help="Output format (default: as the input)."),
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
) -> None:
    """Score rows (CSV, JSON array, {"inputs": [...]} or JSON Lines) from a file or stdin."""
    from census_salary.predict import predict_file

    if url is not None:
        from census_salary.remote import open_remote

        bundle = open_remote(url, api_key=api_key, batch_size=batch_size)
    else:
        bundle = _bundle(_settings(ctx))
    # A bar on stderr would tangle with rows printed to the same terminal.
    with _progress(enabled=output is not None or not sys.stdout.isatty()) as progress:
        problems = predict_file(
            bundle,
            input_path,
            output,
            input_format=input_format,
            output_format=output_format,
            threshold=threshold,
            skip_bad=on_error is OnError.skip,
            chunk_size=chunk_size,
            progress=progress,
        )
    for problem in problems:
        err_console().print(
            f"[yellow]Skipped[/] {escape(str(problem))}", highlight=False, soft_wrap=True
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
        typer.Option(min=1, help="Worker processes (default: $WEB_CONCURRENCY, then config)."),
    ] = None,
) -> None:
    """Serve the model over HTTP: a form at /, /health, /ready, /predict and /docs."""
    from census_salary.server import run_server

    run_server(_settings(ctx), host=host, port=port, workers=workers)


@app.command()
def runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The history of training runs, marking the current bundle and the ones still kept."""
    from census_salary.artifacts import run_history
    from census_salary.render import runs_table

    history = run_history(_settings(ctx).artifacts_dir)
    if as_json:
        _print_json(
            [
                {**s.run.model_dump(mode="json"), "kept": s.kept, "current": s.current}
                for s in history
            ]
        )
    else:
        Console().print(runs_table(history))


@app.command()
def use(
    ctx: typer.Context,
    version: Annotated[
        str,
        typer.Argument(
            metavar="VERSION",
            help="A kept version from `census runs`, or a unique start of one.",
        ),
    ],
) -> None:
    """Make another kept model bundle current, after the checks loading does."""
    from census_salary.render import switch_text
    from census_salary.train import use_version

    Console().print(switch_text(use_version(_settings(ctx), version)), soft_wrap=True)


def main() -> None:
    """Entry point of the `census` console script."""
    app()
