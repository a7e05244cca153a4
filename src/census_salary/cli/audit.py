"""Commands that audit the current model: evaluate, slice-report, model-card."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from census_salary.cli.app import (
    app,
    current_bundle,
    folder_given,
    out_console,
    print_json,
    progress_bar,
    settings_of,
)

if TYPE_CHECKING:
    from census_salary.metrics import SliceReport


class SliceFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"
    text = "text"


@app.command()
def evaluate(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A labelled census file (default: the held-out split)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            parser=folder_given,
            help="Also draw the audit figures (PNG) into this folder: ROC, precision-recall, "
            "calibration, confusion, permutation importance, F1 per sensitive group.",
        ),
    ] = None,
) -> None:
    """Metrics of the current model on its held-out split or on a labelled file."""
    from census_salary.collector import paused, settled

    with paused():  # then settled: see census_salary.collector
        from census_salary.audit import evaluate_bundle
        from census_salary.render import metrics_table

        settings = settings_of(ctx)
        bundle = current_bundle(settings)
    with progress_bar() as progress, settled():
        progress.start("Evaluating" + (" and drawing" if figures else ""))
        metrics = evaluate_bundle(settings, bundle, data, figures)
    if as_json:
        print_json(metrics.model_dump(mode="json"))
    else:
        out_console().print(
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
    """Metrics on every slice of the data, with intervals, and a fairness summary: where
    the model does worse, and for whom."""
    from census_salary.collector import paused, settled

    with paused():  # then settled: see census_salary.collector
        from census_salary.audit import slice_bundle

        settings = settings_of(ctx)
        bundle = current_bundle(settings)
    crosses = [tuple(name.strip() for name in names.split(",")) for names in by or []]
    slicings = [*(feature or []), *crosses]
    with settled():
        report = slice_bundle(settings, bundle, data, slicings, bootstrap)
    _emit_slices(report, output_format, output)
    if max_f1_gap is not None:
        report.check_f1_gap(max_f1_gap)
    if fail_on_breach:
        report.check_fairness()


def _emit_slices(report: SliceReport, output_format: SliceFormat, output: Path | None) -> None:
    from census_salary import report as text

    if output_format is SliceFormat.table and output is None:
        from census_salary.render import fairness_table, slice_table

        console = out_console()
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


@app.command("model-card")
def model_card(
    ctx: typer.Context,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit with code 5 if the card is not the bundle's."
        ),
    ] = False,
) -> None:
    """Write ModelCard.md again from the current bundle (train and use write it too)."""
    from census_salary.bundle import current_bundle_dir
    from census_salary.model_card import check_model_card, write_model_card

    settings = settings_of(ctx)
    folder = current_bundle_dir(settings.artifacts_dir)
    if check:
        check_model_card(folder, settings.model_card_path)
        typer.echo(f"{settings.model_card_path} describes model {folder.name}.")
    else:
        write_model_card(folder, settings.model_card_path)
        typer.echo(f"Wrote {settings.model_card_path} for model {folder.name}.")
