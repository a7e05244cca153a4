"""The model's routes: its metadata and scoring."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from census_salary.api.deps import BundleDep, KeyRequired, get_bundle, require_api_key, runs_itself
from census_salary.api.middleware import too_large
from census_salary.api.models import PredictionBody, PredictionResponse
from census_salary.api.problems import MAX_ERRORS, Problem, first_listed
from census_salary.api.routes.operations import sklearn_version
from census_salary.contract import CheckedColumns, check_records, decode_json
from census_salary.errors import ModelError, RowProblem
from census_salary.row_schema import SCHEMA_EXAMPLE_ROW, contract_document

router = APIRouter(tags=["model"])
# Up to this many rows are scored on the event loop (~2.3 ms here); more go to a thread.
# The hop to a thread costs ~0.9 ms for 1,000 rows (the other core's cold caches), more
# than a third of scoring them.
INLINE_ROWS = 1_000

EXPLAIN_HELP = (
    "Also give each row's contributions: per feature, its SHAP value in log-odds; with "
    "`base_value` they add up to the row's log-odds."
)
# What FastAPI would make of `explain: bool = Query(False)`, read by `_explain` instead.
_FLAG = TypeAdapter(bool)
_PREDICT_EXTRA: dict[str, Any] = {
    "parameters": [
        {
            "name": "explain",
            "in": "query",
            "required": False,
            "schema": {
                "type": "boolean",
                "description": EXPLAIN_HELP,
                "default": False,
                "title": "Explain",
            },
            "description": EXPLAIN_HELP,
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/PredictRequest"},
                        {"$ref": "#/components/schemas/RowList"},
                    ]
                },
                "examples": {
                    "inputs": {
                        "summary": "Rows under inputs",
                        "value": {"inputs": [SCHEMA_EXAMPLE_ROW]},
                    },
                    "list": {
                        "summary": "A bare list of rows",
                        "value": [SCHEMA_EXAMPLE_ROW, SCHEMA_EXAMPLE_ROW],
                    },
                },
            }
        },
    },
}


@router.get("/metadata", dependencies=[KeyRequired])
async def metadata(bundle: BundleDep) -> dict[str, Any]:
    """Model version, training time, threshold, metrics, feature schema, versions, and the
    row contract's columns with their limits (`columns`)."""
    return {**bundle.metadata.model_dump(mode="json"), "columns": contract_document()}


@router.post(
    "/predict",
    response_model=PredictionResponse,
    openapi_extra=_PREDICT_EXTRA,
    responses={
        400: {"description": "The body is not JSON, or not rows."},
        413: {"description": "More rows than the limit, or a larger body than its limit."},
        409: {"description": "`explain=true`, and the loaded model cannot be explained."},
        415: {"description": "The body is not plain JSON: another Content-Type, or compressed."},
        422: {"description": "A row is invalid; `errors` names the row index and field."},
    },
)
@runs_itself(require_api_key, get_bundle)
async def predict(request: Request) -> Response:
    """Score rows: N rows in, N predictions out, in order."""
    # The key, the model and `explain` are checked here in the order FastAPI would check
    # them as declared dependencies and query parameter, at a fraction of the cost.
    await require_api_key(request)
    bundle = await get_bundle(request)
    explain = _explain(request)
    _refuse_unread(request)
    checked = parse_rows(await request.body(), request.app.state.max_rows)
    columns = checked.columns
    if len(checked) <= INLINE_ROWS and not explain:
        probabilities = bundle.probabilities(columns)
    else:  # a big batch in a thread, so /health and small requests are not held up
        probabilities = await run_in_threadpool(bundle.probabilities, columns)
    labels = bundle.labels(probabilities)
    unknown = bundle.unknown_categories(columns)
    telemetry = request.app.state.telemetry
    if telemetry is not None:
        positive = int(np.count_nonzero(probabilities >= bundle.threshold))
        telemetry.scored(len(labels), positive, {name: len(r) for name, r in unknown.items()})
        telemetry.count_drift(columns, len(labels))
    # Encoded here, not validated against the model again by FastAPI (a third of the
    # time of a batch); the API tests and the schema fuzzing check the body's shape.
    body: PredictionBody = {
        "predictions": labels.tolist(),
        "probabilities": probabilities.tolist(),
        "warnings": bundle.warnings(columns, unknown),
        "model_version": bundle.version,
        "threshold": bundle.threshold,
        "model_lib_version": sklearn_version(),
        "timestamp": datetime.now(UTC).isoformat(),
    }
    if explain:
        from census_salary.explain import explain as explain_rows  # only when asked for

        try:
            explained = await run_in_threadpool(explain_rows, bundle, columns)
        except ModelError as exc:
            raise Problem(409, "Conflict", f"No explanations from this model: {exc}") from None
        body["contributions"] = [explained.contributions(i) for i in range(len(labels))]
        body["base_value"] = explained.base_value
    return Response(orjson.dumps(body), media_type="application/json")


def _explain(request: Request) -> bool:
    """The `explain` query parameter, read and refused as FastAPI would (a 422). Any other
    query parameter is refused too: `?threshold=0.3` must not be ignored in silence."""
    if not request.scope["query_string"]:
        return False
    query = request.query_params
    unknown = [
        {
            "type": "extra_forbidden",
            "loc": ("query", name),
            "msg": "Unknown query parameter; /predict takes only `explain`",
            "input": query[name],
        }
        for name in dict.fromkeys(query)
        if name != "explain"
    ]
    if unknown:
        raise RequestValidationError(unknown)
    given = query.get("explain")
    if given is None:
        return False
    try:
        return _FLAG.validate_python(given)
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", "explain")} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def _refuse_unread(request: Request) -> None:
    """Refuse, before a byte of it is read, a body its headers say this route cannot take:
    larger than the limit (413); compressed, not JSON or not UTF-8 (415). Called after the
    API key's check, so a 401 comes first. `curl -d` without `-H 'Content-Type:
    application/json'` sends a form's type; no type is JSON."""
    headers = request.headers
    length, limit = headers.get("content-length"), request.app.state.max_body_bytes
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    problem = _not_plain_json(headers.getlist("content-encoding"), headers.getlist("content-type"))
    if problem is not None:
        raise Problem(
            415,
            "Unsupported Media Type",
            f"The body is {problem}; send JSON rows in UTF-8, unencoded, as "
            "'Content-Type: application/json' (or with no type).",
        )


def _not_plain_json(encodings: list[str], content_types: list[str]) -> str | None:
    """What keeps a body from being plain UTF-8 JSON, by its headers; None if nothing."""
    # Content-Encoding, repeated, is one list (RFC 9110 5.3): every coding counts.
    codings = ",".join(encodings).lower().split(",")
    if any(coding.strip() not in ("", "identity") for coding in codings):
        return f"encoded as {', '.join(encodings)[:40]!r} (Content-Encoding)"
    if not content_types or not content_types[0].strip():  # (an empty one is none)
        return None
    if len(content_types) > 1:
        return "sent with two Content-Type headers"
    media_type, *parameters = (part.strip().lower() for part in content_types[0].split(";"))
    charset = next((p[8:].strip('"') for p in parameters if p.startswith("charset=")), "utf-8")
    if not (media_type == "application/json" or media_type.endswith("+json")):
        return f"sent as {media_type[:60]!r}"
    if charset not in ("utf-8", "utf8"):
        return f"in {charset[:20]!r}"
    return None


def parse_rows(body: bytes, max_rows: int) -> CheckedColumns:
    """Rows from `{"inputs": [...]}` or `[...]`, checked, or a Problem naming what is wrong."""
    try:
        payload = decode_json(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, "Bad Request", f"The body is not valid JSON: {exc}.") from None
    except (ValueError, RecursionError) as exc:  # nesting or a number beyond Python's limits
        raise Problem(400, "Bad Request", f"The body cannot be read as rows: {exc}.") from None
    if isinstance(payload, dict):  # {"inputs": [...]} and nothing else, as census predict reads
        rows = payload["inputs"] if payload.keys() == {"inputs"} else None
    else:
        rows = payload
    if not isinstance(rows, list):
        raise Problem(
            400,
            "Bad Request",
            'Expected {"inputs": [rows]} (no other keys) or a JSON array of rows, each an '
            "object of census fields.",
        )
    if not rows:
        raise Problem(422, "Unprocessable Content", "No rows given: send at least one row.")
    if len(rows) > max_rows:
        raise Problem(
            413,
            "Payload Too Large",
            f"{len(rows)} rows is more than the limit of {max_rows} per request; "
            "send them in batches.",
        )
    checked = check_records(rows)
    if checked.problems:
        raise _invalid(checked.problems)
    return checked


def _invalid(problems: list[RowProblem]) -> Problem:
    errors = [
        {"index": p.row - 1, "field": p.field or None, "message": p.message}
        for p in problems[:MAX_ERRORS]
    ]
    first = errors[0]
    where = f"row {first['index']}" + (f", field {first['field']!r}" if first["field"] else "")
    return Problem(
        422,
        "Unprocessable Content",
        f"{len(problems)} invalid value(s){first_listed(len(problems))}; the first: {where}: "
        f"{first['message']}.",
        errors,
    )
