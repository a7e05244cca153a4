"""Read, clean and check labelled census files (training and audit data).

Every row is checked by `contract.check_columns`, the same check the API and
`census predict` run, so the one contract rules training files too.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from census_salary.contract import COLUMNS, TARGET, canonical_name, check_columns, columns_of_frame
from census_salary.errors import DataUnavailableError, InputError, RowProblem

logger = logging.getLogger(__name__)

LABELS = {">50K": 1, "<=50K": 0}
MAX_PROBLEMS_IN_MESSAGE = 10


@dataclass(frozen=True)
class CensusData:
    """A clean, validated, labelled census table."""

    features: pd.DataFrame  # canonical columns: categoricals as str/NaN, numericals as float
    target: pd.Series  # 1 for >50K, 0 otherwise
    rows_read: int
    duplicates_dropped: int
    sha256: str


@dataclass(frozen=True)
class Split:
    train_x: pd.DataFrame
    train_y: pd.Series
    test_x: pd.DataFrame
    test_y: pd.Series


def split_data(data: CensusData, test_size: float, seed: int) -> Split:
    """The stratified train/test split; the same data and seed give the same split."""
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(
        data.features, data.target, test_size=test_size, random_state=seed, stratify=data.target
    )
    return Split(train_x, train_y, test_x, test_y)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_census(path: Path, *, target: str = TARGET) -> CensusData:
    """Read a labelled census file as published (or a variant of it), clean and validate it.

    Accepts the messy published layout: spaces after commas, `?` for missing values,
    hyphenated names, `fnlwgt`/`income` spellings, `>50K.` labels and files without a
    header row (UCI `adult.data`). Exact duplicate rows are dropped and counted.
    """
    if not path.is_file():
        raise DataUnavailableError(
            f"No data file at {path}. Copy the census data (adult.data or census.csv from "
            f"the UCI Adult dataset) to {path}; see data/README.md."
        )
    with path.open("r", encoding="utf-8", errors="strict", newline="") as handle:
        try:
            notes, header = _layout(path)
            if header is not None:
                refuse_repeated_names(header)
            raw = read_csv_text(handle, header=header is not None, skip=notes)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text: {exc}") from None
    raw = raw.rename(columns=canonical_name)
    target = canonical_name(target)
    if target not in raw.columns:
        raise InputError(
            f"{path} has no {target!r} column; a labelled file needs one "
            f"(columns found: {', '.join(raw.columns)})."
        )
    checked = check_columns(columns_of_frame(raw))
    labels, label_problems = parse_labels(raw[target])
    problems = sorted(checked.problems + label_problems, key=lambda p: p.row)
    if problems:
        raise InputError(summarise(problems, path), problems)
    # Missing categories as NaN, as scikit-learn's encoders expect in a table.
    frame = pd.DataFrame(dict(checked.columns)).fillna(np.nan).assign(**{TARGET: labels})
    duplicated = frame.duplicated()
    frame = frame.loc[~duplicated].reset_index(drop=True)
    logger.info("read %d rows from %s, dropped %d duplicates", len(raw), path, duplicated.sum())
    return CensusData(
        features=frame[COLUMNS],
        target=frame[TARGET],
        rows_read=len(raw),
        duplicates_dropped=int(duplicated.sum()),
        sha256=file_sha256(path),
    )


def _layout(path: Path) -> tuple[int, str | None]:
    """How many note lines (`|1x3 Cross validator` in adult.test) come first, and the
    header line that follows (None for `adult.data`: its first field is a number, not a
    name)."""
    notes = 0
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("|"):
                notes = number  # skip up to and with the last note line
            elif line.strip():
                first = line.split(",", 1)[0].strip()
                return notes, None if first.replace(".", "", 1).isdigit() else line
    return notes, ""


def refuse_repeated_names(text: str) -> None:
    """Refuse CSV `text` whose header (its first record) names a column twice: pandas
    would rename the second (`age.1`) and read the row's first value where a JSON row
    gives its last."""
    try:
        names = next(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True), [])
    except csv.Error:  # pandas words what is wrong with the line
        return
    repeated = sorted(name for name, times in Counter(names).items() if times > 1)
    if repeated:
        raise InputError(
            f"The CSV header names column(s) {', '.join(map(repr, repeated))} more than "
            "once; give each column once."
        )


def read_csv_text(
    source: IO[str],
    *,
    header: bool = True,
    skip: int = 0,
    chunksize: int | None = None,
) -> Any:
    """CSV as text columns, exactly as written (ids keep their leading zeros)."""
    try:
        return pd.read_csv(
            source,
            header=0 if header else None,
            names=None if header else [*COLUMNS, TARGET],
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            skip_blank_lines=True,
            skiprows=skip,
            chunksize=chunksize,
        )
    except pd.errors.EmptyDataError:
        raise InputError("The CSV input is empty: expected a header row and data rows.") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"The CSV input is malformed: {exc}") from None


def parse_labels(column: pd.Series) -> tuple[pd.Series, list[RowProblem]]:
    """1 for >50K, 0 for <=50K (a trailing period, as in adult.test, is allowed)."""
    text = column.astype(str).str.strip().str.rstrip(".")
    labels = text.map(LABELS)
    bad = labels.isna()
    problems = [
        RowProblem(
            int(i) + 1,
            TARGET,
            f"got {column.iloc[i]!r}; expected {' or '.join(LABELS)}",
        )
        for i in np.flatnonzero(bad.to_numpy())
    ]
    return labels.fillna(0).astype("int8"), problems


def summarise(problems: list[RowProblem], source: Path | str) -> str:
    """One message for a list of problems, naming the first few."""
    shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_IN_MESSAGE])
    more = len(problems) - MAX_PROBLEMS_IN_MESSAGE
    tail = f" (and {more} more)" if more > 0 else ""
    return (
        f"{len(problems)} invalid value(s) in {source}: {shown}{tail}. Fix the rows and try again."
    )
