"""The model's routes: /metadata and /predict, every answer and each error."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.helpers import CLIENT_MAX_ROWS, assert_problem, settings_with
from census_salary.api import create_app
from census_salary.api.routes.model import INLINE_ROWS
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import EXAMPLE_ROW, MAX_NESTING, TooDeepError, check_records
from census_salary.row_schema import SCHEMA_EXAMPLE_ROW, contract_document

AGE_EXPECTED = "expected a whole number from 0 to 120"
NOT_AN_OBJECT = "expected an object of census fields"


@pytest.fixture
def roomy(small_settings: Settings, small_bundle: Bundle) -> Iterator[TestClient]:
    """An app that takes batches big enough to be scored in a thread."""
    settings = settings_with(small_settings, max_rows=INLINE_ROWS * 2)
    with TestClient(create_app(settings, small_bundle)) as c:
        yield c


def predict(client: TestClient, rows: Any) -> dict[str, Any]:
    response = client.post("/predict", json=rows)
    assert response.status_code == 200, response.text
    return response.json()


def examples(client: TestClient) -> dict[str, Any]:
    spec = client.get("/openapi.json").json()
    return spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]


# --- /metadata ---------------------------------------------------------------------------


def test_metadata_has_schema_threshold_and_metrics(client: TestClient) -> None:
    body = client.get("/metadata").json()
    assert "Private" in body["features"]["categorical"]["workclass"]
    assert 0 < body["threshold"] < 1
    assert body["metrics"]["roc_auc"] > 0.8


def test_metadata_is_the_bundles_metadata(client: TestClient, small_bundle: Bundle) -> None:
    body = client.get("/metadata").json()
    body.pop("columns")
    assert body == small_bundle.metadata.model_dump(mode="json")


def test_metadata_columns_are_the_contract_document(client: TestClient) -> None:
    assert client.get("/metadata").json()["columns"] == contract_document()


# --- /predict: answers -------------------------------------------------------------------


def test_predict_inputs_object(client: TestClient) -> None:
    body = predict(client, {"inputs": [EXAMPLE_ROW]})
    assert body["predictions"][0] in {">50K", "<=50K"}
    assert 0 <= body["probabilities"][0] <= 1
    assert {"model_version", "threshold", "model_lib_version", "timestamp", "warnings"} <= set(body)


def test_predict_bare_list_keeps_order_and_duplicates(client: TestClient) -> None:
    rows = [{**EXAMPLE_ROW, "age": a} for a in (20, 60, 20, 35)]
    body = predict(client, rows)
    assert len(body["predictions"]) == 4
    assert body["probabilities"][0] == body["probabilities"][2]


def test_predict_gives_the_pipelines_probability(
    client: TestClient, pipeline_bundle: Bundle
) -> None:
    expected = pipeline_bundle.probabilities(check_records([EXAMPLE_ROW]).columns)[0]
    assert predict(client, [EXAMPLE_ROW])["probabilities"][0] == expected


def test_predict_labels_at_the_bundles_threshold(client: TestClient, small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "age": age} for age in range(20, 80, 5)]
    body = predict(client, rows)
    assert body["threshold"] == small_bundle.threshold
    expected = [">50K" if p >= small_bundle.threshold else "<=50K" for p in body["probabilities"]]
    assert body["predictions"] == expected


def test_underscored_names_are_accepted(client: TestClient) -> None:
    row = {k.replace("-", "_"): v for k, v in EXAMPLE_ROW.items()}
    assert client.post("/predict", json=[row]).status_code == 200


def test_unknown_category_is_scored_and_flagged(client: TestClient) -> None:
    body = predict(client, [{**EXAMPLE_ROW, "occupation": "Astronaut"}, EXAMPLE_ROW])
    assert body["warnings"] == [["occupation: unknown value 'Astronaut', scored as missing"], []]


def test_category_case_is_kept_so_another_case_is_unknown(client: TestClient) -> None:
    body = predict(client, [{**EXAMPLE_ROW, "sex": "male"}])
    assert body["warnings"] == [["sex: unknown value 'male', scored as missing"]]


@pytest.mark.parametrize("missing", ["?", "", " ? ", None])
def test_missing_category_is_scored_as_missing_without_a_warning(
    client: TestClient, missing: str | None
) -> None:
    unknown = predict(client, [{**EXAMPLE_ROW, "occupation": "Astronaut"}])["probabilities"]
    body = predict(client, [{**EXAMPLE_ROW, "occupation": missing}])
    assert body["warnings"] == [[]]
    assert body["probabilities"] == unknown


@pytest.mark.parametrize("age", ["39.", " 39 ", "+39", "39.00", 39.0])
def test_whole_number_spellings_are_accepted(client: TestClient, age: object) -> None:
    expected = predict(client, [EXAMPLE_ROW])["probabilities"]
    assert predict(client, [{**EXAMPLE_ROW, "age": age}])["probabilities"] == expected


def test_big_batches_are_scored_like_small_ones(roomy: TestClient) -> None:
    rows = [{**EXAMPLE_ROW, "age": 17 + i % 70} for i in range(INLINE_ROWS + 10)]
    small = [
        probability
        for start in range(0, len(rows), 101)
        for probability in predict(roomy, rows[start : start + 101])["probabilities"]
    ]
    assert predict(roomy, rows)["probabilities"] == small


def test_server_keeps_serving_after_errors(client: TestClient) -> None:
    client.post("/predict", content=b"{")
    assert client.post("/predict", json=[EXAMPLE_ROW]).status_code == 200


# --- /predict: errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'"a string"', 400),
        (b'{"rows": []}', 400),
        (b'{"inputs": "rows"}', 400),
        (b"\xff\xfe", 400),
        (b"[" * 10_000, 400),
        (b"[" * MAX_NESTING + b"]" * MAX_NESTING, 422),  # JSON, but the row is not an object
        (b'{"inputs": ' + b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1) + b"}", 422),
        (b'[{"age": ' + b"[" * (MAX_NESTING - 2) + b"]" * (MAX_NESTING - 2) + b"}]", 422),
        (b"[]", 422),
        (b'{"inputs": []}', 422),
        (b"[1]", 422),
        (b'{"inputs": [], "extra": 1}', 400),
        ('[{"sex": "Male"}]'.encode("utf-16"), 400),
        (b'[{"sex": "\xed\xa0\x80"}]', 400),  # half a surrogate pair, encoded, not escaped
    ],
    ids=[
        "not-json",
        "a-string",
        "no-inputs",
        "inputs-not-a-list",
        "not-utf8",
        "too-deep",
        "deeply-nested",
        "deeply-nested-inputs",
        "deeply-nested-value",
        "empty-list",
        "empty-inputs",
        "row-not-an-object",
        "inputs-and-another-key",
        "utf-16",
        "encoded-surrogate",
    ],
)
def test_malformed_bodies_are_4xx_problems(client: TestClient, body: bytes, status: int) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert_problem(response, status)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1),
        b'{"inputs": [{"note": ' + b"[" * (MAX_NESTING - 2) + b"]" * (MAX_NESTING - 2) + b"}]}",
        b'[{"age": NaN, "note": ' + b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1) + b"}]",
    ],
    ids=["array", "inputs", "read-by-the-standard-library"],
)
def test_a_body_nested_past_the_limit_is_a_400_naming_it(client: TestClient, body: bytes) -> None:
    detail = assert_problem(client.post("/predict", content=body), 400)["detail"]
    assert detail == f"The body cannot be read as rows: {TooDeepError()}."


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ([("content-type", "application/x-www-form-urlencoded")], "x-www-form-urlencoded"),
        ([("content-type", "text/csv")], "'text/csv'"),
        ([("content-type", "application/json; charset=utf-16")], "'utf-16'"),
        ([("content-type", "application/json"), ("content-type", "text/csv")], "two"),
    ],
    ids=["form", "csv", "utf-16", "two-types"],
)
def test_a_body_sent_as_another_media_type_is_a_415(
    client: TestClient, headers: list[tuple[str, str]], named: str
) -> None:
    body = json.dumps([EXAMPLE_ROW]).encode()
    detail = assert_problem(client.post("/predict", content=body, headers=headers), 415)["detail"]
    assert named in detail
    assert "application/json" in detail


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/json; charset=utf-8"},
        {"content-type": 'Application/JSON; Charset="UTF-8"'},
        {"content-type": "application/problem+json"},
        {"content-type": ""},
    ],
    ids=["none", "with-charset", "capitals", "a-json-type", "empty"],
)
def test_a_json_body_is_read_with_or_without_its_media_type(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = json.dumps([EXAMPLE_ROW]).encode()
    assert client.post("/predict", content=body, headers=headers).status_code == 200


def test_a_number_too_long_to_read_is_a_400_in_our_words(client: TestClient) -> None:
    body = b'[{"age": ' + b"9" * 5000 + b"}]"
    detail = assert_problem(client.post("/predict", content=body), 400)["detail"]
    assert "a number has more than 4,300 digits" in detail
    assert "set_int_max_str_digits" not in detail


def test_half_a_surrogate_pair_is_a_400_naming_where(client: TestClient) -> None:
    text = json.dumps({"inputs": [EXAMPLE_ROW, {**EXAMPLE_ROW, "race": "RACE"}]})
    body = text.replace("RACE", "\\udc00").encode()  # a lone low surrogate, escaped
    detail = assert_problem(client.post("/predict", content=body), 400)["detail"]
    assert "inputs[1].race holds half of a UTF-16 surrogate pair" in detail


@pytest.mark.parametrize("row", [1, "a row", None, [EXAMPLE_ROW], True])
def test_row_that_is_not_an_object_is_422_naming_its_index(client: TestClient, row: Any) -> None:
    body = assert_problem(client.post("/predict", json=[EXAMPLE_ROW, row]), 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, None)]
    assert body["errors"][0]["message"].endswith(NOT_AN_OBJECT)


def test_every_row_that_is_not_an_object_is_listed_beside_bad_values(client: TestClient) -> None:
    rows = [1, {**EXAMPLE_ROW, "age": 300}, "x", EXAMPLE_ROW, None]
    body = assert_problem(client.post("/predict", json=rows), 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (0, None),
        (1, "age"),
        (2, None),
        (4, None),
    ]
    assert body["detail"].startswith("4 invalid value(s); the first: row 0: got a number;")


def test_invalid_row_names_index_and_field(client: TestClient) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 300}]
    body = assert_problem(client.post("/predict", json=rows), 422)
    assert body["errors"] == [{"index": 1, "field": "age", "message": f"got 300; {AGE_EXPECTED}"}]


def test_detail_names_the_first_invalid_value(client: TestClient) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 300}]
    detail = assert_problem(client.post("/predict", json=rows), 422)["detail"]
    assert detail == f"1 invalid value(s); the first: row 1, field 'age': got 300; {AGE_EXPECTED}."


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        ("1_0", "'1_0'"),
        ("2,174", "'2,174'"),
        ("1e1", "'1e1'"),
        ("39.5", "'39.5'"),
        (39.5, "39.5"),
        (True, "true"),
        ("", "''"),
        ("?", "'?'"),
        (None, "no value"),
        (-1, "-1"),
        ("\u0663\u0669", "'\u0663\u0669'"),  # Arabic-Indic digits
    ],
)
def test_number_that_breaks_the_coercion_rule_is_422_naming_index_and_field(
    client: TestClient, age: object, shown: str
) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": age}]
    body = assert_problem(client.post("/predict", json=rows), 422)
    assert body["errors"] == [
        {"index": 1, "field": "age", "message": f"got {shown}; {AGE_EXPECTED}"}
    ]


@pytest.mark.parametrize("sex", [1, True, ["Male"], {"value": "Male"}, "x" * 101])
def test_category_that_is_not_short_text_is_422(client: TestClient, sex: object) -> None:
    body = assert_problem(client.post("/predict", json=[{**EXAMPLE_ROW, "sex": sex}]), 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "sex")], body


def test_missing_field_is_named(client: TestClient) -> None:
    row = {k: v for k, v in EXAMPLE_ROW.items() if k != "sex"}
    body = assert_problem(client.post("/predict", json=[row]), 422)
    assert body["errors"] == [
        {
            "index": 0,
            "field": "sex",
            "message": "got nothing (the field is missing); expected text of at most 100 "
            "characters, or ? (or null) when unknown",
        }
    ]


def test_field_given_twice_is_422(client: TestClient) -> None:
    row = {**EXAMPLE_ROW, "Age": 40}
    body = assert_problem(client.post("/predict", json=[row]), 422)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "age")], body


def test_every_invalid_value_is_listed_in_row_order(client: TestClient) -> None:
    rows = [{**EXAMPLE_ROW, "sex": 1}, EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 300, "fnlgt": -5}]
    body = assert_problem(client.post("/predict", json=rows), 422)
    assert sorted((e["index"], e["field"]) for e in body["errors"]) == [
        (0, "sex"),
        (2, "age"),
        (2, "fnlgt"),
    ]
    assert [e["index"] for e in body["errors"]] == [0, 2, 2]


def test_a_422_lists_the_first_hundred_problems_and_counts_them_all(roomy: TestClient) -> None:
    body = assert_problem(roomy.post("/predict", json=[{}] * 100), 422)
    assert len(body["errors"]) == 100
    assert body["detail"].startswith("1400 invalid value(s) (the first 100 listed); the first:")


def test_problem_does_not_echo_the_body(client: TestClient) -> None:
    secret = "x" * 90 + "SECRET"
    body = assert_problem(client.post("/predict", json=[{**EXAMPLE_ROW, "age": secret}]), 422)
    assert "SECRET" not in str(body)


def test_too_many_rows_is_413(client: TestClient) -> None:
    rows = [EXAMPLE_ROW] * (CLIENT_MAX_ROWS + 1)
    body = assert_problem(client.post("/predict", json=rows), 413)
    assert str(CLIENT_MAX_ROWS) in body["detail"]


# --- /predict in the OpenAPI schema --------------------------------------------------------


def test_openapi_documents_predict_with_examples(client: TestClient) -> None:
    assert examples(client)["inputs"]["value"] == {"inputs": [SCHEMA_EXAMPLE_ROW]}
    assert examples(client)["list"]["value"] == [SCHEMA_EXAMPLE_ROW, SCHEMA_EXAMPLE_ROW]


def test_openapi_examples_give_the_names_the_row_schema_requires(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["CensusRow"]
    assert set(schema["required"]) == set(schema["examples"][0])
    assert set(schema["required"]) == set(examples(client)["inputs"]["value"]["inputs"][0])


@pytest.mark.parametrize("name", ["inputs", "list"])
def test_openapi_example_works_when_pressed(client: TestClient, name: str) -> None:
    assert client.post("/predict", json=examples(client)[name]["value"]).status_code == 200


# --- /predict?explain=true ----------------------------------------------------------------


def test_explain_gives_contributions_that_add_up_to_each_rows_log_odds(
    client: TestClient,
) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 52, "workclass": "Astronaut"}]
    response = client.post("/predict?explain=true", json=rows)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [list(c) for c in body["contributions"]] == [
        [s["name"] for s in contract_document()]
    ] * 2
    for probability, contributions in zip(
        body["probabilities"], body["contributions"], strict=True
    ):
        log_odds = body["base_value"] + sum(contributions.values())
        assert log_odds == pytest.approx(math.log(probability / (1 - probability)), abs=1e-9)


def test_explain_leaves_the_predictions_as_they_are(client: TestClient) -> None:
    plain = predict(client, [EXAMPLE_ROW])
    explained = client.post("/predict?explain=true", json=[EXAMPLE_ROW]).json()
    assert explained["probabilities"] == plain["probabilities"]
    assert {"contributions", "base_value"}.isdisjoint(plain)


def test_explain_of_a_model_without_covers_is_a_409(
    small_settings: Settings, small_bundle: Bundle
) -> None:
    old_tables = dataclasses.replace(small_bundle.scorer, cover=None)  # as trees.npz format 1
    bundle = dataclasses.replace(small_bundle, scorer=old_tables)
    with TestClient(create_app(small_settings, bundle)) as c:
        body = assert_problem(c.post("/predict?explain=true", json=[EXAMPLE_ROW]), 409)
        assert "census train" in body["detail"]
        assert c.post("/predict", json=[EXAMPLE_ROW]).status_code == 200


def test_explain_must_be_a_boolean(client: TestClient) -> None:
    body = assert_problem(client.post("/predict?explain=maybe", json=[EXAMPLE_ROW]), 422)
    assert [error["field"] for error in body["errors"]] == ["query.explain"]


def test_an_unknown_query_parameter_is_a_422_not_ignored(client: TestClient) -> None:
    response = client.post("/predict?threshold=0.1&explain=false", json=[EXAMPLE_ROW])
    body = assert_problem(response, 422)
    assert [error["field"] for error in body["errors"]] == ["query.threshold"]
    assert "only `explain`" in body["errors"][0]["message"]


def test_many_unknown_query_parameters_are_counted_and_the_first_100_listed(
    client: TestClient,
) -> None:
    query = "&".join(f"p{i}=1" for i in range(1_000))
    body = assert_problem(client.post(f"/predict?{query}", json=[EXAMPLE_ROW]), 422)
    assert len(body["errors"]) == 100
    assert "1000 problem(s) (the first 100 listed)" in body["detail"]


@pytest.mark.parametrize(("given", "explained"), [("1", True), ("yes", True), ("false", False)])
def test_explain_reads_the_spellings_of_a_boolean(
    client: TestClient, given: str, explained: bool
) -> None:
    body = client.post(f"/predict?explain={given}", json=[EXAMPLE_ROW]).json()
    assert ("contributions" in body) is explained
