"""Liveness and readiness, for load balancers and uptime monitors."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request

from census_salary import __version__
from census_salary.api.deps import BundleDep
from census_salary.api.models import HealthResponse, ReadyResponse
from census_salary.bundle import Bundle

API_VERSION = "1"
router = APIRouter(tags=["operations"])


@functools.cache
def sklearn_version() -> str:
    """The scikit-learn the classic clients expect to see, without importing it."""
    from importlib.metadata import version

    return version("scikit-learn")


@router.get("/health")
async def health(request: Request) -> HealthResponse:
    """Liveness: cheap, never touches the model."""
    bundle: Bundle | None = request.app.state.bundle
    return HealthResponse(
        model_version=bundle.version if bundle else None,
        status="ok",
        name="census-salary",
        api_version=API_VERSION,
        package_version=__version__,
        model_lib_version=sklearn_version(),
    )


@router.get(
    "/ready",
    responses={503: {"description": "The model is not loaded (yet), with the reason."}},
)
async def ready(bundle: BundleDep) -> ReadyResponse:
    """Readiness: 200 once the model is loaded, its hash verified and its self-test passed."""
    return ReadyResponse(status="ready", model_version=bundle.version)
