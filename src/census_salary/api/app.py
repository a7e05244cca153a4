"""The app factory: settings in, a FastAPI app out; the lifespan loads the model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from census_salary import __version__
from census_salary.api.middleware import RequestContext
from census_salary.api.models import PredictRequest
from census_salary.api.problems import add_problem_handlers
from census_salary.api.routes import docs, model, operations, page
from census_salary.bundle import Bundle, load_bundle
from census_salary.config import Settings
from census_salary.errors import CensusError

logger = logging.getLogger(__name__)


def create_app(settings: Settings, bundle: Bundle | None = None) -> FastAPI:
    """The API over the bundle in settings' artifacts folder (or the `bundle` given)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bundle, app.state.not_ready = bundle, "loading"
        if app.state.bundle is None:
            try:
                app.state.bundle = load_bundle(settings.artifacts_dir, settings.model.scorer)
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
        # Served by routes/docs.py from the app's own files, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    key = settings.serve.api_key
    app.state.api_key = key.get_secret_value() if key is not None else None
    app.state.bundle, app.state.not_ready = bundle, "starting"
    app.state.max_rows = settings.serve.max_rows
    app.add_middleware(
        RequestContext,
        max_body_bytes=settings.serve.max_body_bytes,
        body_timeout=settings.serve.body_timeout,
    )
    add_problem_handlers(app)
    for router in (page.router, docs.router, operations.router, model.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(files("census_salary") / "web")), "static")
    app.mount(docs.ASSETS, docs.assets(), "docs-assets")
    app.openapi = lambda: _openapi(app, settings.serve.max_rows)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, max_rows: int) -> dict[str, Any]:
    """FastAPI's schema, plus the row models `/predict` reads itself, with the row limits."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
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
    app.openapi_schema = schema
    return schema
