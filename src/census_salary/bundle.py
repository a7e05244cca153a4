"""Load the model bundle: checked, with its one scorer.

A bundle is a folder under the artifacts folder (see `artifacts`, which writes, keeps
and switches them):

    <version>/model.skops     the fitted pipeline, in skops' format (no pickle)
    <version>/trees.npz       its gradient-boosted trees as plain arrays (see `trees`), which
                              every command scores with; absent for other model kinds
    <version>/metadata.json   version, data hash, model hash, schema, threshold, metrics...
    <version>/profile.json    the training split's drift profile (see `drift`); absent in
                              bundles older than metadata schema 3, which have no drift reference
    <version>/evaluation.json, slices.json (with the fairness summary), slice_output.txt
    <version>/importance.json, *.png   permutation importance and the audit figures
    LATEST                    the version id of the current bundle

Loading checks the SHA-256 recorded in metadata.json before a file is read, skops only
builds types from its own safe set plus `ALLOWED_TYPES`, and the tree arrays are read by
numpy without pickle. Either way a stored example must score its stored probability
before the model is used.

A process that cannot read the folder (a cluster's executor) is shipped its files as
bytes (`bundle_files`: the metadata and the one file the scorer reads) and loads them with
`load_bundle_files`, through the same loader and the same checks.

Which scorer a loaded bundle gets is decided here and only here (`_model_file`): the
tree tables when the bundle has them, unless `[model] scorer = "pipeline"`; otherwise
the pipeline. Both give the same probabilities to the last bit (checked at training).
scikit-learn and skops are imported only when the pipeline itself is needed, so a
process scoring from `trees.npz` starts without them.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import ValidationError

from census_salary.contract import (
    Columns,
    DistinctColumn,
    check_records,
    distinct,
    labels_at,
    row_count,
)
from census_salary.drift import PROFILE_FILE, DriftProfile
from census_salary.errors import ModelError
from census_salary.metadata import VERSION_PATTERN, BundleMetadata
from census_salary.metrics import SliceReport
from census_salary.scoring import PipelineScorer, Scorer
from census_salary.trees import TreeTables

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

POINTER = "LATEST"
MODEL_FILE = "model.skops"
TREES_FILE = "trees.npz"
# The versions a bundle records (`library_versions`), and those each scorer reads with: the
# tree tables are numpy arrays; the pipeline is all of them.
LIBRARIES = ("python", "scikit-learn", "numpy", "pandas", "skops", "pydantic")
TREES_LIBRARIES = ("python", "numpy")
METADATA_FILE = "metadata.json"
SLICES_FILE = "slices.json"
IMPORTANCE_FILE = "importance.json"
# Types skops does not trust by default that our pipelines are made of; nothing else is
# ever built from a model file. A test checks every model kind needs no more than these.
ALLOWED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
)
ScorerChoice = Literal["trees", "pipeline"]


@dataclass(frozen=True)
class Bundle:
    """A loaded model: its metadata (threshold, vocabularies...) and one `Scorer`.

    Every door scores through this: the CLI, the API, auditing, and `predict --url`
    (whose bundle is a remote server's metadata with a `RemoteScorer`).
    """

    metadata: BundleMetadata
    scorer: Scorer
    source: str  # the folder or URL it came from, for messages
    profile: DriftProfile | None = None  # the drift reference, where the bundle has one

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def threshold(self) -> float:
        return self.metadata.threshold

    @functools.cached_property
    def _vocabularies(self) -> dict[str, frozenset[str]]:
        return {
            name: frozenset(words) for name, words in self.metadata.features.categorical.items()
        }

    def probabilities(self, columns: Columns, threads: int = 1) -> np.ndarray:
        """P(>50K) for checked rows (`contract.check_columns(...).columns`); with `threads`
        > 1, the tree tables score a large input in that many threads (other scorers
        have their own)."""
        if threads > 1 and isinstance(self.scorer, TreeTables):
            return self.scorer.probabilities(columns, threads)
        return self.scorer.probabilities(columns)

    def labels(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        return labels_at(probabilities, self.threshold if threshold is None else threshold)

    def unknown_categories(self, columns: Columns) -> dict[str, np.ndarray]:
        """Per categorical column: the rows whose value the model never saw (scored as
        missing), for the columns that have any."""
        found: dict[str, np.ndarray] = {}
        for name, column, unknown in self._unknown(columns):
            if (rows := np.flatnonzero(np.isin(column.codes, unknown))).size:
                found[name] = rows
        return found

    def unknown_values(self, columns: Columns) -> dict[str, dict[str, int]]:
        """Per categorical column: each value the model never saw (scored as missing) and
        how many of the rows hold it, for the columns that have any."""
        found: dict[str, dict[str, int]] = {}
        for name, column, unknown in self._unknown(columns):
            rows = np.bincount(column.codes, minlength=len(column.values))
            held: dict[str, int] = {}
            for i in unknown:  # (two spellings may have checked to the same text)
                if rows[i]:
                    held[column.values[i]] = held.get(column.values[i], 0) + int(rows[i])
            if held:
                found[name] = held
        return found

    def _unknown(self, columns: Columns) -> Iterator[tuple[str, DistinctColumn, list[int]]]:
        """Per categorical column whose values include some the model never saw: the
        column by its distinct values, and the indices of those among them."""
        for name, known in self._vocabularies.items():
            column = distinct(columns, name)
            unknown = [
                i for i, v in enumerate(column.values) if isinstance(v, str) and v not in known
            ]
            if unknown:
                yield name, column, unknown

    def warnings(
        self, columns: Columns, unknown: Mapping[str, np.ndarray] | None = None
    ) -> list[list[str]]:
        """Per row: the categories the model never saw, which it scores as missing
        (`unknown`: what `unknown_categories` gave for these columns, if already asked)."""
        n_rows = row_count(columns)
        found: list[list[str]] = [[] for _ in range(n_rows)]
        if unknown is None:
            unknown = self.unknown_categories(columns)
        for name, rows in unknown.items():
            column = distinct(columns, name)
            for i in rows.tolist():
                value = column.values[column.codes[i]]
                found[i].append(f"{name}: unknown value {value!r}, scored as missing")
        return found


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_version(model_bytes: bytes, now: datetime | None = None) -> str:
    """`20261127T120301Z-3f2a9c1b`: sortable by time, tied to the model's content."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{moment}-{sha256_bytes(model_bytes)[:8]}"


def dump_model(pipeline: Pipeline) -> bytes:
    import skops.io as sio

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        sio.dump(pipeline, path)
        return path.read_bytes()


def current_version(artifacts_dir: Path) -> str | None:
    """The version LATEST names, or None when there is none or it cannot be read (which
    `census use VERSION` repairs, so it must not stop that)."""
    try:
        return current_bundle_dir(artifacts_dir).name
    except ModelError:
        return None


def current_bundle_dir(artifacts_dir: Path) -> Path:
    """The folder of the bundle LATEST names. A LATEST that cannot be read, or does not
    hold one version id (a folder, bytes that are not UTF-8, a NUL, two lines, a path),
    is a ModelError naming it."""
    pointer = artifacts_dir / POINTER
    repair = (
        "run `census use VERSION` with a kept version from `census runs` to write it again "
        "(or `census train`)"
    )
    try:
        version = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ModelError(
            f"No model in {artifacts_dir} (no {POINTER} file). Run `census train`, "
            "or point [artifacts] dir in census.toml at a folder with a model."
        ) from None
    except OSError as exc:
        raise ModelError(f"Cannot read {pointer}: {exc.strerror or exc}; {repair}.") from None
    except UnicodeDecodeError:
        raise ModelError(f"{pointer} is not UTF-8 text; {repair}.") from None
    if not re.fullmatch(VERSION_PATTERN, version):
        raise ModelError(f"{pointer} does not name a model version; {repair}.")
    return artifacts_dir / version


def read_metadata(bundle_dir: Path) -> BundleMetadata:
    return _parse_metadata(_folder_reader(bundle_dir)(METADATA_FILE), bundle_dir / METADATA_FILE)


def _parse_metadata(data: bytes, path: Path) -> BundleMetadata:
    """The metadata at `path`, which must name the version its folder is named after: a
    folder copied under another name would be current under one version and describe
    another (and sort by a date it does not have)."""
    try:
        metadata = BundleMetadata.model_validate_json(data)
    except ValidationError as exc:
        raise ModelError(
            f"{path} is not valid model metadata ({exc.error_count()} problem(s), first: "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}); run `census train`."
        ) from None
    if path.parent.name != metadata.version:
        raise ModelError(
            f"{path} is the metadata of model {metadata.version}, but its folder is named "
            f"{path.parent.name}; a bundle's folder is named after its version. Rename the "
            f"folder to {metadata.version}, or run `census train`."
        )
    return metadata


def load_bundle(artifacts_dir: Path, scorer: ScorerChoice = "trees") -> Bundle:
    """The current bundle, checked, with its scorer (see `load_bundle_dir`)."""
    return load_bundle_dir(current_bundle_dir(artifacts_dir), scorer)


def load_bundle_dir(bundle_dir: Path, scorer: ScorerChoice = "trees") -> Bundle:
    """The bundle in `bundle_dir`, checked, with its scorer: the tree tables when it has
    them and `scorer` is "trees", else the pipeline. A file not the one recorded is refused."""
    return _load(_folder_reader(bundle_dir), bundle_dir, scorer)


def bundle_files(bundle_dir: Path, scorer: ScorerChoice = "trees") -> dict[str, bytes]:
    """{file name: bytes} of every file `load_bundle_files` needs from `bundle_dir` (what
    `load_bundle_dir` reads), for processes that cannot read the folder: a cluster's
    executors. Nothing is trusted here: `load_bundle_files` checks them as a folder's."""
    read = _folder_reader(bundle_dir)
    metadata = read(METADATA_FILE)
    parsed = _parse_metadata(metadata, bundle_dir / METADATA_FILE)
    model_file, _ = _model_file(parsed, scorer)
    files = {METADATA_FILE: metadata, model_file: read(model_file)}
    if parsed.profile_sha256 is not None:
        files[PROFILE_FILE] = read(PROFILE_FILE)
    return files


def load_bundle_files(
    files: Mapping[str, bytes], source: str, scorer: ScorerChoice = "trees"
) -> Bundle:
    """The bundle in `files` (from `bundle_files`; `source` is the folder they came from,
    for messages), checked exactly as `load_bundle_dir` checks a folder."""

    def read(name: str) -> bytes:
        try:
            return files[name]
        except KeyError:
            raise ModelError(f"{source}/{name} was not shipped with the model.") from None

    return _load(read, Path(source), scorer)


def _model_file(metadata: BundleMetadata, scorer: ScorerChoice) -> tuple[str, str]:
    """The file a bundle scores with (the tree tables when it has them and `scorer` is
    "trees", else the pipeline) and the SHA-256 recorded for it."""
    if metadata.trees_sha256 is not None and scorer == "trees":
        return TREES_FILE, metadata.trees_sha256
    return MODEL_FILE, metadata.model_sha256


def _folder_reader(bundle_dir: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = bundle_dir / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{path} is missing; run `census train`.") from None
        except OSError as exc:
            raise ModelError(f"Cannot read {path}: {exc.strerror}.") from None

    return read


def _load(read: Callable[[str], bytes], bundle_dir: Path, scorer: ScorerChoice) -> Bundle:
    """The one way a bundle is loaded, from a folder or from shipped bytes."""
    metadata = _parse_metadata(read(METADATA_FILE), bundle_dir / METADATA_FILE)
    bundle = _load_scorer(read, bundle_dir, metadata, scorer)
    return replace(bundle, profile=_read_profile(read, bundle_dir, metadata))


def _load_scorer(
    read: Callable[[str], bytes], bundle_dir: Path, metadata: BundleMetadata, scorer: ScorerChoice
) -> Bundle:
    model_file, sha256 = _model_file(metadata, scorer)
    path = bundle_dir / model_file
    data = _verified(read(model_file), path, sha256)
    if model_file == TREES_FILE:
        tables = TreeTables.from_bytes(data, str(path))
        schema = metadata.features
        if (tables.categorical, tables.numerical) != (
            tuple(schema.categorical),
            tuple(schema.numerical),
        ):
            raise ModelError(
                f"{path} does not hold the columns {METADATA_FILE} lists; run `census train`."
            )
        return _checked(Bundle(metadata, tables, str(bundle_dir)), path, TREES_LIBRARIES)
    pipeline = load_pipeline(data, path)
    try:
        pipeline_scorer = PipelineScorer(pipeline)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} does not fit this version of census: {exc}") from None
    return _checked(Bundle(metadata, pipeline_scorer, str(bundle_dir)), path, LIBRARIES)


def _read_profile(
    read: Callable[[str], bytes], bundle_dir: Path, metadata: BundleMetadata
) -> DriftProfile | None:
    """The bundle's drift profile, checked against its recorded SHA-256; None for a bundle
    trained before profiles were stored."""
    if metadata.profile_sha256 is None:
        return None
    path = bundle_dir / PROFILE_FILE
    try:
        return DriftProfile.model_validate_json(
            _verified(read(PROFILE_FILE), path, metadata.profile_sha256)
        )
    except ValidationError:
        raise ModelError(f"{path} is not a drift profile; the bundle is damaged.") from None


def read_slices(bundle_dir: Path) -> SliceReport:
    path = bundle_dir / SLICES_FILE
    try:
        return SliceReport.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except ValidationError:
        raise ModelError(f"{path} is not a slice report; the bundle is damaged.") from None


def _verified(data: bytes, path: Path, sha256: str) -> bytes:
    if sha256_bytes(data) != sha256:
        raise ModelError(
            f"{path} does not match the SHA-256 recorded in {METADATA_FILE}: the file "
            "was changed or damaged, so it will not be loaded. Run `census train` or restore it."
        )
    return data


def load_pipeline(data: bytes, model_path: Path) -> Pipeline:
    """The pipeline in a skops file's bytes, built only from skops' safe types and ours."""
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(ALLOWED_TYPES))
    except Exception as exc:  # skops raises many kinds on a damaged zip
        raise ModelError(f"{model_path} is not a readable skops file: {exc}") from None
    if untrusted:
        raise ModelError(
            f"{model_path} contains types this version does not allow: {', '.join(untrusted)}. "
            "It was not loaded; retrain with `census train`."
        )
    try:
        pipeline = sio.loads(data, trusted=list(ALLOWED_TYPES))
    except Exception as exc:
        raise ModelError(f"{model_path} could not be loaded: {exc}") from None
    encode = pipeline.named_steps.get("encode") if isinstance(pipeline, Pipeline) else None
    if not isinstance(encode, ColumnTransformer):
        raise ModelError(f"{model_path} does not hold a census pipeline; run `census train`.")
    return pipeline


def _checked(bundle: Bundle, path: Path, libraries: Sequence[str]) -> Bundle:
    """The bundle, once its stored example scores the stored probability with `path`;
    a warning for each of the `libraries` its scorer reads with that is not the version
    it was trained with."""
    stored = bundle.metadata.self_test
    try:
        got = float(bundle.probabilities(check_records([stored.row]).columns)[0])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} does not fit this version of census: {exc}") from None
    if abs(got - stored.probability) > 1e-9:
        raise ModelError(
            f"{path} loaded but scores its stored example {got:.6f} instead of "
            f"{stored.probability:.6f}; the installed libraries disagree with the "
            "ones it was trained with. Retrain with `census train`."
        )
    installed = library_versions(libraries)  # (each a lookup of a package's metadata)
    for name, version in installed.items():
        recorded = bundle.metadata.library_versions.get(name)
        if recorded and recorded != version:
            logger.warning("model was trained with %s %s; %s is installed", name, recorded, version)
    return bundle


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str]:
    """The installed versions of `names` (default: all a bundle records)."""
    import platform
    from importlib.metadata import version

    return {
        name: platform.python_version() if name == "python" else version(name) for name in names
    }
