"""ModelCard.md: the committed card against the committed bundle, and what a card holds."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from census_salary.bundle import IMPORTANCE_FILE, current_bundle_dir
from census_salary.config import Settings
from census_salary.errors import GateError, ModelError
from census_salary.figures import FIGURE_NAMES
from census_salary.model_card import (
    CardInputs,
    check_model_card,
    render_model_card,
    write_model_card,
)
from census_salary.report import render_fairness_markdown
from census_salary.train import TrainResult

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    "Model details",
    "Intended use",
    "Factors",
    "Metrics",
    "Evaluation data",
    "Training data",
    "Quantitative analyses",
    "Ethical considerations",
    "Caveats and recommendations",
)


def card_of(trained: TrainResult, card_path: Path) -> str:
    return render_model_card(CardInputs.of(trained.bundle_dir, card_path))


def test_committed_model_card_matches_the_committed_bundle() -> None:
    check_model_card(current_bundle_dir(ROOT / "artifacts"), ROOT / "ModelCard.md")


def test_a_card_has_every_section_in_order(trained_project: TrainResult, tmp_path: Path) -> None:
    card = card_of(trained_project, tmp_path / "ModelCard.md")
    places = [card.index(f"\n## {section}\n") for section in SECTIONS]
    assert places == sorted(places), places


def test_a_card_embeds_every_figure_of_its_bundle(
    trained_project: TrainResult, tmp_path: Path
) -> None:
    card_path = tmp_path / "docs" / "ModelCard.md"
    card_path.parent.mkdir()
    card = card_of(trained_project, card_path)
    for name in FIGURE_NAMES:
        link = Path(card.split(f"/{name})")[0].rsplit("](", 1)[1])
        assert (card_path.parent / link / name).is_file(), name


def test_a_card_carries_the_fairness_summary(trained_project: TrainResult, tmp_path: Path) -> None:
    fairness = trained_project.slices.fairness
    assert fairness is not None
    card = card_of(trained_project, tmp_path / "ModelCard.md")
    assert render_fairness_markdown(fairness, heading="###").rstrip() in card


def test_a_card_names_the_most_important_features(
    trained_project: TrainResult, tmp_path: Path
) -> None:
    inputs = CardInputs.of(trained_project.bundle_dir, tmp_path / "ModelCard.md")
    assert inputs.importance is not None
    top = inputs.importance.columns[0]
    assert f"| {top.feature} | {top.roc_auc_drop:.4f} ± " in render_model_card(inputs)


def test_a_stale_card_fails_the_check(trained_project: TrainResult, tmp_path: Path) -> None:
    card_path = tmp_path / "ModelCard.md"
    write_model_card(trained_project.bundle_dir, card_path)
    check_model_card(trained_project.bundle_dir, card_path)
    card_path.write_text(card_path.read_text(encoding="utf-8") + "edited\n", encoding="utf-8")
    with pytest.raises(GateError, match="run `census model-card`"):
        check_model_card(trained_project.bundle_dir, card_path)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda path: path.write_text("{\n"), "is not a permutation importance report"),
        (lambda path: (path.unlink(), path.mkdir()), "Cannot read .*: Is a directory"),
    ],
    ids=["truncated", "folder"],
)
def test_a_damaged_importance_file_is_a_model_error_naming_it(
    project_copy: Settings, tmp_path: Path, damage: Callable[[Path], object], says: str
) -> None:
    folder = current_bundle_dir(project_copy.artifacts_dir)
    damage(folder / IMPORTANCE_FILE)
    with pytest.raises(ModelError, match=re.escape(str(folder / IMPORTANCE_FILE))) as e:
        write_model_card(folder, tmp_path / "ModelCard.md")
    assert re.search(says, str(e.value)), e.value
    assert str(folder / IMPORTANCE_FILE) in str(e.value)
    assert not (tmp_path / "ModelCard.md").exists()


def test_a_card_that_cannot_be_written_says_the_model_is_current(
    trained_project: TrainResult, tmp_path: Path
) -> None:
    (tmp_path / "docs").write_text("a file where the card's folder belongs\n")
    card_path = tmp_path / "docs" / "ModelCard.md"
    version = trained_project.metadata.version
    with pytest.raises(
        ModelError,
        match=rf"^Model {version} is current, but its model card was not written\. "
        rf"Cannot write {card_path}: Not a directory\. .*`census model-card`",
    ):
        write_model_card(trained_project.bundle_dir, card_path)
