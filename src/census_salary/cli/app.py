"""The `census` app: the command group, the global options, and what every command
shares (settings, the bundle, progress, JSON output). The commands live beside it:
`training` (train, runs, use), `audit` (evaluate, slice-report, model-card) and
`scoring` (predict, serve), `monitor`.

Heavy libraries (pandas, scikit-learn, fastapi) are imported inside the commands that
need them, so `census --help` answers at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

import census_salary
from census_salary.errors import CensusError, ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from census_salary.bundle import Bundle
    from census_salary.config import Settings
    from census_salary.progress import Progress


class _CensusGroup(TyperGroup):
    """Turns the library's errors into one red line and a documented exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CensusError as exc:
            from rich.markup import escape

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


# rich is imported when something is printed, not with the app: `census serve` prints
# nothing of its own, and starts ~35 ms sooner.
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def out_console() -> Console:
    from rich.console import Console

    return Console()


def folder_given(text: str) -> Path:
    """An option's folder, never an empty one: `--figures "$DIR"` with DIR unset would
    otherwise be the current folder (Path("") is "."), filled with files in silence."""
    if not text.strip():
        raise typer.BadParameter("is empty; give a folder (`.` for the current one).")
    return Path(text)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"census {census_salary.__version__}")
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


def settings_of(ctx: typer.Context) -> Settings:
    from census_salary.config import find_config, load_settings

    path = ctx.obj or find_config(Path.cwd(), os.environ)
    return load_settings(path)


def current_bundle(settings: Settings) -> Bundle:
    from census_salary.bundle import load_bundle

    return load_bundle(settings.artifacts_dir, settings.model.scorer)


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar on a terminal; silence when stderr is piped or captured."""
    from census_salary.progress import NoProgress

    if not enabled or not sys.stderr.isatty():
        yield NoProgress()
        return
    from census_salary.render import RichProgress

    with RichProgress(err_console()) as progress:
        yield progress


def print_json(value: Any) -> None:
    """Print `value` as JSON. JSON has no NaN or infinity: one in `value` is a bug, said in
    one line (exit 1), and nothing is printed that a program would misread."""
    try:
        text = json.dumps(value, indent=2, default=str, allow_nan=False)
    except ValueError as exc:
        raise CensusError(
            f"The result cannot be printed as JSON ({exc}); please report this."
        ) from None
    typer.echo(text)


def main() -> None:
    """Entry point of the `census` console script."""
    from census_salary.collector import freeze_at_exit

    # Stopped by SIGTERM (`timeout`, a job that is cancelled), a command ends as Ctrl-C ends
    # it: its helper processes stopped and its temporary files removed, exit code 143.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        app()
    finally:
        freeze_at_exit()


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
