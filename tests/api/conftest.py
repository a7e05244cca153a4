"""Apps over the small model, through TestClient: open, keyed, and without a model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.helpers import (
    CLIENT_MAX_BODY_BYTES,
    CLIENT_MAX_ROWS,
    KEY,
    settings_with,
    settings_without_a_model,
)
from census_salary.api import create_app
from census_salary.bundle import Bundle
from census_salary.config import Settings


@pytest.fixture
def client(small_settings: Settings, small_bundle: Bundle) -> Iterator[TestClient]:
    """An open app over the small model, with small limits: 50 rows, 20,000 bytes."""
    settings = settings_with(
        small_settings, max_rows=CLIENT_MAX_ROWS, max_body_bytes=CLIENT_MAX_BODY_BYTES
    )
    with TestClient(create_app(settings, small_bundle)) as c:
        yield c


@pytest.fixture
def keyed(small_settings: Settings, small_bundle: Bundle) -> Iterator[TestClient]:
    """An app over the small model that needs the API key `KEY`."""
    settings = settings_with(small_settings, api_key=SecretStr(KEY))
    with TestClient(create_app(settings, small_bundle)) as c:
        yield c


@pytest.fixture
def unloaded(small_settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    """An app whose artifacts folder holds no model, so its lifespan cannot load one."""
    with TestClient(create_app(settings_without_a_model(small_settings, tmp_path))) as c:
        yield c
