"""The drawings behind `figures`: one function per figure, from plain arrays.

Each returns a matplotlib `Figure` made apart from pyplot's global state; `png` draws it
on the Agg canvas and saves a palette PNG without the metadata that names the
matplotlib version. matplotlib is imported inside the functions: importing this module
loads nothing heavy. The curves' points are computed with numpy, and the rates at the
threshold come from `metrics` (the one definition of each rate).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from census_salary.contract import NEGATIVE, POSITIVE
from census_salary.importance import ImportanceReport
from census_salary.metrics import (
    Metrics,
    average_precision,
    confusion,
    precision_recall_curve,
    rate,
    roc_auc,
    roc_curve,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from census_salary.figures import SliceF1
    from census_salary.monitoring import MonitorReport

DPI = 110
SIZE = (6.4, 4.8)  # inches
CALIBRATION_BINS = 10
_MODEL = "tab:blue"
_THRESHOLD = "tab:red"
_CHANCE = "0.55"


# --- curves, computed with numpy ------------------------------------------------------


def _rates_at(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """False positive rate, recall and precision when P >= threshold is called >50K, as
    metrics defines them (precision 1 when nothing is, where the curve starts)."""
    c = confusion(y, p >= threshold)
    precision = rate(c, "precision")
    return (
        rate(c, "false_positive_rate") or 0.0,
        rate(c, "recall") or 0.0,
        1.0 if precision is None else precision,
    )


# --- the figures ------------------------------------------------------------------------


def _figure(size: tuple[float, float] = SIZE) -> Figure:
    """A figure apart from pyplot's global state (`_png` draws it on the Agg canvas)."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _new(size: tuple[float, float] = SIZE) -> tuple[Figure, Axes]:
    figure = _figure(size)
    return figure, figure.add_subplot()


def png_of(figure: Figure) -> bytes:
    """The figure as a PNG of at most 256 colours, with no text chunks.

    A plot has few colours, so a palette keeps the look at a third of the size of the
    full-colour file. Written by Pillow (matplotlib's own dependency) rather than by
    `savefig`, the file has no "Software" entry naming the matplotlib version, so the same
    figure gives the same bytes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())
    image = Image.fromarray(pixels).convert("RGB")
    # Octree quantizing at zlib's default level: a tenth of the time of median cut with
    # optimize=True, and files a quarter smaller still.
    palette = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def roc(y: np.ndarray, p: np.ndarray, threshold: float) -> Figure:
    fpr, tpr = roc_curve(y, p)
    auc = roc_auc(y, p)  # render_figures has checked both classes are there
    at_fpr, at_recall, _ = _rates_at(y, p, threshold)
    figure, ax = _new()
    ax.plot(fpr, tpr, color=_MODEL, label=f"model (ROC AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color=_CHANCE, label="chance")
    ax.plot(
        at_fpr,
        at_recall,
        "o",
        color=_THRESHOLD,
        label=f"threshold {threshold:.3f}: TPR {at_recall:.3f}, FPR {at_fpr:.3f}",
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="False positive rate (<=50K called >50K)",
        ylabel="True positive rate (recall of >50K)",
        title=f"ROC curve ({len(y):,} rows)",
    )
    ax.legend(loc="lower right")
    return figure


def precision_recall(y: np.ndarray, p: np.ndarray, threshold: float) -> Figure:
    precision, recall = precision_recall_curve(y, p)
    _, at_recall, at_precision = _rates_at(y, p, threshold)
    figure, ax = _new()
    ax.step(
        np.r_[0.0, recall],
        np.r_[1.0, precision],
        where="pre",
        color=_MODEL,
        label=f"model (average precision {average_precision(y, p):.3f})",
    )
    base_rate = float(y.mean())
    ax.axhline(base_rate, linestyle="--", color=_CHANCE, label=f"chance ({base_rate:.3f})")
    ax.plot(
        at_recall,
        at_precision,
        "o",
        color=_THRESHOLD,
        label=f"threshold {threshold:.3f}: precision {at_precision:.3f}, recall {at_recall:.3f}",
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="Recall (share of >50K found)",
        ylabel="Precision (share of >50K calls that are right)",
        title=f"Precision-recall curve ({len(y):,} rows)",
    )
    ax.legend(loc="lower left")
    return figure


def calibration(y: np.ndarray, p: np.ndarray, threshold: float) -> Figure:
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    positives = np.bincount(bins, weights=y, minlength=CALIBRATION_BINS)
    sums = np.bincount(bins, weights=p, minlength=CALIBRATION_BINS)
    filled = counts > 0
    brier = float(np.mean((p - y) ** 2))

    figure = _figure()
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], linestyle="--", color=_CHANCE, label="perfectly calibrated")
    top.plot(
        sums[filled] / counts[filled],
        positives[filled] / counts[filled],
        "o-",
        color=_MODEL,
        label=f"model (Brier score {brier:.3f})",
    )
    for ax in (top, bottom):
        ax.axvline(threshold, color=_THRESHOLD, linestyle=":")
    top.plot([], [], color=_THRESHOLD, linestyle=":", label=f"threshold {threshold:.3f}")
    top.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        ylabel="Observed share of >50K",
        title=f"Calibration ({CALIBRATION_BINS} bins of predicted probability, {len(y):,} rows)",
    )
    top.legend(loc="upper left")
    bottom.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=_MODEL, alpha=0.6)
    bottom.set(xlabel="Predicted probability of >50K", ylabel="Rows")
    return figure


def confusion_matrix(y: np.ndarray, p: np.ndarray, threshold: float) -> Figure:
    predicted = p >= threshold
    matrix = np.array(
        [
            [np.count_nonzero(~y & ~predicted), np.count_nonzero(~y & predicted)],
            [np.count_nonzero(y & ~predicted), np.count_nonzero(y & predicted)],
        ]
    )
    share_of_actual = matrix / matrix.sum(axis=1, keepdims=True)
    figure, ax = _new((5.6, 4.8))
    image = ax.imshow(share_of_actual, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="Share of the actual class")
    names = [NEGATIVE, POSITIVE]
    for i in range(2):
        for j in range(2):
            dark = share_of_actual[i, j] > 0.5
            ax.text(
                j,
                i,
                f"{matrix[i, j]:,}\n({share_of_actual[i, j]:.1%} of actual {names[i]})",
                ha="center",
                va="center",
                color="white" if dark else "black",
                fontsize=10,
            )
    ax.set_xticks([0, 1], labels=names)
    ax.set_yticks([0, 1], labels=names)
    ax.grid(visible=False)
    ax.set(
        xlabel="Predicted",
        ylabel="Actual",
        title=f"Confusion matrix at threshold {threshold:.3f} ({len(y):,} rows)",
    )
    return figure


def importance_bars(report: ImportanceReport) -> Figure:
    columns = report.columns[::-1]  # the most important at the top
    names = [column.feature for column in columns]
    height = max(3.0, 1.4 + 0.3 * len(columns))
    figure = _figure((8.0, height))
    auc_ax, f1_ax = figure.subplots(1, 2, sharey=True)
    positions = np.arange(len(columns))
    panels = (
        (
            auc_ax,
            [c.roc_auc_drop for c in columns],
            [c.roc_auc_drop_std for c in columns],
            "ROC AUC",
        ),
        (f1_ax, [c.f1_drop for c in columns], [c.f1_drop_std for c in columns], "F1"),
    )
    for ax, means, stds, metric in panels:
        ax.barh(positions, means, xerr=stds, color=_MODEL, alpha=0.8, capsize=2)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"Drop in {metric} when shuffled")
    auc_ax.set_yticks(positions, labels=names)
    auc_ax.set_title(f"ROC AUC {report.roc_auc:.3f} before shuffling")
    f1_ax.set_title(f"F1 {report.f1:.3f} at threshold {report.threshold:.3f}")
    figure.suptitle(
        f"Permutation importance ({report.rows:,} rows; mean and std of "
        f"{report.repeats} shuffles, seed {report.seed})",
        fontsize=11,
    )
    return figure


def slices_f1(slices: list[SliceF1], overall_f1: float | None, interval: str) -> Figure:
    figure, ax = _new((7.2, max(3.0, 1.7 + 0.28 * len(slices))))
    ordered = slices[::-1]  # the first slice at the top
    positions = np.arange(len(ordered))
    for y, item in zip(positions, ordered, strict=True):
        if item.f1 is None:
            ax.text(
                0.01, y, "F1 undefined or slice too small", va="center", fontsize=8, color="0.4"
            )
            continue
        if item.low is not None and item.high is not None:
            ax.plot([item.low, item.high], [y, y], color=_MODEL, linewidth=2, alpha=0.5)
        ax.plot(item.f1, y, "o", color=_MODEL)
    if not ordered:
        ax.text(0.5, 0.5, "No slices", transform=ax.transAxes, ha="center", color="0.4")
    ax.plot([], [], "o-", color=_MODEL, alpha=0.7, label=f"slice F1 with {interval}")
    if overall_f1 is not None:
        ax.axvline(
            overall_f1, color=_THRESHOLD, linestyle="--", label=f"overall F1 {overall_f1:.3f}"
        )
    ax.set_yticks(positions, labels=[f"{s.label} ({s.rows:,} rows)" for s in ordered])
    ax.set_ylim(-0.7, max(len(ordered), 1) - 0.3)
    ax.set(xlim=(-0.02, 1.02), xlabel="F1 at the decision threshold", title="F1 per slice")
    figure.legend(loc="outside upper center", ncols=2, fontsize=8)
    return figure


# --- census monitor --------------------------------------------------------------------

_PERIOD_METRICS = ("accuracy", "precision", "recall", "f1", "positive_rate")


def monitor(report: MonitorReport, training: Metrics) -> Figure:
    """The drift of a batch per feature; with periods, its metrics over time below, the
    training (held-out) figures as dashed reference lines."""
    features = report.drift.features
    psi_height = max(3.0, 1.2 + 0.28 * len(features))
    if not report.periods:
        figure, ax = _new((7.2, psi_height))
        _psi_bars(ax, report)
        return figure
    figure = _figure((7.2, psi_height + 4.2))
    psi_ax, time_ax = figure.subplots(2, 1, height_ratios=[psi_height, 4.2])
    _psi_bars(psi_ax, report)
    _over_time(time_ax, report, training)
    return figure


def _psi_bars(ax: Axes, report: MonitorReport) -> None:
    from census_salary.drift import MAJOR, MODERATE

    features = report.drift.features[::-1]  # the first feature at the top
    positions = np.arange(len(features))
    values = [f.psi or 0.0 for f in features]
    colours = [
        _THRESHOLD if v > MAJOR else "tab:orange" if v > MODERATE else _MODEL for v in values
    ]
    ax.barh(positions, values, color=colours, alpha=0.8)
    ax.axvline(MODERATE, color="0.4", linestyle=":", label=f"moderate ({MODERATE:g})")
    ax.axvline(MAJOR, color=_THRESHOLD, linestyle="--", label=f"major ({MAJOR:g})")
    ax.set_yticks(positions, labels=[f.feature for f in features])
    drift = report.drift
    rates = f"predicted >50K {drift.predicted_positive_rate or 0:.3f}"
    ax.set(
        xlabel="Population stability index against the training split",
        title=f"Drift of {report.rows:,} rows ({rates}; training "
        f"{drift.reference_positive_rate:.3f})",
    )
    ax.legend(loc="lower right", fontsize=8)


def _over_time(ax: Axes, report: MonitorReport, training: Metrics) -> None:
    starts = [p.start for p in report.periods]
    for i, name in enumerate(_PERIOD_METRICS):
        colour = f"C{i}"
        values = [getattr(p, name) for p in report.periods]
        ax.plot(
            starts,
            [np.nan if v is None else v for v in values],
            "o-",
            color=colour,
            label=name.replace("_", " "),
        )
        reference = getattr(training, name)
        if reference is not None:
            ax.axhline(reference, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    ax.set(
        ylim=(0, 1.02),
        ylabel=f"per {report.period} (dashed: training)",
        title=f"Performance per {report.period} ({sum(p.rows for p in report.periods):,} "
        "labelled rows)",
    )
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(loc="lower left", fontsize=8, ncols=3)
