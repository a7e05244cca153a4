"""`GET /drift`: how far the rows served have moved from the training data (see `drift`).

Counted by `api/telemetry.py` as `/predict` scores rows, every worker's added up, since
the server started. Open or behind the API key as `/metrics` is (`[serve] metrics`);
absent with `"off"`, when nothing is counted.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from census_salary.api.deps import BundleDep, KeyRequired
from census_salary.api.problems import Problem
from census_salary.drift import DriftReport

router = APIRouter(tags=["operations"])
keyed_router = APIRouter(tags=["operations"], dependencies=[KeyRequired])


async def drift(request: Request, bundle: BundleDep) -> DriftReport:
    """Per feature, the population stability index (PSI) of the rows scored since the
    server started against the training split, with each bin's shares (bins come from
    the training data: no value sent is ever shown); and the share predicted >50K beside
    training's. PSI under 0.1 is stable, 0.1-0.25 a moderate shift, over 0.25 a major one."""
    report = request.app.state.telemetry.drift()
    if report is None:
        raise Problem(
            409,
            "Conflict",
            f"Model {bundle.version} has no drift profile (it was trained before census "
            "stored one), so there is nothing to compare with. Retrain with `census train`.",
        )
    return report


_RESPONSES = {409: {"description": "The loaded model has no drift profile to compare with."}}
for _router in (router, keyed_router):
    _router.add_api_route(
        "/drift", drift, methods=["GET"], response_model=DriftReport, responses=_RESPONSES
    )
