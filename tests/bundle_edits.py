"""Writing a bundle's files the way a damaged or hand-edited bundle would have them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from census_salary.bundle import METADATA_FILE


def save_metadata(folder: Path, meta: dict[str, Any]) -> None:
    """Replace a bundle's metadata.json, leaving its recorded hashes as they are."""
    (folder / METADATA_FILE).write_text(json.dumps(meta))
