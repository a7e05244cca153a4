"""Auditing a bundle: its metrics and slice metrics on labelled rows.

The rows are the bundle's held-out split (rebuilt from the same data file and seed) or
any labelled file; the bundle scores them through its one scorer, as every door does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.errors import InputError, ModelError
from census_salary.metadata import BundleMetadata
from census_salary.metrics import Metrics, SliceReport, evaluate, slice_metrics
from census_salary.train import read_labelled, split_data


def held_out(settings: Settings, metadata: BundleMetadata) -> tuple[pd.DataFrame, pd.Series]:
    """The test split the bundle was evaluated on, rebuilt from the same data and seed."""
    data = read_labelled(settings, settings.data_path)
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
    """The rows to audit: a labelled file if given, else the bundle's held-out split."""
    if data_path is None:
        return held_out(settings, bundle.metadata)
    data = read_labelled(settings, data_path)
    return data.features, data.target


def evaluate_bundle(settings: Settings, bundle: Bundle, data_path: Path | None) -> Metrics:
    x, y = labelled_rows(settings, bundle, data_path)
    return evaluate(y.to_numpy(), bundle.probabilities(x), bundle.threshold)


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
    for names in slicings or []:
        if len(set(_names(names))) != len(_names(names)):
            raise InputError(
                f"{','.join(_names(names))} names a feature twice; cross each feature once."
            )
    features = bundle.metadata.features
    chosen = slicings or settings.slices.features or [*features.categorical, *features.numerical]
    options = settings.slices
    if bootstrap is not None:
        options = options.model_copy(update={"bootstrap": bootstrap})
    p = bundle.probabilities(x)
    return slice_metrics(x, y.to_numpy(), p, bundle.threshold, chosen, options, settings.fairness)


def _names(slicing: str | Sequence[str]) -> list[str]:
    return [slicing] if isinstance(slicing, str) else list(slicing)
