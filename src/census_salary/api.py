"""The HTTP API: `create_app(settings)` builds it (`server.run_server` runs it).

Only this module imports fastapi. Every error is an RFC 9457 problem document
(`application/problem+json`); bad input is a 4xx, never a 5xx.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from census_salary import __version__
from census_salary.bundle import Bundle, RowScorer, load_for_serving
from census_salary.config import Settings
from census_salary.errors import CensusError
from census_salary.schema import EXAMPLE_ROW, CensusRow, labels_at

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("census_salary.access")

API_VERSION = "1"
PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ROWS = TypeAdapter(list[CensusRow])
# Up to this many rows are scored on the event loop (under ~5 ms); more go to a thread.
INLINE_ROWS = 200


class PredictRequest(BaseModel):
    """Rows to score. A bare JSON array of rows is accepted too."""

    inputs: list[CensusRow] = Field(
        description="Census rows; field names with hyphens or underscores."
    )

    model_config = {"json_schema_extra": {"examples": [{"inputs": [EXAMPLE_ROW]}]}}


class PredictionResponse(BaseModel):
    """Predictions in input order: N rows in, N out, duplicates included."""

    predictions: list[str] = Field(description="Predicted label per row: '>50K' or '<=50K'.")
    probabilities: list[float] = Field(description="P(>50K) per row.")
    warnings: list[list[str]] = Field(
        description="Per row: fields whose value the model never saw (scored as missing)."
    )
    model_version: str
    threshold: float
    model_lib_version: str
    timestamp: str


class HealthResponse(BaseModel):
    status: str
    name: str
    api_version: str
    package_version: str
    model_lib_version: str
    model_version: str | None = Field(description="The loaded model's version, if any.")


class ReadyResponse(BaseModel):
    status: str
    model_version: str


class Problem(Exception):
    """An HTTP error in problem-details form."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers


def _problem_response(request: Request | None, problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        body["request_id"] = getattr(request.state, "request_id", None)
    if problem.errors is not None:
        body["errors"] = problem.errors
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


# --- middleware --------------------------------------------------------------------------


class RequestContext:
    """Request id (echoed or made), body-size limit and one access-log line per request.

    Pure ASGI, so the body limit holds for chunked uploads without Content-Length too.
    The body itself is never logged.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get(REQUEST_ID_HEADER.lower(), "")
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        limit = self.max_body_bytes
        too_large = Problem(
            413,
            "Payload Too Large",
            f"The request body is larger than the limit of {limit} bytes; send fewer rows "
            "per request.",
        )

        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        async def guarded() -> None:
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise too_large
            await self.app(scope, limited_receive, send_with_id)

        try:
            await guarded()
        except Problem as problem:
            await _problem_response(Request(scope), problem)(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by Starlette's outer error middleware, so that the 500 too
            # carries the request id; the details go to the log, never to the client.
            logger.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if responded:
                raise
            crash = Problem(500, "Internal Server Error", "Something went wrong on our side.")
            await _problem_response(Request(scope), crash)(scope, receive, send_with_id)
        finally:
            access_logger.info(
                "method=%s path=%s status=%s duration_ms=%.1f request_id=%s",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )


# --- dependencies ------------------------------------------------------------------------


# Dependencies are `async` although they wait for nothing: FastAPI runs plain `def`
# dependencies in a thread pool, which costs more than they do.
async def get_bundle(request: Request) -> Bundle[RowScorer]:
    bundle: Bundle[RowScorer] | None = request.app.state.bundle
    if bundle is None:
        raise Problem(
            503, "Service Unavailable", f"The model is not loaded: {request.app.state.not_ready}"
        )
    return bundle


async def require_api_key(request: Request) -> None:
    """When an API key is configured, demand it as X-API-Key or Authorization: Bearer."""
    expected: str | None = request.app.state.api_key
    if expected is None:
        return
    given = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if given is None and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Problem(
            401,
            "Unauthorized",
            "This server needs an API key: send it as the X-API-Key header or as "
            "'Authorization: Bearer <key>'."
            + (" The key given is wrong." if given is not None else ""),
            headers={"WWW-Authenticate": "Bearer"},
        )


BundleDep = Annotated[Bundle[RowScorer], Depends(get_bundle)]


# --- the app -----------------------------------------------------------------------------


def create_app(settings: Settings, bundle: Bundle[RowScorer] | None = None) -> FastAPI:
    """The API over the bundle in settings' artifacts folder (or the `bundle` given)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bundle, app.state.not_ready = bundle, "loading"
        if app.state.bundle is None:
            try:
                app.state.bundle = load_for_serving(
                    settings.artifacts_dir, use_trees=settings.serve.scorer == "trees"
                )
            except CensusError as exc:
                logger.error("model not loaded: %s", exc)
                app.state.not_ready = str(exc)
        if app.state.api_key is None:
            logger.warning("no API key set (CENSUS_API_KEY): /predict and /metadata are open")
        yield

    app = FastAPI(
        title="Census income classifier",
        version=__version__,
        description="Predicts whether a person's income is above $50K from 14 census "
        "attributes (UCI Adult data). Errors are RFC 9457 problem documents.",
        lifespan=lifespan,
    )
    key = settings.serve.api_key
    app.state.api_key = key.get_secret_value() if key is not None else None
    app.state.bundle, app.state.not_ready = bundle, "starting"
    app.state.max_rows = settings.serve.max_rows
    app.add_middleware(RequestContext, max_body_bytes=settings.serve.max_body_bytes)
    _add_error_handlers(app)
    _add_routes(app)
    app.mount("/static", StaticFiles(directory=str(files("census_salary") / "web")), "static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return _problem_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) else title
        return _problem_response(
            request, Problem(exc.status_code, title, detail, headers=exc.headers)
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()
        ]
        return _problem_response(
            request, Problem(422, "Unprocessable Content", "The request is not valid.", errors)
        )


def _add_routes(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(_render_page(request.app))

    @app.get("/health", tags=["operations"])
    async def health(request: Request) -> HealthResponse:
        """Liveness: cheap, never touches the model."""
        bundle: Bundle[RowScorer] | None = request.app.state.bundle
        return HealthResponse(
            model_version=bundle.metadata.version if bundle else None,
            status="ok",
            name="census-salary",
            api_version=API_VERSION,
            package_version=__version__,
            model_lib_version=_sklearn_version(),
        )

    @app.get(
        "/ready",
        tags=["operations"],
        responses={503: {"description": "The model is not loaded (yet), with the reason."}},
    )
    async def ready(bundle: BundleDep) -> ReadyResponse:
        """Readiness: 200 once the model is loaded, its hash verified and its self-test passed."""
        return ReadyResponse(status="ready", model_version=bundle.metadata.version)

    @app.get("/metadata", tags=["model"], dependencies=[Depends(require_api_key)])
    async def metadata(bundle: BundleDep) -> dict[str, Any]:
        """Model version, training time, threshold, metrics, feature schema, versions."""
        return bundle.metadata.model_dump(mode="json")

    @app.post(
        "/predict",
        tags=["model"],
        dependencies=[Depends(require_api_key)],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/PredictRequest"},
                                {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/CensusRow"},
                                },
                            ]
                        },
                        "examples": {
                            "inputs": {
                                "summary": "Rows under inputs",
                                "value": {"inputs": [EXAMPLE_ROW]},
                            },
                            "list": {
                                "summary": "A bare list of rows",
                                "value": [EXAMPLE_ROW, EXAMPLE_ROW],
                            },
                        },
                    }
                },
            }
        },
        responses={
            400: {"description": "The body is not JSON, or not rows."},
            401: {"description": "An API key is required and was missing or wrong."},
            413: {"description": "Too many rows or too large a body."},
            422: {"description": "A row is invalid; `errors` names the row index and field."},
        },
    )
    async def predict(request: Request, bundle: BundleDep) -> PredictionResponse:
        """Score rows: N rows in, N predictions out, in order."""
        rows = _parse_rows(await request.body(), request.app.state.max_rows)
        scorer, threshold = bundle.scorer, bundle.metadata.threshold
        if len(rows) <= INLINE_ROWS:
            probabilities = scorer.probabilities_of_rows(rows)
        else:  # a big batch in a thread, so /health and small requests are not held up
            probabilities = await run_in_threadpool(scorer.probabilities_of_rows, rows)
        return PredictionResponse(
            predictions=labels_at(probabilities, threshold).tolist(),
            probabilities=probabilities.tolist(),
            warnings=[
                [
                    f"{name}: unknown value {getattr(row, name)!r}, scored as missing"
                    for name in scorer.unknown_categories(row)
                ]
                for row in rows
            ],
            model_version=bundle.metadata.version,
            threshold=threshold,
            model_lib_version=_sklearn_version(),
            timestamp=datetime.now(UTC).isoformat(),
        )


def _parse_rows(body: bytes, max_rows: int) -> list[CensusRow]:
    """Rows from `{"inputs": [...]}` or `[...]`, or a Problem naming what is wrong."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, "Bad Request", f"The body is not valid JSON: {exc}.") from None
    rows = payload.get("inputs") if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise Problem(
            400,
            "Bad Request",
            'Expected {"inputs": [rows]} or a JSON array of rows, each an object of census fields.',
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
    try:
        return _ROWS.validate_python(rows)
    except ValidationError as exc:
        errors = [_row_error(e) for e in exc.errors(include_url=False, include_input=False)]
        raise Problem(
            422,
            "Unprocessable Content",
            f"{len(errors)} invalid value(s); the first: row {errors[0]['index']}, "
            f"field {errors[0]['field']!r}: {errors[0]['message']}.",
            errors,
        ) from None


def _row_error(error: Any) -> dict[str, Any]:
    loc = error["loc"]
    index = loc[0] if loc and isinstance(loc[0], int) else None
    field = ".".join(str(part) for part in loc[1:]) or None
    message = error["msg"]
    if error["type"] == "missing":
        message = "Field required"
    elif field is None:
        message = f"{message}; each row must be an object of census fields"
    return {"index": index, "field": field, "message": message}


@functools.cache
def _sklearn_version() -> str:
    from importlib.metadata import version

    return version("scikit-learn")


@functools.cache
def _page_template() -> str:
    return (files("census_salary") / "web" / "index.html").read_text(encoding="utf-8")


def _render_page(app: FastAPI) -> str:
    """The form page, with the model's vocabularies and whether a key is needed."""
    bundle: Bundle[RowScorer] | None = app.state.bundle
    config = {
        "auth_required": app.state.api_key is not None,
        "example": EXAMPLE_ROW,
        "vocabularies": bundle.metadata.features.categorical if bundle else {},
        "ranges": bundle.metadata.features.numerical if bundle else {},
        "threshold": bundle.metadata.threshold if bundle else None,
        "model_version": bundle.metadata.version if bundle else None,
    }
    template = _page_template()
    # </script> cannot occur in JSON made safe this way, so the data cannot end the tag.
    data = json.dumps(config).replace("<", "\\u003c")
    return template.replace("__CENSUS_PAGE_CONFIG__", data)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the row models `/predict` reads by hand."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    request_schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(request_schema.pop("$defs", {}))
    components["PredictRequest"] = request_schema
    app.openapi_schema = schema
    return schema
