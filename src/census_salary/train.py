"""Training: split, (search), fit, threshold, evaluate, slice, write the bundle and card;
and `use_version`, which makes another kept bundle current and describes it in the card.

The slice report of the held-out split, with its bootstrap intervals (`[slices]`) and the
fairness summary (`[fairness]`, in its `fairness` field), is stored in the bundle as
slices.json and rendered as slice_output.txt; the model card's fairness section reads it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Client, Listener
from multiprocessing.context import AuthenticationError
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from census_salary import __version__
from census_salary.artifacts import (
    Switch,
    artifacts_lock,
    save_bundle,
    switch_bundle,
    unused_version,
)
from census_salary.audit import figure_data, importance_of
from census_salary.bundle import IMPORTANCE_FILE, dump_model, library_versions, sha256_bytes
from census_salary.config import Settings
from census_salary.contract import COLUMNS, EXAMPLE_ROW, check_records
from census_salary.data import LABELS, CensusData, Split, read_census, split_counts, split_data
from census_salary.download import ensure_census
from census_salary.drift import PROFILE_FILE, build_profile
from census_salary.errors import InputError, no_rows
from census_salary.helpers import Helpers, training_helpers
from census_salary.metadata import BundleMetadata, DataInfo, FeatureSchema, SelfTest
from census_salary.metrics import SliceReport, evaluate, roc_auc, slice_metrics
from census_salary.model import (
    build_pipeline,
    check_model_settings,
    choose_threshold,
    param_prefix,
)
from census_salary.model_card import check_card_path, write_model_card
from census_salary.progress import NoProgress, Progress
from census_salary.report import render_slice_text
from census_salary.scoring import PipelineScorer, Scorer
from census_salary.tree_export import export_trees

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    bundle_dir: Path
    metadata: BundleMetadata
    slices: SliceReport
    seconds: float
    removed: tuple[str, ...] = ()  # older bundles the keep rule removed


def load_training_data(settings: Settings, progress: Progress) -> CensusData:
    """The training data, refused (`check_trainable`) when training cannot use it."""
    path = ensure_census(settings.data_path, settings.data.url, progress)
    data = read_census(path, target=settings.data.target)
    check_trainable(data, settings, path)
    return data


_MOST_ROWS_COUNTED = 200  # rows `check_trainable` adds, one at a time, to advise how many


@dataclass(frozen=True)
class _Needs:
    """What the training split needs of the data, by the settings: `per_class` rows of each
    class, one for each fold (`folds`: a setting and its folds) or 1 without folds; and
    `rows` in all (successive halving starts from 2 rows of each class per fold)."""

    folds: tuple[tuple[str, int], ...]
    per_class: int
    rows: int


def _needs(settings: Settings, most_folds: int | None = None) -> _Needs:
    """What the training split needs by the settings (with no more folds than `most_folds`
    of each kind, when given)."""
    folds: list[tuple[str, int]] = []
    if settings.threshold.objective != "fixed":
        folds.append(("[threshold] cv", settings.threshold.cv))
    search = settings.search
    if search.enabled:
        folds.append(("[search] cv", search.cv))
    if most_folds is not None:
        folds = [(name, min(n, most_folds)) for name, n in folds]
    halving = search.enabled and search.method == "halving"
    rows = 2 * 2 * dict(folds)["[search] cv"] if halving else 0
    return _Needs(tuple(folds), max([1, *(n for _, n in folds)]), rows)


def _short(counts: list[int], needs: _Needs, settings: Settings) -> list[int]:
    """The classes (0: <=50K, 1: >50K) of which data with these `counts` holds too few rows
    to train on: `split_data` must hold out one of each, to evaluate the model on, and leave
    the training split `needs`; an empty list where the data will do."""
    split = split_counts(*counts, settings.split.test_size, settings.split.seed)
    if split is None:  # (a class of fewer than 2 rows, or too few rows to split)
        return [c for c in (0, 1) if counts[c] < 2] or [int(np.argmin(counts))]
    training, held_out = split
    short = [c for c in (0, 1) if held_out[c] < 1 or training[c] < needs.per_class]
    if not short and sum(training) < needs.rows:
        short = [int(np.argmin(counts))]
    return short


def check_trainable(data: CensusData, settings: Settings, source: Path) -> None:
    """Refuse data training cannot use, before it fits anything, with an InputError that
    names `source`, what it holds, what training needs and what to do: the held-out split
    needs rows of both classes (the metrics, the curves and the permutation importance are
    undefined on one), and the training split as many rows of each class as the most folds
    it is cut into ([threshold] cv, and [search] cv when a search is enabled), so that each
    fold holds both (a model fitted on one class, or a fold scored on one, is meaningless);
    `split_data` deals each class out by its count alone (`split_counts`)."""
    counts = [int((data.target == c).sum()) for c in (0, 1)]
    needs = _needs(settings)
    if not _short(counts, needs, settings):
        return
    # The fewest rows of each class, from these on, that will do: counted a row at a time
    # (each step runs the split), so not past settings that ask for thousands more.
    wanted: list[int] | None = list(counts)
    for _ in range(_MOST_ROWS_COUNTED):
        if not (short := _short(wanted, needs, settings)):
            break
        for c in short:
            wanted[c] += 1
    else:
        wanted = None
    names = {label: name for name, label in LABELS.items()}
    test_size = settings.split.test_size
    if not len(data.target):
        found = str(no_rows(source))
    else:
        dropped = data.duplicates_dropped
        found = (
            f"{source} holds too few rows to train on: {len(data.target)} "
            f"({counts[0]} labelled {names[0]}, {counts[1]} labelled {names[1]}"
            f"{f', once {dropped} exact duplicates were dropped' if dropped else ''})"
        )
        split = split_counts(*counts, test_size, settings.split.seed)
        if split is not None:
            (train_0, train_1), (test_0, test_1) = split
            found += (
                f", which the split deals out as {train_0} {names[0]} and {train_1} "
                f"{names[1]} for training, {test_0} and {test_1} held out"
            )
        found += "."
    if needs.folds:
        folds = " and ".join(f"the {n} {name} folds" for name, n in needs.folds)
        training = (
            f"at least {needs.per_class} of each class in the training split, so that each "
            f"of {folds} holds both"
        )
    else:
        training = "rows of both classes in the training split, to fit the model on"
    if needs.rows:
        training += (
            f', and at least {needs.rows} rows there for [search] method = "halving" (2 of '
            "each class for each [search] cv fold)"
        )
    lower = _settings_to_lower(counts, needs, settings)
    if wanted is not None:
        advice = "Add rows: at least " + " and ".join(
            f"{wanted[c] - counts[c]} more labelled {names[c]} ({wanted[c]} in all)"
            for c in (0, 1)
            if wanted[c] > counts[c]
        )
        advice += f", or lower {lower}" if lower else ""
    else:
        advice = f"Lower {lower}" if lower else "Change the settings named above"
    raise InputError(
        f"{found} Training needs rows of both classes in the held-out split ([split] "
        f"test_size = {test_size}), to evaluate the model on, and {training}. {advice}."
    )


def _settings_to_lower(counts: list[int], needs: _Needs, settings: Settings) -> str:
    """The fold settings that, lowered to as many folds as the training split holds rows
    of its rarer class, let data with these `counts` train; empty where that does not do."""
    split = split_counts(*counts, settings.split.test_size, settings.split.seed)
    fewest = min(split[0]) if split is not None else 0
    if fewest < 2 or _short(counts, _needs(settings, fewest), settings):
        return ""
    return " and ".join(f"{name} to {fewest}" for name, n in needs.folds if n > fewest)


def train(
    settings: Settings, progress: Progress | None = None, helpers: Helpers | None = None
) -> TrainResult:
    """Fit the configured model and make it the current bundle in the artifacts folder.

    `helpers` share the work (see `census_salary.helpers`); without them, training
    starts the helper processes [train] processes asks for. One run at a time per
    artifacts folder: another waits for this one to finish.
    """
    progress = progress or NoProgress()
    check_model_settings(settings)
    check_card_path(settings.model_card_path, settings.artifacts_dir)  # before any fitting
    waiting = "Waiting for another census run in the artifacts folder to finish"
    with artifacts_lock(settings.artifacts_dir, on_wait=lambda: progress.start(waiting)):
        if helpers is not None:
            return _train(settings, progress, helpers)
        with training_helpers(settings) as started:
            return _train(settings, progress, started)


def _train(settings: Settings, progress: Progress, helpers: Helpers) -> TrainResult:
    began = time.perf_counter()
    progress.start("Reading data")
    data = load_training_data(settings, progress)
    split = split_data(data, settings.split.test_size, settings.split.seed)
    features = settings.features
    pipeline = build_pipeline(
        settings.model.kind,
        settings.model.selected_params,
        features.categorical,
        features.numerical,
        settings.split.seed,
    )
    best_params: dict[str, Any] = {}
    if settings.search.enabled:
        pipeline, best_params = _search(pipeline, split, settings, progress)
    # From the first fit to the last figure, helpers work beside this process: its OpenMP
    # and BLAS code (scikit-learn's fits and predictions, numpy's matmul) keeps to one
    # thread, or the two would contend for a core and both run slower.
    with helpers.sharing_cores():
        pipeline, threshold = _fit(pipeline, split, settings, progress, helpers)
        # Beside the evaluation, a helper saves the model and then measures the permutation
        # importance with the scorer this process exports (the trees, where there are some).
        saved_model = helpers.run(dump_model, pipeline)
        scorer = PipelineScorer(pipeline)
        progress.start("Evaluating")
        trees = export_trees(scorer, data.features)
        fast = trees or scorer  # the same numbers (the export proves it); the tables ~10x sooner
        test_y = split.test_y.to_numpy()
        importance = helpers.run(
            importance_of, settings, fast.probabilities, split.test_x, test_y, threshold
        )
        test_p = fast.probabilities(split.test_x)
        metrics = evaluate(test_y, test_p, threshold)
        slice_columns = settings.slices.features or features.all
        slices = slice_metrics(
            split.test_x,
            test_y,
            test_p,
            threshold,
            slice_columns,
            settings.slices,
            settings.fairness,
        )
        progress.start("Writing the bundle")
        trees_bytes = trees.to_bytes() if trees is not None else None
        profile_bytes = _profile(split, features.all, scorer.vocabularies, fast, threshold)
        model_bytes = saved_model.result()
        metadata = BundleMetadata(
            version=unused_version(settings.artifacts_dir, model_bytes),
            created_at=datetime.now(UTC).replace(microsecond=0),
            package_version=__version__,
            library_versions=library_versions(),
            model_kind=settings.model.kind,
            model_sha256=sha256_bytes(model_bytes),
            trees_sha256=sha256_bytes(trees_bytes) if trees_bytes is not None else None,
            profile_sha256=sha256_bytes(profile_bytes),
            data=DataInfo(
                path=str(settings.data.path),
                sha256=data.sha256,
                rows_read=data.rows_read,
                duplicates_dropped=data.duplicates_dropped,
                rows_train=len(split.train_y),
                rows_test=len(split.test_y),
            ),
            config=settings.training,
            features=FeatureSchema(
                categorical=scorer.vocabularies,
                numerical={
                    name: (float(split.train_x[name].min()), float(split.train_x[name].max()))
                    for name in features.numerical
                },
            ),
            threshold=threshold,
            threshold_objective=settings.threshold.objective,
            best_params=best_params,
            metrics=metrics,
            self_test=SelfTest(
                row=EXAMPLE_ROW,
                probability=float(scorer.probabilities(check_records([EXAMPLE_ROW]).columns)[0]),
            ),
        )
        progress.start("Drawing the figures")
        from census_salary.figures import FIGURE_NAMES, render_figures

        subtitle = f"model {metadata.version}, held-out split"
        figures = figure_data(
            settings, test_y, test_p, threshold, slices, importance.result(), subtitle
        )
        # Half the figures in a helper and half here: drawing is most of what is left.
        theirs = helpers.run(render_figures, figures, FIGURE_NAMES[::2])
        drawn = {**render_figures(figures, FIGURE_NAMES[1::2]), **theirs.result()}
        reports = {
            "evaluation.json": metrics.model_dump_json(indent=2).encode() + b"\n",
            "slices.json": slices.model_dump_json(indent=2).encode() + b"\n",
            "slice_output.txt": render_slice_text(slices).encode(),
            IMPORTANCE_FILE: figures.importance.model_dump_json(indent=2).encode() + b"\n",
            PROFILE_FILE: profile_bytes,
            **{name: drawn[name] for name in FIGURE_NAMES},
        }
        saved = save_bundle(
            settings.artifacts_dir,
            model_bytes,
            trees_bytes,
            metadata,
            reports,
            keep=settings.artifacts.keep,
        )
        write_model_card(saved.folder, settings.model_card_path)
    seconds = time.perf_counter() - began
    logger.info("trained %s in %.1f s: %s", metadata.version, seconds, metrics)
    return TrainResult(
        bundle_dir=saved.folder,
        metadata=metadata,
        slices=slices,
        seconds=seconds,
        removed=saved.removed,
    )


def _profile(
    split: Split,
    features: list[str],
    vocabularies: dict[str, list[str]],
    scorer: Scorer,
    threshold: float,
) -> bytes:
    """The training split's drift profile (see `drift`), as profile.json holds it."""
    predicted = scorer.probabilities(split.train_x) >= threshold
    columns = {name: split.train_x[name].to_numpy() for name in COLUMNS if name in features}
    profile = build_profile(columns, vocabularies, predicted)
    return profile.model_dump_json(indent=2).encode() + b"\n"


def use_version(settings: Settings, version: str) -> Switch:
    """Make the kept bundle `version` names (or starts) current, once it passes the checks
    loading does, and describe it in the model card. Waits for a training run to finish."""
    check_card_path(settings.model_card_path, settings.artifacts_dir)
    with artifacts_lock(settings.artifacts_dir):
        switch = switch_bundle(settings.artifacts_dir, version, settings.model.scorer)
        write_model_card(settings.artifacts_dir / switch.version, settings.model_card_path)
    return switch


def _fit(
    pipeline: Pipeline, split: Split, settings: Settings, progress: Progress, helpers: Helpers
) -> tuple[Pipeline, float]:
    """The model fitted on the whole training split, and its threshold: chosen on P(>50K)
    of each training row from a model fitted on the other folds, or fixed. The helpers
    fit folds while this process fits the final model, and then the folds they have not
    started."""
    objective = settings.threshold.objective
    x, y = split.train_x[settings.features.all], split.train_y
    folds = settings.threshold.cv if objective != "fixed" else 0
    progress.start(
        f"Fitting the model and {folds} folds for the threshold" if folds else "Fitting the model",
        total=folds + 1,
    )
    seed = settings.split.seed
    parts = (
        list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)) if folds else []
    )
    pending = [helpers.run(_fold_probabilities, pipeline, x, y, *part) for part in parts]
    fitted = clone(pipeline).fit(x, y)
    progress.advance()
    oof = np.empty(len(y))
    # Last fold first: helpers take folds from the front, and this process fits those no
    # helper has started.
    for (_, validation), fold in reversed(list(zip(parts, pending, strict=True))):
        oof[validation] = fold.result()
        progress.advance()
    if objective == "fixed":
        return fitted, settings.threshold.value
    return fitted, choose_threshold(y.to_numpy(), oof, objective)


def _fold_probabilities(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, fit: np.ndarray, validation: np.ndarray
) -> np.ndarray:
    """P(>50K) of the `validation` rows from a model fitted on the `fit` rows."""
    model = clone(pipeline).fit(x.iloc[fit], y.iloc[fit])
    return model.predict_proba(x.iloc[validation])[:, 1]


class _FoldCounter:
    """Counts of fitted folds, sent to the training process from whichever process fitted
    them (a loky worker, or this one), over a socket only that process listens on: no
    server process of its own that could outlive training or inherit its lock."""

    def __init__(self, address: Any, authkey: bytes) -> None:
        self.address, self.authkey = address, authkey

    def send(self, count: int | None) -> None:
        with Client(self.address, authkey=self.authkey) as connection:
            connection.send(count)


class _OneClassFold(ValueError):
    """A candidate of the search fitted or scored on rows of one class only."""


class _FoldScorer:
    """The search's scorer: ROC AUC of a fitted candidate on its validation fold, each
    call counted (picklable, unlike a closure over the progress bar)."""

    def __init__(self, counter: _FoldCounter) -> None:
        self.counter = counter

    def __call__(self, estimator: Pipeline, x: pd.DataFrame, y: pd.Series) -> float:
        # Raised through the search (error_score="raise"), then reported.
        if len(estimator.classes_) < 2:
            raise _OneClassFold("a training fold held rows of one class only")
        auc = roc_auc(y.to_numpy(), estimator.predict_proba(x)[:, 1])
        if auc is None:
            raise _OneClassFold("a validation fold held rows of one class only")
        try:
            self.counter.send(1)
        except (OSError, EOFError, AuthenticationError):  # the bar only: never the search
            logger.debug("a fitted fold could not be counted", exc_info=True)
        return auc


@contextmanager
def _counted(progress: Progress) -> Iterator[_FoldCounter]:
    """A counter any process can send counts to, each passed to `progress` as it arrives
    (by a thread of this process; a failure of `progress` is raised here afterwards)."""
    authkey = os.urandom(32)
    with Listener(authkey=authkey) as listener:  # a Unix socket, in a temporary folder
        counter = _FoldCounter(listener.address, authkey)
        stopping = threading.Event()
        failed: list[Exception] = []

        def forward() -> None:
            while True:
                try:
                    with listener.accept() as connection:
                        count = connection.recv()
                except (OSError, EOFError, AuthenticationError):
                    if stopping.is_set():  # the listener closed under it
                        return
                    continue  # a connection that broke off, or a stranger's
                if count is None:
                    return
                if not failed:
                    try:
                        progress.advance(count)
                    except Exception as exc:  # kept, and raised once the search is over
                        failed.append(exc)

        reader = threading.Thread(target=forward, name="search-progress", daemon=True)
        reader.start()
        try:
            yield counter
        finally:
            try:
                counter.send(None)
            except BaseException:  # then the reader stops when the listener closes
                stopping.set()
                raise
            reader.join()
        if failed:
            raise failed[0]


def _search(
    pipeline: Pipeline, split: Split, settings: Settings, progress: Progress
) -> tuple[Pipeline, dict[str, Any]]:
    """Grid search or successive halving over [search.grid], scored by ROC AUC, with
    [search] n_jobs processes fitting candidates at once."""
    search = settings.search
    if not search.grid:
        raise InputError("[search] is enabled but [search.grid] is empty; give values to try.")
    prefix = param_prefix(settings.model.kind)
    grid = {prefix + key: values for key, values in search.grid.items()}
    n_candidates = int(np.prod([len(v) for v in grid.values()]))
    cv = StratifiedKFold(n_splits=search.cv, shuffle=True, random_state=settings.split.seed)
    if search.method == "grid":
        progress.start("Searching hyperparameters", total=n_candidates * search.cv)
    else:
        progress.start("Searching hyperparameters (successive halving)", total=None)
    with _counted(progress) as counter:
        # Validation folds only; a fold that cannot be scored stops the search.
        shared = {
            "scoring": _FoldScorer(counter),
            "cv": cv,
            "n_jobs": search.n_jobs,
            "refit": False,
            "error_score": "raise",
            "return_train_score": False,
        }
        searcher: Any
        if search.method == "grid":
            searcher = GridSearchCV(pipeline, grid, **shared)
        else:
            from sklearn.experimental import enable_halving_search_cv  # noqa: F401
            from sklearn.model_selection import HalvingGridSearchCV

            searcher = HalvingGridSearchCV(
                pipeline, grid, random_state=settings.split.seed, **shared
            )
        try:
            searcher.fit(split.train_x, split.train_y)
        except _OneClassFold as exc:
            # (`check_trainable` leaves rows of each class in every fold; successive halving
            # fits and scores the candidates first on samples of the folds, drawn by chance.)
            rows, positives = len(split.train_y), int(split.train_y.sum())
            why = (
                " in the samples of its folds that successive halving drew"
                if search.method == "halving"
                else ""
            )
            raise InputError(
                f"The search could not score its candidates on {settings.data_path}: {exc}"
                f"{why} (the training split holds {rows - positives} rows labelled <=50K and "
                f"{positives} labelled >50K). Add rows of the rarer class, lower [search] cv "
                'or use [search] method = "grid".'
            ) from None
        except ValueError as exc:
            raise InputError(f"[search.grid] could not be searched: {exc}") from None
    best = {key.removeprefix(prefix): value for key, value in searcher.best_params_.items()}
    logger.info("best parameters: %s (ROC AUC %.4f)", best, searcher.best_score_)
    return clone(pipeline).set_params(**searcher.best_params_), best
