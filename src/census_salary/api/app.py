"""The app factory: settings in, a FastAPI app out; the lifespan loads the model."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from census_salary import __version__
from census_salary.api.deps import RUNS_ITSELF, get_bundle, require_api_key
from census_salary.api.middleware import RequestContext
from census_salary.api.models import PredictRequest, ProblemDocument
from census_salary.api.problems import PROBLEM_JSON, add_problem_handlers
from census_salary.api.routes import docs, drift, metrics, model, operations, page
from census_salary.api.telemetry import Telemetry
from census_salary.bundle import Bundle, load_bundle
from census_salary.config import Settings
from census_salary.errors import CensusError

logger = logging.getLogger(__name__)
# The model's routes first: a request is matched against the routes in this order, and
# /predict is the one that is called the most (~40 us less a request than when last).
ROUTERS = (model.router, operations.router, page.router, docs.router)


def create_app(
    settings: Settings,
    bundle: Bundle | None = None,
    on_started: Callable[[], None] | None = None,
) -> FastAPI:
    """The API over the bundle in settings' artifacts folder (or the `bundle` given).

    `on_started` is called once the lifespan has loaded the model, before the first
    request: the server process tunes its garbage collector there (`collector.settle`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bundle, app.state.not_ready = bundle, "loading"
        if app.state.bundle is None:
            try:
                app.state.bundle = load_bundle(settings.artifacts_dir, settings.model.scorer)
            except CensusError as exc:
                logger.error("model not loaded: %s", exc)
                # Clients get no paths or file names: the log has the whole reason.
                app.state.not_ready = (
                    "none was found or it failed its checks; the server's log says why "
                    "(`census train` or `census use VERSION` there makes one current)"
                )
        if app.state.bundle is not None and telemetry is not None:
            loaded = app.state.bundle
            telemetry.model_loaded(loaded.version, loaded.threshold, loaded.profile)
        if app.state.api_key is None:
            logger.warning("no API key set (CENSUS_API_KEY): /predict and /metadata are open")
        if on_started is not None:
            on_started()
        if telemetry is None:
            yield
            return
        flushing = asyncio.create_task(telemetry.flush_drift_every())
        try:
            yield
        finally:
            flushing.cancel()
            telemetry.flush_drift()

    app = FastAPI(
        title="Census income classifier",
        version=__version__,
        description="Predicts whether a person's income is above $50K from 14 census "
        "attributes (UCI Adult data). Errors are RFC 9457 problem documents.",
        lifespan=lifespan,
        # `/predict/` is a 404, not a redirect to an address built from the Host header.
        redirect_slashes=False,
        # Served by routes/docs.py from the app's own files, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    key = settings.serve.api_key
    app.state.api_key = key.get_secret_value() if key is not None else None
    app.state.bundle, app.state.not_ready = bundle, "starting"
    app.state.max_rows = settings.serve.max_rows
    app.state.max_body_bytes = settings.serve.max_body_bytes
    # With metrics off nothing is counted at all, so "off" is also the baseline of their cost.
    telemetry = Telemetry() if settings.serve.metrics != "off" else None
    app.state.telemetry = telemetry
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.serve.max_body_bytes,
        body_timeout=settings.serve.body_timeout,
        telemetry=telemetry,
    )
    add_problem_handlers(app)
    for router in _routers(settings):
        app.include_router(router)
    app.mount("/static", docs.WholeFiles(directory=str(files("census_salary") / "web")), "static")
    app.mount(docs.ASSETS, docs.assets(), "docs-assets")
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's schema, plus what the app enforces outside the routes' signatures: the
    row models `/predict` reads itself with the row limits, the body limits of the
    middleware, the API key, and the problem document every error is."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    max_rows = settings.serve.max_rows
    request_schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(request_schema.pop("$defs", {}))
    rows = request_schema["properties"]["inputs"]
    rows["maxItems"] = max_rows
    components["PredictRequest"] = request_schema
    components["RowList"] = {
        "type": "array",
        "items": rows["items"],
        "minItems": 1,
        "maxItems": max_rows,
        "description": "A bare list of rows.",
    }
    components["Problem"] = ProblemDocument.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.update(components["Problem"].pop("$defs", {}))
    for unused in ("HTTPValidationError", "ValidationError"):  # errors are problems here
        components.pop(unused, None)
    keyed = settings.serve.api_key is not None
    if keyed:
        schema["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        }
    for router, route in _routes(settings):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        calls = (
            _calls(route.dependant)
            | {d.dependency for d in router.dependencies}
            | getattr(route.endpoint, RUNS_ITSELF, frozenset())
        )
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            responses = operation["responses"]
            if keyed and require_api_key in calls:
                operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
                responses["401"] = {"description": "The API key is missing or wrong."}
            if get_bundle in calls:
                responses.setdefault("503", {"description": "The model is not loaded."})
            if "requestBody" in operation:
                _document_body_limits(operation, settings)
            for status, response in responses.items():
                if int(status) >= 400:
                    response["content"] = {
                        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
    app.openapi_schema = schema
    return schema


def _routers(settings: Settings) -> tuple[APIRouter, ...]:
    """The app's routers; `/metrics` and `/drift` open, behind the API key, or absent
    (`[serve] metrics`)."""
    watched = {
        "open": (metrics.router, drift.router),
        "key": (metrics.keyed_router, drift.keyed_router),
        "off": (),
    }
    return (*ROUTERS, *watched[settings.serve.metrics])


def _routes(settings: Settings) -> Iterator[tuple[APIRouter, BaseRoute]]:
    for router in _routers(settings):
        for route in router.routes:
            yield router, route


def _calls(dependant: Dependant) -> set[Any]:
    """Every dependency a route runs, directly or through another."""
    found: set[Any] = set()
    for sub in dependant.dependencies:
        found |= {sub.call, *_calls(sub)}
    return found


def _document_body_limits(operation: dict[str, Any], settings: Settings) -> None:
    body, serve = operation["requestBody"], settings.serve
    body["description"] = (
        f"At most {serve.max_body_bytes:,} bytes, arriving within {serve.body_timeout:g} s."
    )
    body["x-max-body-bytes"] = serve.max_body_bytes
    responses = operation["responses"]
    responses.setdefault("408", {"description": "The body did not arrive in time."})
    responses.setdefault("413", {"description": "The body is larger than its limit."})
