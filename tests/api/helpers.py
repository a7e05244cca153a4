"""Helpers the API tests share (not a test module)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2 as httpx

from census_salary.api.models import ProblemDocument
from census_salary.config import Settings

KEY = "k3y-for-tests"
# The limits of the `client` fixture's app.
CLIENT_MAX_ROWS = 50
CLIENT_MAX_BODY_BYTES = 20_000
_PAGE_CONFIG = re.compile(r'<script id="census-config" type="application/json">(.*?)</script>')


def settings_with(settings: Settings, **serve: object) -> Settings:
    """`settings` with some `[serve]` values changed."""
    return settings.model_copy(update={"serve": settings.serve.model_copy(update=serve)})


def settings_without_a_model(settings: Settings, empty_folder: Path) -> Settings:
    """`settings` pointing at an artifacts folder that holds no bundle."""
    artifacts = settings.artifacts.model_copy(update={"dir": empty_folder})
    return settings.model_copy(update={"artifacts": artifacts})


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert `response` is an RFC 9457 problem document with `status`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status, body
    ProblemDocument.model_validate(body)  # the schema the OpenAPI document gives errors
    return body


def page_config(html: str) -> dict[str, Any]:
    """The configuration the server embeds in the form page for `web/app.js`."""
    match = _PAGE_CONFIG.search(html)
    assert match, "the page has no census-config script"
    return json.loads(match.group(1))
