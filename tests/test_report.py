"""Rendered reports, and the committed model card against the committed bundle."""

from __future__ import annotations

from pathlib import Path

from census_salary.bundle import current_bundle_dir, read_metadata
from census_salary.config import Settings
from census_salary.metrics import SliceReport
from census_salary.report import (
    render_model_card,
    render_slice_csv,
    render_slice_markdown,
    render_slice_text,
)
from census_salary.train import TrainResult

ROOT = Path(__file__).resolve().parents[1]


def test_committed_model_card_matches_the_committed_bundle() -> None:
    folder = current_bundle_dir(ROOT / "artifacts")
    metadata = read_metadata(folder)
    slices = SliceReport.model_validate_json((folder / "slices.json").read_text())
    card = (ROOT / "ModelCard.md").read_text(encoding="utf-8")
    assert card == render_model_card(metadata, slices), "ModelCard.md is stale: run `census train`"


def test_committed_slice_output_matches_the_slice_table() -> None:
    folder = current_bundle_dir(ROOT / "artifacts")
    slices = SliceReport.model_validate_json((folder / "slices.json").read_text())
    assert (folder / "slice_output.txt").read_text() == render_slice_text(slices)


def test_model_card_has_every_section(trained_project: TrainResult) -> None:
    card = render_model_card(trained_project.metadata, trained_project.slices)
    for section in (
        "Model details",
        "Intended use",
        "Data",
        "Metrics",
        "Slices",
        "Ethical considerations",
        "Caveats",
    ):
        assert f"## {section}" in card


def test_slice_text_marks_small_slices(trained_project: TrainResult) -> None:
    text = render_slice_text(trained_project.slices)
    small = [s for s in trained_project.slices.slices if s.too_small]
    assert small, "the sample should have a slice under min_rows"
    assert text.count("too small") == len(small) + 1  # + the heading's mention


def test_slice_csv_has_a_row_per_slice(trained_project: TrainResult) -> None:
    lines = render_slice_csv(trained_project.slices).splitlines()
    assert len(lines) == 1 + 1 + len(trained_project.slices.slices)


def test_slice_markdown_escapes_pipes(
    small_settings: Settings, trained_project: TrainResult
) -> None:
    report = trained_project.slices.model_copy(deep=True)
    report.slices[0].value = "a|b"
    assert "a\\|b" in render_slice_markdown(report)
