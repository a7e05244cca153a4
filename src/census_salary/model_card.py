"""ModelCard.md: the model card of the current bundle, every number from the bundle.

It follows the sections of Mitchell et al., "Model Cards for Model Reporting" (2019):
model details, intended use, factors, metrics, evaluation data, training data,
quantitative analyses (with the bundle's figures), ethical considerations, caveats and
recommendations. `census train` and `census use` write it; `census model-card`
writes it again (or, with `--check`, says whether the committed one is stale). The
card is a pure function of the bundle's files (`CardInputs.of`), so a test checks the
committed card against the committed bundle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from pydantic import ValidationError

from census_salary.bundle import IMPORTANCE_FILE, read_metadata, read_slices
from census_salary.errors import GateError, InputError, ModelError
from census_salary.figures import FIGURE_NAMES
from census_salary.files import atomic_write
from census_salary.importance import ImportanceReport
from census_salary.metadata import BundleMetadata
from census_salary.metrics import SliceReport
from census_salary.report import (
    fmt,
    fmt_interval,
    markdown_table,
    metric_rows,
    render_fairness_markdown,
)

TITLE = "# Model card: census income classifier"  # the first line of every card
FIGURE_CAPTIONS = {
    "roc.png": "ROC curve, the threshold marked",
    "precision_recall.png": "Precision-recall curve, the threshold marked",
    "calibration.png": "Calibration: predicted against observed rate of >50K",
    "confusion.png": "Confusion matrix at the threshold",
    "importance.png": "Permutation importance on the held-out split",
    "slices_f1.png": "F1 with 95% intervals per group of the sensitive features",
}

CURVES = ("roc.png", "precision_recall.png", "calibration.png", "confusion.png")


@dataclass(frozen=True)
class CardFiles:
    """The files of a bundle a card is made of, read and checked (`read_card_files`)."""

    metadata: BundleMetadata
    slices: SliceReport
    importance: ImportanceReport | None
    figures: tuple[str, ...]  # the bundle's figure files, in FIGURE_NAMES order


def read_card_files(bundle_dir: Path) -> CardFiles:
    """Every file of the bundle in `bundle_dir` its card reads; one that cannot be read or
    is damaged is a ModelError naming it. `census use` calls this before switching, so a
    bundle that became current always has a card."""
    return CardFiles(
        metadata=read_metadata(bundle_dir),
        slices=read_slices(bundle_dir),
        importance=_read_importance(bundle_dir / IMPORTANCE_FILE),
        figures=tuple(name for name in FIGURE_NAMES if (bundle_dir / name).is_file()),
    )


def _read_importance(path: Path) -> ImportanceReport | None:
    """The permutation importance at `path`; None where the bundle has none (older ones)."""
    try:
        return ImportanceReport.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except ValidationError:
        raise ModelError(
            f"{path} is not a permutation importance report; the bundle is damaged. "
            "Run `census train`."
        ) from None


@dataclass(frozen=True)
class CardInputs(CardFiles):
    """What the card is made of: a bundle's files, and where the card sits beside it."""

    bundle_link: str  # the bundle folder, relative to the card's folder, with "/"

    @classmethod
    def of(cls, bundle_dir: Path, card_path: Path) -> CardInputs:
        files = read_card_files(bundle_dir)
        return cls(
            **{field.name: getattr(files, field.name) for field in fields(CardFiles)},
            bundle_link=Path(os.path.relpath(bundle_dir, card_path.parent)).as_posix(),
        )


def write_model_card(bundle_dir: Path, card_path: Path) -> None:
    """Write the card of the bundle in `bundle_dir` to `card_path`, whole or not at all;
    refused (`check_card_path`) where that would replace something else."""
    check_card_path(card_path, bundle_dir.parent)
    inputs = CardInputs.of(bundle_dir, card_path)
    try:
        atomic_write(card_path, render_model_card(inputs).encode())
    except InputError as exc:
        raise ModelError(
            f"Model {inputs.metadata.version} is current, but its model card was not "
            f"written. {exc} Then run `census model-card` to write it again."
        ) from None


def check_card_path(card_path: Path, artifacts_dir: Path) -> None:
    """Refuse a model card path ([artifacts] model_card) whose writing would destroy
    something: a path in the artifacts folder (a bundle's file, LATEST, runs.jsonl), or a
    file there already that is not a model card (census.toml, the data)."""
    card, artifacts = card_path.resolve(), artifacts_dir.resolve()
    if card == artifacts or artifacts in card.parents:
        problem = f"it is in the artifacts folder {artifacts_dir}, which holds the models"
    elif card.is_dir():
        problem = "it is a folder; the card is a file (such as ModelCard.md)"
    elif card.exists() and not _is_model_card(card):
        problem = "a file there is not a model card, and writing the card would replace it"
    else:
        return
    raise InputError(
        f"Cannot write the model card to {card_path}: {problem}. Choose another path for "
        "[artifacts] model_card in census.toml (by default ModelCard.md beside the "
        "artifacts folder)."
    )


def _is_model_card(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(TITLE) + 1) == f"{TITLE}\n".encode()
    except OSError:  # (unreadable: the write names what is wrong)
        return True


def check_model_card(bundle_dir: Path, card_path: Path) -> None:
    """Raise GateError unless `card_path` is exactly the card of the bundle."""
    expected = render_model_card(CardInputs.of(bundle_dir, card_path))
    try:
        found = card_path.read_text(encoding="utf-8")
    except OSError as exc:
        found = f"({exc.strerror or exc})"
    if found != expected:
        raise GateError(
            f"{card_path} does not describe model {bundle_dir.name} as it is now; "
            "run `census model-card` to write it again."
        )


def render_model_card(inputs: CardInputs) -> str:
    """ModelCard.md for a bundle."""
    metadata, slices = inputs.metadata, inputs.slices
    sections = [
        [
            TITLE,
            "",
            "<!-- Generated from the bundle in artifacts/ by `census train`, `census use` and "
            "`census model-card`; do not edit by hand. -->",
        ],
        _details(metadata),
        _intended_use(),
        _factors(slices),
        _metrics(slices),
        _evaluation_data(metadata),
        _training_data(metadata),
        _analyses(inputs),
        _ethics(),
        _caveats(),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _details(metadata: BundleMetadata) -> list[str]:
    params = metadata.params
    return [
        "## Model details",
        "",
        f"- Version: `{metadata.version}` (trained {metadata.created_at.isoformat()}, "
        f"census-salary {metadata.package_version}); made by the `census` project, MIT "
        "licence.",
        f"- Kind: `{metadata.model_kind}` with parameters `{params}`"
        + (f", search chose `{metadata.best_params}`" if metadata.best_params else ""),
        f"- Decision threshold on P(>50K): {metadata.threshold:.4f}, "
        + (
            "fixed in census.toml"
            if metadata.threshold_objective == "fixed"
            else f"chosen to maximise `{metadata.threshold_objective}` on out-of-fold "
            "predictions of the training split"
        ),
        f"- Model file SHA-256: `{metadata.model_sha256}`",
        (
            f"- Scored from its tree tables (`trees.npz`, SHA-256 `{metadata.trees_sha256}`), "
            "checked at training to give the pipeline's probabilities on every row; "
            "`POST /predict?explain=true` and `census predict --explain` give each row's "
            "feature contributions (SHAP values in log-odds)"
            if metadata.trees_sha256
            else "- Scored with the pipeline itself (this model kind has no tree tables)"
        ),
        *(
            [
                f"- Drift reference: `profile.json` (SHA-256 `{metadata.profile_sha256}`), the "
                "training split's rows per bin of each feature; `GET /drift` and `census "
                "monitor` compare rows with it"
            ]
            if metadata.profile_sha256
            else []
        ),
        "- Libraries: "
        + ", ".join(f"{k} {v}" for k, v in sorted(metadata.library_versions.items())),
    ]


def _intended_use() -> list[str]:
    return [
        "## Intended use",
        "",
        "- Primary use: predict whether a person's yearly income was above $50K from 14 "
        "attributes of the 1994 US census, for teaching, benchmarking, and as a blueprint of "
        "a small, audited MLOps project.",
        "- Primary users: people learning or building tabular-model tooling.",
        "- Out of scope: any decision about a real person (credit, hiring, housing, "
        "insurance, benefits, policing); any estimate of incomes today (the data is from "
        "1994 and not adjusted for inflation); populations other than the 1994 US census.",
    ]


def _factors(slices: SliceReport) -> list[str]:
    sensitive = (
        ", ".join(f.feature for f in slices.fairness.features)
        if slices.fairness is not None
        else "none configured"
    )
    return [
        "## Factors",
        "",
        "The census records groups the model's errors may differ between. Every feature is "
        "a slicing factor: each category, and each quantile bin of a number, is evaluated "
        "on its own (quantitative analyses below). The sensitive features, whose groups "
        f"are compared for fairness (`[fairness] sensitive`), are: {sensitive}. "
        "Relationship and marital status stand in for sex, and native country for race "
        "and origin, so they are factors too.",
    ]


def _metrics(slices: SliceReport) -> list[str]:
    uncertainty = (
        f"Rates of slices and fairness measures carry 95% intervals from {slices.bootstrap} "
        "bootstrap resamples of the whole held-out split (seeded, so they repeat)."
        if slices.bootstrap
        else "No bootstrap was run, so slice rates have no intervals."
    )
    return [
        "## Metrics",
        "",
        "- At the decision threshold: precision (of those predicted >50K, how many are), "
        "recall (of those who are, how many are found), F1 (their harmonic mean, which the "
        "threshold maximises), accuracy, and the selection rate.",
        "- Over all thresholds: ROC AUC and PR AUC (ranking), and the Brier score "
        "(calibration of the probabilities).",
        "- Between groups: the demographic parity difference and ratio (who is predicted "
        ">50K), the equalized-odds difference, and the false positive and false negative "
        "rate gaps (whom the model gets wrong), as Fairlearn defines them.",
        f"- {uncertainty}",
    ]


def _evaluation_data(metadata: BundleMetadata) -> list[str]:
    d, m = metadata.data, metadata.metrics
    return [
        "## Evaluation data",
        "",
        f"The held-out split: {d.rows_test} rows (a stratified {metadata.config.split.test_size:g} "
        f"of the data, seed {metadata.config.split.seed}), never seen in training or in "
        f"choosing the threshold; {fmt(m.positive_rate)} of them earn >50K. `census evaluate` "
        "and `census slice-report` rebuild it from the same file and seed.",
    ]


def _training_data(metadata: BundleMetadata) -> list[str]:
    d, features = metadata.data, metadata.features
    return [
        "## Training data",
        "",
        "UCI Adult (census income) data, extracted by Barry Becker from the 1994 US Census "
        f"database; licence CC BY 4.0. File SHA-256 `{d.sha256}`: {d.rows_read} rows read, "
        f"{d.duplicates_dropped} exact duplicates dropped, {d.rows_train} rows for training.",
        "",
        f"Features: {len(features.categorical)} categorical "
        f"({', '.join(features.categorical)}) and {len(features.numerical)} numerical "
        f"({', '.join(features.numerical)}). Missing values (`?`) are kept as missing; a "
        "category the model never saw is scored as missing, with a warning.",
    ]


def _analyses(inputs: CardInputs) -> list[str]:
    metadata, slices = inputs.metadata, inputs.slices
    too_small = [s for s in slices.slices if s.too_small]
    lines = [
        "## Quantitative analyses",
        "",
        "### On the held-out split",
        "",
        markdown_table(
            ["metric", "value"], [list(r) for r in metric_rows(metadata.metrics)]
        ).rstrip(),
    ]
    lines += _figures(
        inputs, ("roc.png", "precision_recall.png", "calibration.png", "confusion.png")
    )
    if inputs.importance is not None:
        top = inputs.importance.columns[:5]
        lines += [
            "",
            "### What the model relies on",
            "",
            f"Permutation importance: how much ROC AUC ({inputs.importance.roc_auc:.3f}) drops "
            f"when one feature's values are shuffled among the rows ({inputs.importance.repeats} "
            "shuffles each). The five largest:",
            "",
            markdown_table(
                ["feature", "ROC AUC drop", "F1 drop"],
                [
                    [
                        c.feature,
                        f"{c.roc_auc_drop:.4f} ± {c.roc_auc_drop_std:.4f}",
                        f"{c.f1_drop:.4f}",
                    ]
                    for c in top
                ],
            ).rstrip(),
        ]
        lines += _figures(inputs, ("importance.png",))
    lines += [
        "",
        "### Slices with the largest F1 gap",
        "",
        *_slices_intro(metadata, slices, len(too_small)),
        "",
        markdown_table(
            ["feature", "value", "rows", "F1", "F1 gap", "selection rate"],
            [
                [
                    s.feature,
                    s.value,
                    str(s.rows),
                    fmt_interval(s.f1, s.intervals.get("f1")),
                    fmt(s.f1_gap, signed=True),
                    fmt(s.selection_rate),
                ]
                for s in slices.ranked()[:8]
            ],
        ).rstrip(),
    ]
    if slices.fairness is not None and slices.fairness.features:
        lines += ["", render_fairness_markdown(slices.fairness, heading="###").rstrip()]
    lines += _figures(inputs, ("slices_f1.png",))
    return lines


def _drop(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def _figures(inputs: CardInputs, names: tuple[str, ...]) -> list[str]:
    shown = [name for name in names if name in inputs.figures]
    return [
        line
        for name in shown
        for line in ("", f"![{FIGURE_CAPTIONS[name]}]({inputs.bundle_link}/{name})")
    ]


def _slices_intro(metadata: BundleMetadata, slices: SliceReport, too_small: int) -> list[str]:
    numerical = (
        "numerical features below and at-or-above the median"
        if slices.bins is None
        else f"numerical features in up to {slices.bins} quantile bins, 0 apart where most "
        "values are 0"
    )
    intro = (
        f"F1 on each slice of the held-out split (each category of each categorical feature; "
        f"{numerical}) minus the overall F1 ({fmt(slices.overall.f1)}). Slices under "
        f"{slices.min_rows} rows ({too_small} of {len(slices.slices)}) are too small to judge."
    )
    if slices.bootstrap:
        intro += f" In brackets, 95% intervals from {slices.bootstrap} bootstrap resamples."
    wide = f" or whose F1 interval is wider than {slices.max_f1_width}" if slices.bootstrap else ""
    intro += (
        f" Slices with fewer than {slices.min_rows} rows earning >50K{wide} "
        f"({sum(s.too_uncertain for s in slices.slices)}) are too uncertain to rank."
    )
    return [intro + f" The full table is `artifacts/{metadata.version}/slice_output.txt`."]


def _ethics() -> list[str]:
    return [
        "## Ethical considerations",
        "",
        "The data encodes the income gaps of 1994 by sex, race, marital status and country of "
        "origin, and the model learns them: its selection rates and errors differ between "
        "groups, as the fairness summary above measures. Sex and race are inputs; removing "
        "them would not remove the bias, since relationship and marital status stand in for "
        "sex. The model describes a historical population; it must not be used to judge "
        "people.",
    ]


def _caveats() -> list[str]:
    return [
        "## Caveats and recommendations",
        "",
        "- The data is over 30 years old; incomes are not adjusted for inflation.",
        "- `fnlgt` is a census sampling weight, used here as a plain feature as is customary.",
        "- Categories unseen in training are scored as missing (and reported as warnings).",
        "- Small slices give unstable metrics: read a slice by its interval, and a slice "
        "marked too uncertain not at all.",
        "- Before any use beyond study: run `census slice-report --fail-on-breach` on data "
        "of the population concerned, and a fairness review by people who know it.",
    ]
