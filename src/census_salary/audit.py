"""Auditing a bundle: its metrics, slice metrics and figures on labelled rows.

The rows are the bundle's held-out split (rebuilt from the same data file and seed) or
any labelled file; the bundle scores them through its one scorer, as every door does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from census_salary.bundle import Bundle
from census_salary.config import Settings, bootstrap_problem
from census_salary.contract import COLUMNS, Columns, check_columns, columns_of_frame
from census_salary.data import read_census, split_data
from census_salary.errors import InputError, ModelError, no_rows
from census_salary.importance import ImportanceReport, permutation_importance
from census_salary.metadata import BundleMetadata
from census_salary.metrics import Metrics, SliceReport, evaluate, slice_metrics

if TYPE_CHECKING:
    from census_salary.figures import FigureData


def held_out(settings: Settings, metadata: BundleMetadata) -> tuple[pd.DataFrame, pd.Series]:
    """The test split the bundle was evaluated on, rebuilt from the same data and seed."""
    data = read_census(settings.data_path, target=settings.data.target)
    if data.sha256 != metadata.data.sha256:
        raise ModelError(
            f"{settings.data_path} is not the file model {metadata.version} was trained on "
            "(its SHA-256 differs), so its held-out split cannot be rebuilt. "
            "Pass --data FILE to evaluate on a labelled file, or retrain."
        )
    split_cfg = metadata.config.split
    split = split_data(data, split_cfg.test_size, split_cfg.seed)
    return split.test_x, split.test_y


def labelled_rows(
    settings: Settings, bundle: Bundle, data_path: Path | None
) -> tuple[pd.DataFrame, pd.Series]:
    """The rows to audit: a labelled file if given, else the bundle's held-out split.
    A file without rows is an InputError (as for `census monitor`): no metric is defined
    on none."""
    if data_path is None:
        return held_out(settings, bundle.metadata)
    data = read_census(data_path, target=settings.data.target)
    if data.features.empty:
        raise no_rows(data_path)
    return data.features, data.target


def evaluate_bundle(
    settings: Settings, bundle: Bundle, data_path: Path | None, figures_dir: Path | None = None
) -> Metrics:
    """The bundle's metrics on labelled rows; with `figures_dir`, also the audit figures
    there (slices of the sensitive features with `[slices]` bootstrap intervals)."""
    x, y = labelled_rows(settings, bundle, data_path)
    p = bundle.probabilities(x)
    metrics = evaluate(y.to_numpy(), p, bundle.threshold)
    if figures_dir is not None:
        from census_salary.figures import write_figures

        # In the features' order, as training slices them: the same figure, byte for byte.
        sensitive = [name for name in settings.features.all if name in settings.fairness.sensitive]
        slices = slice_metrics(x, y.to_numpy(), p, bundle.threshold, sensitive, settings.slices)
        rows = data_path.name if data_path is not None else "held-out split"
        subtitle = f"model {bundle.version}, {rows}"
        importance = importance_of(settings, bundle.probabilities, x, y, bundle.threshold)
        data = figure_data(settings, y, p, bundle.threshold, slices, importance, subtitle)
        write_figures(figures_dir, data)
    return metrics


def slice_bundle(
    settings: Settings,
    bundle: Bundle,
    data_path: Path | None,
    slicings: Sequence[str | Sequence[str]] | None,
    bootstrap: int | None = None,
) -> SliceReport:
    """The slice report of the bundle on labelled rows, with the fairness summary.

    `slicings`: features, or sequences of features to cross (default: `[slices] features`,
    else every feature); `bootstrap`: resamples (default: `[slices] bootstrap`).
    """
    x, y = labelled_rows(settings, bundle, data_path)
    named = [name for names in slicings or [] for name in _names(names)]
    unknown = [name for name in named if name not in x.columns]
    if unknown:
        raise InputError(
            f"Unknown feature(s) {', '.join(unknown)}; choose from {', '.join(x.columns)}."
        )
    asked: set[frozenset[str]] = set()
    for names in slicings or []:
        if len(set(_names(names))) != len(_names(names)):
            raise InputError(
                f"{','.join(_names(names))} names a feature twice; cross each feature once."
            )
        if frozenset(_names(names)) in asked:  # (sex,race and race,sex are one slicing)
            raise InputError(
                f"The slices by {','.join(_names(names))} are asked for twice; ask once."
            )
        asked.add(frozenset(_names(names)))
    features = bundle.metadata.features
    chosen = slicings or settings.slices.features or [*features.categorical, *features.numerical]
    options = settings.slices
    if bootstrap is not None:  # checked as [slices] bootstrap is
        problem = bootstrap_problem(bootstrap)
        if problem is not None:
            raise InputError(f"{bootstrap:,} bootstrap resamples: {problem}.")
        options = options.model_copy(update={"bootstrap": bootstrap})
    p = bundle.probabilities(x)
    return slice_metrics(x, y.to_numpy(), p, bundle.threshold, chosen, options, settings.fairness)


def _names(slicing: str | Sequence[str]) -> list[str]:
    return [slicing] if isinstance(slicing, str) else list(slicing)


def importance_of(
    settings: Settings,
    probabilities: Callable[[Columns], np.ndarray],
    x: pd.DataFrame,
    y: np.ndarray | pd.Series,
    threshold: float,
) -> ImportanceReport:
    """The permutation importance of a model (`probabilities`) on labelled rows, seeded
    by the split's seed."""
    checked = check_columns(columns_of_frame(x[COLUMNS]))
    y = np.asarray(y)[checked.good]
    seed = settings.split.seed
    return permutation_importance(probabilities, checked.columns, y, threshold, seed=seed)


def figure_data(
    settings: Settings,
    y: np.ndarray | pd.Series,
    probabilities: np.ndarray,
    threshold: float,
    slices: SliceReport,
    importance: ImportanceReport,
    subtitle: str,
) -> FigureData:
    """What the audit figures show for a model on labelled rows `y` it gave `probabilities`:
    its curves, its `importance` and the F1 of each slice of the sensitive features with its
    interval, from `slices`."""
    from census_salary.figures import FigureData, SliceF1

    sensitive = set(settings.fairness.sensitive)
    shown = [
        SliceF1(
            f"{s.feature} = {s.value}",
            s.rows,
            s.f1,
            *(
                (s.intervals["f1"].low, s.intervals["f1"].high)
                if "f1" in s.intervals
                else (None, None)
            ),
        )
        for s in slices.slices
        if s.feature in sensitive and not s.too_small
    ]
    return FigureData(
        y_true=np.asarray(y),
        probabilities=probabilities,
        threshold=threshold,
        importance=importance,
        slices=shown,
        overall_f1=slices.overall.f1,
        subtitle=subtitle,
    )
