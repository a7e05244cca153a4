"""/docs and /redoc: pages of the app's own files, with no inline script."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from census_salary.api.middleware import CONTENT_SECURITY_POLICY
from census_salary.api.routes.docs import ASSETS

ASSET_TYPES = {
    "swagger-ui-bundle.js": "javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "javascript",
    "favicon.png": "image/png",
}


def linked(html: str) -> list[str]:
    """Every address the page loads a script, style or icon from."""
    return re.findall(r'<(?:script|link)[^>]*?(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_only_the_apps_own_files(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200, response.text
    sources = linked(response.text)
    assert sources, response.text
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), (
        sources
    )
    for source in sources:
        assert client.get(source).status_code == 200, source


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_have_no_inline_script_or_style(client: TestClient, path: str) -> None:
    html = client.get(path).text

    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), html
    assert "<style" not in html, html
    assert "style=" not in html, html


@pytest.mark.parametrize("name", ASSET_TYPES)
def test_docs_assets_are_served_from_the_package(client: TestClient, name: str) -> None:
    response = client.get(f"{ASSETS}/{name}")

    assert response.status_code == 200, name
    assert ASSET_TYPES[name] in response.headers["content-type"], response.headers
    assert len(response.content) > 1000, name


@pytest.mark.parametrize("path", ["/static/app.js", f"{ASSETS}/swagger-ui.css"])
@pytest.mark.parametrize("given", ["bytes=abc", "bytes=5-1", "bytes=999999999-", "items=0-1"])
def test_static_files_are_sent_whole_whatever_range_is_asked(
    client: TestClient, path: str, given: str
) -> None:
    whole = client.get(path).content
    response = client.get(path, headers={"Range": given, "If-Range": "x"})
    assert response.status_code == 200, response.text
    assert response.content == whole


def test_swagger_ui_reads_the_apps_schema(client: TestClient) -> None:
    html = client.get("/docs").text

    assert 'data-openapi-url="/openapi.json"' in html, html
    assert '<script src="/static/docs.js">' in html, html


def test_swagger_ui_keeps_the_strict_policy(client: TestClient) -> None:
    assert client.get("/docs").headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_redoc_loosens_only_styles_and_workers(client: TestClient) -> None:
    policy = client.get("/redoc").headers["content-security-policy"]

    assert policy.startswith(CONTENT_SECURITY_POLICY), policy
    assert policy.removeprefix(CONTENT_SECURITY_POLICY) == (
        "; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:"
    ), policy


def test_docs_pages_stay_out_of_the_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert not {"/docs", "/redoc"} & set(paths), sorted(paths)
