"""The audit figures: PNG files of how the model separates, calibrates and treats slices.

`write_figures(directory, data)` writes, from plain inputs (`FigureData`):

    roc.png               ROC curve, the decision threshold marked
    precision_recall.png  precision-recall curve, the decision threshold marked
    calibration.png       observed rate of >50K against predicted probability, in ten bins
    confusion.png         the confusion matrix at the threshold
    importance.png        permutation importance of each column (see `importance`)
    slices_f1.png         F1 with its interval per slice, beside the overall F1

matplotlib is imported only here, and only inside the functions that draw, so any module
may import this one without loading it (the server never draws). Figures are drawn on
the Agg canvas (matplotlib's non-interactive backend) without pyplot, so drawing changes
no global state; under matplotlib's default style whatever a matplotlibrc says; and saved
as palette PNGs without the metadata that names the matplotlib version, so the same
inputs give the same bytes (with the same matplotlib, Pillow and fonts). Each file is
written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from census_salary.charts import (
    calibration,
    confusion_matrix,
    importance_bars,
    png_of,
    precision_recall,
    roc,
    slices_f1,
)
from census_salary.errors import InputError
from census_salary.files import atomic_write
from census_salary.importance import ImportanceReport
from census_salary.metrics import both_classes

logger = logging.getLogger(__name__)

FIGURE_NAMES: tuple[str, ...] = (
    "roc.png",
    "precision_recall.png",
    "calibration.png",
    "confusion.png",
    "importance.png",
    "slices_f1.png",
)
MAX_BYTES = 150_000  # each file, so it shows on GitHub and stays small in the repository
# Readable in GitHub's light and dark themes: an opaque white background, dark text.
_RC: dict[str, Any] = {
    "figure.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
}


class SliceF1(NamedTuple):
    """One slice's F1 and its interval; None where it is undefined or the slice too small."""

    label: str  # such as "sex = Female"
    rows: int
    f1: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class FigureData:
    """Everything the figures show, as plain values, for one set of labelled rows."""

    y_true: np.ndarray  # 0/1 or bool: >50K
    probabilities: np.ndarray  # P(>50K), one per row
    threshold: float
    importance: ImportanceReport
    slices: Sequence[SliceF1 | tuple[str, int, float | None, float | None, float | None]]
    overall_f1: float | None
    subtitle: str = ""  # such as "model 20261128T000705Z-45a6a21e, held-out split"
    interval: str = "95% interval"  # what the slices' whiskers are


def write_figures(directory: Path, data: FigureData) -> list[Path]:
    """Draw every figure and write it into `directory` (made if missing); their paths,
    in the order of `FIGURE_NAMES`. A file is replaced whole or not at all."""
    try:
        directory.mkdir(parents=True, exist_ok=True)  # before drawing: fail fast
    except OSError as exc:
        raise _cannot_write(directory, exc) from None
    paths: list[Path] = []
    for name, png in render_figures(data).items():
        path = directory / name
        if len(png) > MAX_BYTES:
            logger.warning("%s is %d bytes, above the %d aimed at", path, len(png), MAX_BYTES)
        try:
            atomic_write(path, png)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        paths.append(path)
    return paths


def _cannot_write(path: Path, exc: OSError) -> InputError:
    if isinstance(exc, FileExistsError):  # from mkdir: a file has the folder's name
        return InputError(f"Cannot write figures into {path}: it is a file, not a folder.")
    return InputError(
        f"Cannot write {path}: {exc.strerror or exc}. "
        "Make the folder writable or choose another one for the figures."
    )


def render_figures(data: FigureData, names: Sequence[str] = FIGURE_NAMES) -> dict[str, bytes]:
    """The figures `names` lists (every one by default) as PNG bytes, by file name, in
    the order of `FIGURE_NAMES`."""
    import matplotlib as mpl
    from matplotlib import style

    y = np.asarray(data.y_true).astype(bool)
    p = np.asarray(data.probabilities, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise InputError(
            f"The figures need one probability per label; got {p.size} for {y.size} labels."
        )
    if not both_classes(y):
        raise InputError(
            "The figures need labelled rows of both classes (>50K and <=50K); these hold only one."
        )
    if not np.all((p >= 0) & (p <= 1)):
        raise InputError("The probabilities must lie between 0 and 1.")
    slices = [SliceF1(*row) for row in data.slices]
    drawings = {
        "roc.png": lambda: roc(y, p, data.threshold),
        "precision_recall.png": lambda: precision_recall(y, p, data.threshold),
        "calibration.png": lambda: calibration(y, p, data.threshold),
        "confusion.png": lambda: confusion_matrix(y, p, data.threshold),
        "importance.png": lambda: importance_bars(data.importance),
        "slices_f1.png": lambda: slices_f1(slices, data.overall_f1, data.interval),
    }
    drawn: dict[str, bytes] = {}
    with style.context("default"), mpl.rc_context(_RC):
        for name in [name for name in FIGURE_NAMES if name in names]:
            figure = drawings[name]()
            if data.subtitle:
                figure.supxlabel(data.subtitle, x=0.99, ha="right", fontsize=8, color="0.35")
            drawn[name] = png_of(figure)
    return drawn
