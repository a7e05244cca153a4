"""The interactive documentation, /docs (Swagger UI) and /redoc (ReDoc), from the app's own files.

Their scripts and styles come from the fastapi-offline package, served under `ASSETS`,
never from a CDN: the docs work offline and under the app's Content-Security-Policy.
FastAPI's own pages start Swagger UI with an inline script, which that policy refuses, so
these pages start it from `web/docs.js` instead.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from census_salary.api.middleware import CONTENT_SECURITY_POLICY

ASSETS = "/docs-assets"
# ReDoc styles its page with <style> elements it writes at run time and searches in a web
# worker it makes from a blob: URL; no file of ours is involved in either.
REDOC_POLICY = (
    f"{CONTENT_SECURITY_POLICY}; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:"
)

router = APIRouter(include_in_schema=False)


class WholeFiles(StaticFiles):
    """Static files, always whole: `Range` and `If-Range` are ignored, as RFC 9110 lets a
    server do, so a malformed or unknown range gets the file (a 200), never Starlette's
    plain-text 400 or an empty 416. The files are small; nothing needs a part of one."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(n, v) for n, v in scope["headers"] if n not in (b"range", b"if-range")]
            scope = {**scope, "headers": headers}
        await super().__call__(scope, receive, send)


def assets() -> StaticFiles:
    """Swagger UI's and ReDoc's files as the fastapi-offline package ships them."""
    return WholeFiles(packages=[("fastapi_offline", "static")])


def _page(title: str, head: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n"
        f'<link rel="icon" href="{ASSETS}/favicon.png">\n{head}</head>\n<body>\n{body}</body>\n'
        "</html>\n"
    )


def _openapi_url(request: Request) -> str:
    return escape(request.scope.get("root_path", "") + (request.app.openapi_url or ""))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over the app's OpenAPI schema, with working examples."""
    return HTMLResponse(
        _page(
            f"{request.app.title} - Swagger UI",
            f'<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">\n',
            f'<div id="swagger-ui" data-openapi-url="{_openapi_url(request)}"></div>\n'
            f'<script src="{ASSETS}/swagger-ui-bundle.js"></script>\n'
            '<script src="/static/docs.js"></script>\n',
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc over the app's OpenAPI schema: the same operations, for reading."""
    return HTMLResponse(
        _page(
            f"{request.app.title} - ReDoc",
            '<link rel="stylesheet" href="/static/redoc.css">\n',
            f'<redoc spec-url="{_openapi_url(request)}"></redoc>\n'
            f'<script src="{ASSETS}/redoc.standalone.js"></script>\n',
        ),
        headers={"Content-Security-Policy": REDOC_POLICY},
    )
