"""Commands that make and keep models: train, runs, use."""

from __future__ import annotations

from typing import Annotated

import typer

from census_salary.cli.app import app, out_console, print_json, progress_bar, settings_of


@app.command()
def train(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Clean the data, fit the model, choose the threshold, evaluate and write the bundle."""
    from census_salary.collector import paused, settled

    with paused():  # then settled: see census_salary.collector
        from census_salary.helpers import training_helpers

        settings = settings_of(ctx)
    # The helpers import scikit-learn on the other core while this process does.
    with training_helpers(settings) as helpers:
        with paused():
            from census_salary.render import train_table
            from census_salary.train import train as run_training
        with progress_bar() as progress, settled():
            result = run_training(settings, progress, helpers)
    if as_json:
        print_json(result.metadata.model_dump(mode="json"))
    else:
        out_console().print(train_table(result))


@app.command()
def runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The history of training runs, marking the current bundle and the ones still kept."""
    from census_salary.artifacts import run_history
    from census_salary.render import runs_table

    history = run_history(settings_of(ctx).artifacts_dir)
    if as_json:
        print_json(
            [
                {**s.run.model_dump(mode="json"), "kept": s.kept, "current": s.current}
                for s in history
            ]
        )
    else:
        out_console().print(runs_table(history))


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

    out_console().print(switch_text(use_version(settings_of(ctx), version)), soft_wrap=True)
