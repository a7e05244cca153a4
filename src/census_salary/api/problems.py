"""Errors as RFC 9457 problem documents (`application/problem+json`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
# A 422 lists this many problems at most (10,000 empty rows hold 140,000): the answer to a
# small bad request stays small, and building it does not hold up the server.
MAX_ERRORS = 100


def first_listed(count: int) -> str:
    """What a detail adds when `count` problems are more than its errors list."""
    return f" (the first {MAX_ERRORS} listed)" if count > MAX_ERRORS else ""


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


def problem_response(request: Request | None, problem: Problem) -> JSONResponse:
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


def add_problem_handlers(app: FastAPI) -> None:
    """Every error the app raises leaves it as a problem document."""

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(
            request, Problem(exc.status_code, title, detail, headers=exc.headers)
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        errors = [
            {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in found[:MAX_ERRORS]
        ]
        detail = f"The request is not valid: {len(found)} problem(s){first_listed(len(found))}."
        return problem_response(request, Problem(422, "Unprocessable Content", detail, errors))
