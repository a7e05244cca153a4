"""One contract behind every door: generated rows get the same verdict at each, and an
accepted row the same probability.

The doors: `POST /predict`, `census predict` reading JSON, JSON Lines and CSV (the same
reading and scoring the command runs), the training-data check (`read_census`) and the
pydantic row model of the OpenAPI schema. Values are generated around every column's
edges: numbers as text in many spellings, white space, case, other scripts' digits and
look-alike letters, booleans, huge integers, NaN, infinity, empty text, `?` and null.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from census_salary.api import create_app
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import COLUMNS, EXAMPLE_ROW, TARGET, canonical_name
from census_salary.data import CensusData, read_census
from census_salary.errors import InputError
from census_salary.predict import score_chunks
from census_salary.row_schema import CensusRow
from census_salary.rows import read_rows

BASE = {canonical_name(k): v for k, v in EXAMPLE_ROW.items()}
EDGE_TEXT = [
    "39", " 39 ", "+39", "-0", "039", "39.", "39.0", "39.5", ".5", "1e1", "1E1", "1_0",
    "2_174", "2,174", "0x1f", "\u0663\u0669", "\uff13\uff19", "3O", "l0", "", " ", "?", " ? ",
    "nan", "NaN", "inf", "-inf", "true", "None", "null", "120", "121", "16", "17", "0", "-1",
    "99999999999999999999", "1" * 25, "Male", "male", " Male ", "MALE", "Private", "x" * 100,
    "x" * 101, "\u00a039", "39\t", "Bachelors",
]  # fmt: skip
# CSV can carry any text but control characters (line breaks, NUL) through a parser.
csv_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=8
)
text_values = st.one_of(
    st.sampled_from(EDGE_TEXT),
    st.from_regex(r"\A[ ]{0,2}[+-]?[0-9]{1,4}(\.0{0,2})?[ ]{0,2}\Z"),
    csv_text,
)
json_values = st.one_of(
    text_values,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([39.0, 39.5, 1e300, -0.0, 120.0, 121.0]),
)


def row_of(changes: dict[str, Any]) -> dict[str, Any]:
    return {**BASE, **changes}


@pytest.fixture(scope="module")
def client(small_settings: Settings, small_bundle: Bundle) -> Iterator[TestClient]:
    with TestClient(create_app(small_settings, bundle=small_bundle)) as test_client:
        yield test_client


def through_api(client: TestClient, row: dict[str, Any]) -> float | None:
    response = client.post(
        "/predict",
        content=json.dumps({"inputs": [row]}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (200, 422), response.text
    return response.json()["probabilities"][0] if response.status_code == 200 else None


def through_predict(bundle: Bundle, text: str, fmt: str) -> float | None:
    """What `census predict --format FMT` does with the text: read, check, score."""
    try:
        _, chunks = read_rows(io.StringIO(text), fmt, 1000)  # type: ignore[arg-type]
        (scored,) = list(score_chunks(bundle, chunks).chunks)
    except InputError:
        return None
    return float(scored["probability"].iloc[0])


def as_csv(row: dict[str, Any], label: str | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = [*row, TARGET] if label else list(row)
    writer.writerow(header)
    writer.writerow([*row.values(), label] if label else list(row.values()))
    return out.getvalue()


def through_training_check(row: dict[str, Any], folder: Path) -> bool:
    path = folder / "labelled.csv"
    path.write_text(as_csv(row, label="<=50K"), encoding="utf-8")
    try:
        read_census(path)
    except InputError:
        return False
    return True


def through_row_model(row: dict[str, Any]) -> bool:
    try:
        CensusRow.model_validate(row)
    except ValidationError:
        return False
    return True


def same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == b)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(COLUMNS), json_values, min_size=1, max_size=3))
@example(changes={"age": "1_0"})
@example(changes={"capital_gain": "2_174"})
@example(changes={"age": "39."})
@example(changes={"age": True})
@example(changes={"sex": float("nan")})
def test_json_doors_agree(
    client: TestClient, small_bundle: Bundle, changes: dict[str, Any]
) -> None:
    row = row_of(changes)
    api = through_api(client, row)
    as_json = through_predict(small_bundle, json.dumps([row]), "json")
    as_lines = through_predict(small_bundle, json.dumps(row) + "\n", "jsonl")
    model = through_row_model(row)
    verdicts = {"api": api is not None, "json": as_json is not None, "jsonl": as_lines is not None}
    assert set(verdicts.values()) == {model}, (row, verdicts, model)
    assert same(api, as_json), (row, api, as_json)
    assert same(api, as_lines), (row, api, as_lines)
    if api is not None:
        assert not math.isnan(api)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(COLUMNS), text_values, min_size=1, max_size=3))
@example(changes={"age": " 39 ", "workclass": " ? "})
@example(changes={"native_country": "a|b"})
def test_text_doors_agree(
    client: TestClient,
    small_bundle: Bundle,
    tmp_path_factory: pytest.TempPathFactory,
    changes: dict[str, str],
) -> None:
    row = row_of({name: str(value) for name, value in {**BASE, **changes}.items()})
    api = through_api(client, row)
    from_csv = through_predict(small_bundle, as_csv(row), "csv")
    trained = through_training_check(row, tmp_path_factory.mktemp("door"))
    assert (api is not None) == (from_csv is not None) == trained, (row, api, from_csv, trained)
    assert same(api, from_csv), (row, api, from_csv)


def test_the_doors_score_the_data_alike(
    census_data: CensusData, client: TestClient, small_bundle: Bundle
) -> None:
    """Accepted rows: the same probability through the API as through census predict."""
    features = census_data.features.head(500)
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    rows = [{k: (int(v) if isinstance(v, float) else v) for k, v in r.items()} for r in records]
    response = client.post("/predict", json={"inputs": rows})
    text = "\n".join(json.dumps(row) for row in rows) + "\n"
    _, chunks = read_rows(io.StringIO(text), "jsonl", 100)
    predicted = np.concatenate(
        [c["probability"].to_numpy() for c in score_chunks(small_bundle, chunks).chunks]
    )
    np.testing.assert_array_equal(np.array(response.json()["probabilities"]), predicted)
