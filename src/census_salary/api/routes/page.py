"""The form page: one HTML file with the model's vocabularies and the column limits."""

from __future__ import annotations

import functools
import json
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from census_salary.bundle import Bundle
from census_salary.contract import EXAMPLE_ROW
from census_salary.row_schema import contract_document

router = APIRouter()


@functools.cache
def _template() -> str:
    return (files("census_salary") / "web" / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The form, with what it needs from the server embedded (the same as /metadata's)."""
    bundle: Bundle | None = request.app.state.bundle
    config = {
        "auth_required": request.app.state.api_key is not None,
        "example": EXAMPLE_ROW,
        "columns": contract_document(),
        "vocabularies": bundle.metadata.features.categorical if bundle else {},
        "ranges": bundle.metadata.features.numerical if bundle else {},
        "threshold": bundle.threshold if bundle else None,
        "model_version": bundle.version if bundle else None,
    }
    # </script> cannot occur in JSON made safe this way, so the data cannot end the tag.
    data = json.dumps(config).replace("<", "\\u003c")
    return HTMLResponse(_template().replace("__CENSUS_PAGE_CONFIG__", data))
