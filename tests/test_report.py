"""Rendered reports, and the committed model card against the committed bundle."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from census_salary.bundle import current_bundle_dir
from census_salary.config import FairnessSettings, Settings
from census_salary.fairness import FairnessSummary, fairness_summary
from census_salary.metrics import SliceReport
from census_salary.report import (
    TOO_UNCERTAIN,
    render_fairness_markdown,
    render_slice_csv,
    render_slice_markdown,
    render_slice_text,
)
from census_salary.train import TrainResult

ROOT = Path(__file__).resolve().parents[1]


def test_committed_slice_output_matches_the_slice_table() -> None:
    folder = current_bundle_dir(ROOT / "artifacts")
    slices = SliceReport.model_validate_json((folder / "slices.json").read_text())
    assert (folder / "slice_output.txt").read_text() == render_slice_text(slices)


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


def test_intervals_follow_their_values_in_text_and_markdown(trained_project: TrainResult) -> None:
    overall = trained_project.slices.overall
    f1 = overall.intervals["f1"]
    shown = f"{overall.f1:.3f} [{f1.low:.3f}, {f1.high:.3f}]"
    assert shown in render_slice_text(trained_project.slices)
    assert shown in render_slice_markdown(trained_project.slices)


def test_slice_csv_has_each_rates_low_and_high(trained_project: TrainResult) -> None:
    rows = list(csv.DictReader(io.StringIO(render_slice_csv(trained_project.slices))))
    overall = trained_project.slices.overall
    assert float(rows[0]["f1_low"]) == overall.intervals["f1"].low
    assert (
        float(rows[0]["false_negative_rate_high"]) == overall.intervals["false_negative_rate"].high
    )
    assert {row["too_uncertain"] for row in rows} == {"True", "False"}


def test_too_uncertain_slices_say_so_instead_of_their_f1_gap(trained_project: TrainResult) -> None:
    uncertain = [s for s in trained_project.slices.slices if s.too_uncertain]
    assert uncertain, "the sample should have a slice with a wide F1 interval"
    lines = render_slice_text(trained_project.slices).splitlines()
    marked = [line for line in lines if line.endswith(TOO_UNCERTAIN)]
    assert len(marked) == len(uncertain)


def test_slice_text_ends_with_the_fairness_summary(trained_project: TrainResult) -> None:
    text = render_slice_text(trained_project.slices)
    fairness = text[text.index("Fairness between the groups of sex, race") :]
    assert fairness.count("demographic parity ratio") == 2  # sex and race
    assert "Female" in fairness


def hand_summary() -> FairnessSummary:
    """Group B is selected at a quarter of A's rate (0.1 against 0.4), and B's people who
    earn >50K are missed twice as often (0.5 against 0.25)."""
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    frame = pd.DataFrame({"sex": ["A"] * 10 + ["B"] * 10})
    settings = FairnessSettings(sensitive=["sex"])
    return fairness_summary(frame, np.array(y), np.array(pred, float), 0.5, settings, 1)


def test_the_fairness_section_says_it_in_plain_words() -> None:
    text = render_fairness_markdown(hand_summary())
    assert text.startswith("## Fairness\n")
    assert "predicts >50K for B at 0.25x the rate for A: for 10.0% of B against 40.0% of A" in text
    assert "it misses B 100% more often than A (50.0% against 25.0%" in text
    assert "wrongly predicts >50K for 16.7% of A against 0.0% of B" in text


def test_the_fairness_section_gives_each_interval() -> None:
    frame = pd.DataFrame({"sex": ["A", "B"] * 100})
    y = np.tile([1, 0, 1, 1, 0, 0, 1, 0], 25)
    pred = np.tile([1, 0, 0, 1, 1, 0, 1, 1], 25)
    settings = FairnessSettings(sensitive=["sex"])
    summary = fairness_summary(frame, y, pred.astype(float), 0.5, settings, 1, bootstrap=100)
    ratio = summary.features[0].disparity("demographic_parity_ratio")
    assert ratio.interval is not None
    text = render_fairness_markdown(summary)
    assert f"(95% CI {ratio.interval.low:.2f}-{ratio.interval.high:.2f})" in text
    assert "from 100 bootstrap resamples" in text
