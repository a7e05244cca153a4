"""`GET /metrics`: the server's Prometheus metrics (see `api/telemetry.py`).

Two routers with the one route, for `[serve] metrics = "open"` (like `/health`) or
`"key"` (behind the API key, like `/predict`); with `"off"` the app has neither.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from census_salary.api.deps import KeyRequired
from census_salary.api.telemetry import CONTENT_TYPE

router = APIRouter(tags=["operations"])
keyed_router = APIRouter(tags=["operations"], dependencies=[KeyRequired])


async def metrics(request: Request) -> Response:
    """Request counts and latencies, rows scored, unknown categories, the loaded model;
    in the Prometheus text format, every worker's added up."""
    return Response(request.app.state.telemetry.render(), media_type=CONTENT_TYPE)


_ROUTE = {
    "response_class": Response,
    "responses": {200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
}
for _router in (router, keyed_router):
    _router.add_api_route("/metrics", metrics, methods=["GET"], **_ROUTE)
