"""Input drift: how far the rows a model scores have moved from its training data.

Training stores a `DriftProfile` in the bundle (profile.json): per feature, bins and the
number of training rows in each; and the share of training rows the model predicts
`>50K`. Numbers are binned by `slicing.QuantileBins` (the slices' rule: quantile bins
that are never empty, 0 its own bin where most values are 0); categories get one bin per
value known in training, one for missing (`?`) and one for every other value (`other`),
so no bin is ever named by a value that was not in the training data.

`DriftProfile.count` puts rows (checked columns) in those bins, vectorised per feature;
`drift_report` compares counts with the training ones by the population stability index

    PSI = sum over bins of (observed share - training share) * ln(observed / training),

each share at least `SHARE_FLOOR`, so a bin empty on one side counts finitely. By the
usual rule of thumb, under 0.1 is stable, 0.1 to 0.25 a moderate shift, over 0.25 a
major one. The server (`/drift`, `/metrics`) and `census monitor` report the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from census_salary.contract import CATEGORICAL, Columns, distinct, row_count
from census_salary.errors import GateError
from census_salary.slicing import MISSING, QuantileBins

PROFILE_FILE = "profile.json"
PROFILE_BINS = 10  # quantile bins per number (fewer where values repeat)
OTHER = "other"  # the bin of every category value not seen in training
SHARE_FLOOR = 1e-4  # an empty bin counts as this share in the PSI
MODERATE, MAJOR = 0.1, 0.25  # PSI rule of thumb: stable below MODERATE, major above MAJOR
DriftLevel = Literal["stable", "moderate", "major"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureProfile(_Record):
    """One feature's bins and how many training rows fell in each."""

    feature: str
    kind: Literal["number", "category"]
    labels: list[str]  # one per bin, in order; all from the training data
    counts: list[int]  # training rows per bin
    edges: list[float] = []  # numbers: `QuantileBins.edges`
    zero_bin: bool = False  # numbers: `QuantileBins.zero_bin`

    @property
    def binning(self) -> QuantileBins:
        return QuantileBins(tuple(self.edges), self.zero_bin, tuple(self.labels))

    def bins_of(self, values: Any) -> np.ndarray:
        """Each value's bin index."""
        return BinCounter([self]).index({self.feature: values}, 0)


class DriftProfile(_Record):
    """The training split's bins per feature, and its predicted-positive rate."""

    rows: int
    predicted_positive_rate: float
    features: list[FeatureProfile]

    def count(self, columns: Columns) -> dict[str, np.ndarray]:
        """Per feature: how many of the rows (checked columns) fall in each bin."""
        counter = BinCounter(self.features)
        return counter.split(counter.count(columns))


class BinCounter:
    """Counts rows in every bin of some features at once: made once per profile, then one
    vectorised pass per feature and one `bincount` over all the bins per batch of rows."""

    def __init__(self, features: Sequence[FeatureProfile]) -> None:
        self.features = [f.feature for f in features]
        sizes = [len(f.labels) for f in features]
        self.offsets = np.cumsum([0, *sizes])  # feature j's bins: offsets[j]:offsets[j + 1]
        self._rules: list[QuantileBins | tuple[dict[Any, int], int]] = []
        for f in features:
            if f.kind == "number":
                self._rules.append(f.binning)
            else:
                known = len(f.labels) - 2  # the categories, then MISSING and OTHER
                codes: dict[Any, int] = {word: i for i, word in enumerate(f.labels[:known])}
                codes[None] = known  # a checked column's missing value
                self._rules.append((codes, known + 1))

    def index(self, columns: Columns, j: int) -> np.ndarray:
        """Each row's bin index in feature `j`."""
        rule, name = self._rules[j], self.features[j]
        if isinstance(rule, QuantileBins):
            return rule.index(np.asarray(columns[name], dtype=np.float64))
        codes, other = rule
        return distinct(columns, name).mapped(codes, other)

    def count(self, columns: Columns) -> np.ndarray:
        """How many rows fall in each bin, every feature's bins one after another."""
        n_rows = row_count(columns)
        index = np.empty((len(self.features), n_rows), dtype=np.intp)
        for j in range(len(self.features)):
            index[j] = self.index(columns, j)
        index += self.offsets[:-1, None]
        return np.bincount(index.ravel(), minlength=int(self.offsets[-1]))

    def split(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """`count`'s result per feature."""
        return {
            name: counts[self.offsets[j] : self.offsets[j + 1]]
            for j, name in enumerate(self.features)
        }


def build_profile(
    columns: Mapping[str, np.ndarray],
    vocabularies: Mapping[str, list[str]],
    predicted_positive: np.ndarray,
    bins: int = PROFILE_BINS,
) -> DriftProfile:
    """The profile of training rows, given as the model's features (numbers float,
    categories str with None or NaN for missing), with the model's vocabularies and its
    predictions on them."""
    features = []
    for name in columns:
        values = np.asarray(columns[name])
        if name in CATEGORICAL:
            # A table holds a missing category as NaN; checked columns hold None.
            values = np.array([None if v != v else v for v in values], dtype=object)
            labels = [*vocabularies[name], MISSING, OTHER]
            empty = FeatureProfile(feature=name, kind="category", labels=labels, counts=[])
        else:
            binning = QuantileBins.of(values.astype(np.float64), bins)
            if binning is None:
                binning = QuantileBins((), False, ("any",))
            empty = FeatureProfile(
                feature=name,
                kind="number",
                labels=list(binning.labels),
                counts=[],
                edges=list(binning.edges),
                zero_bin=binning.zero_bin,
            )
        counts = np.bincount(empty.bins_of(values), minlength=len(empty.labels))
        features.append(empty.model_copy(update={"counts": counts.tolist()}))
    rows = len(predicted_positive)
    rate = float(np.mean(predicted_positive)) if rows else 0.0
    return DriftProfile(rows=rows, predicted_positive_rate=rate, features=features)


def psi(reference: np.ndarray, observed: np.ndarray) -> float | None:
    """The population stability index of observed counts against reference counts (per
    bin), each share floored at `SHARE_FLOOR`; None when nothing was observed."""
    reference, observed = np.asarray(reference, float), np.asarray(observed, float)
    if observed.sum() == 0 or reference.sum() == 0:
        return None
    p = np.maximum(reference / reference.sum(), SHARE_FLOOR)
    q = np.maximum(observed / observed.sum(), SHARE_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def level(value: float | None) -> DriftLevel | None:
    if value is None:
        return None
    return "stable" if value < MODERATE else "moderate" if value <= MAJOR else "major"


class BinDrift(_Record):
    label: str
    reference_share: float
    observed_rows: int
    observed_share: float | None


class FeatureDrift(_Record):
    feature: str
    psi: float | None  # None: no rows seen yet
    level: DriftLevel | None
    bins: list[BinDrift]


class DriftReport(_Record):
    """Drift of some rows against the training profile: PSI per feature, and the
    predicted-positive rate beside training's."""

    model_version: str
    rows: int
    reference_rows: int
    predicted_positive_rate: float | None  # None: no rows seen yet
    reference_positive_rate: float
    features: list[FeatureDrift]

    def drifted(self, over: float) -> list[FeatureDrift]:
        """The features whose PSI is above `over`."""
        return [f for f in self.features if f.psi is not None and f.psi > over]

    def check_psi(self, over: float) -> None:
        """Raise GateError when a feature's PSI is above `over`."""
        if drifted := self.drifted(over):
            named = ", ".join(f"{f.feature} ({f.psi:.3f})" for f in drifted)
            raise GateError(
                f"{len(drifted)} feature(s) drifted past PSI {over:g} against the training "
                f"data: {named}."
            )


def drift_report(
    profile: DriftProfile,
    counts: Mapping[str, np.ndarray],
    positive: int,
    model_version: str,
) -> DriftReport:
    """Compare observed bin counts (per feature, as `DriftProfile.count` gives them) and
    the number predicted `>50K` among them with the training profile."""
    features = []
    rows = 0
    for f in profile.features:
        observed = np.asarray(counts.get(f.feature, np.zeros(len(f.labels))), dtype=np.int64)
        rows = max(rows, int(observed.sum()))
        total, reference_total = int(observed.sum()), sum(f.counts)
        value = psi(np.asarray(f.counts), observed)
        features.append(
            FeatureDrift(
                feature=f.feature,
                psi=value,
                level=level(value),
                bins=[
                    BinDrift(
                        label=label,
                        reference_share=ref / reference_total if reference_total else 0.0,
                        observed_rows=int(seen),
                        observed_share=int(seen) / total if total else None,
                    )
                    for label, ref, seen in zip(f.labels, f.counts, observed, strict=True)
                ],
            )
        )
    return DriftReport(
        model_version=model_version,
        rows=rows,
        reference_rows=profile.rows,
        predicted_positive_rate=positive / rows if rows else None,
        reference_positive_rate=profile.predicted_positive_rate,
        features=features,
    )


class DriftCounts:
    """Bin counts added up over batches of rows (`census monitor` reads a file in chunks)."""

    def __init__(self, profile: DriftProfile) -> None:
        self.profile = profile
        self.counter = BinCounter(profile.features)
        self.counts = np.zeros(int(self.counter.offsets[-1]), dtype=np.int64)
        self.positive = 0

    def add(self, columns: Columns, predicted_positive: np.ndarray) -> None:
        self.counts += self.counter.count(columns)
        self.positive += int(np.count_nonzero(predicted_positive))

    def report(self, model_version: str) -> DriftReport:
        counts = self.counter.split(self.counts)
        return drift_report(self.profile, counts, self.positive, model_version)
