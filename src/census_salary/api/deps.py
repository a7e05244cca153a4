"""Dependencies of the routes: the loaded bundle and the API key check."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from census_salary.api.problems import Problem
from census_salary.bundle import Bundle


# Dependencies are `async` although they wait for nothing: FastAPI runs plain `def`
# dependencies in a thread pool, which costs more than they do.
async def get_bundle(request: Request) -> Bundle:
    bundle: Bundle | None = request.app.state.bundle
    if bundle is None:
        raise Problem(
            503, "Service Unavailable", f"The model is not loaded: {request.app.state.not_ready}"
        )
    return bundle


async def require_api_key(request: Request) -> None:
    """When an API key is configured, demand it as X-API-Key or else Authorization: Bearer,
    given once."""
    expected: str | None = request.app.state.api_key
    if expected is None:
        return
    headers = request.headers
    keys = headers.getlist("x-api-key") or [
        value[7:].strip()
        for value in headers.getlist("authorization")
        if value.lower().startswith("bearer ")
    ]
    problem = ""
    if len(keys) > 1:  # which one counts would be a guess: none does
        problem = " Send it once: this request gives it more than once."
    elif keys and not hmac.compare_digest(keys[0].encode(), expected.encode()):
        problem = " The key given is wrong."
    if problem or not keys:
        raise Problem(
            401,
            "Unauthorized",
            "This server needs an API key: send it as the X-API-Key header or as "
            "'Authorization: Bearer <key>'." + problem,
            headers={"WWW-Authenticate": "Bearer"},
        )


BundleDep = Annotated[Bundle, Depends(get_bundle)]
KeyRequired = Depends(require_api_key)

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def runs_itself(*dependencies: Callable[..., Any]) -> Callable[[Endpoint], Endpoint]:
    """Mark a route that awaits these dependencies itself rather than declaring them.

    For the one hot route, `/predict`: FastAPI's solving of declared dependencies costs
    more per request than the dependencies do. The app's OpenAPI schema reads the mark
    (`RUNS_ITSELF`), so the route is documented as if they were declared (401, 503).
    """

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, RUNS_ITSELF, frozenset(dependencies))
        return endpoint

    return mark


RUNS_ITSELF = "census_runs_itself"
