"""Writing a bundle's files the way a damaged or hand-edited bundle would have them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from census_salary.bundle import METADATA_FILE
from census_salary.drift import PROFILE_FILE


def save_metadata(folder: Path, meta: dict[str, Any]) -> None:
    """Replace a bundle's metadata.json, leaving its recorded hashes as they are."""
    (folder / METADATA_FILE).write_text(json.dumps(meta))


def make_pre_profile(folder: Path) -> None:
    """Make a bundle as trained before drift profiles: metadata schema 2, no profile.json."""
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta["schema_version"] = 2
    del meta["profile_sha256"]
    (folder / PROFILE_FILE).unlink()
    save_metadata(folder, meta)


def copy_bundle(folder: Path, target: Path) -> Path:
    """A copy of the bundle in `folder` as the version `target` is named after (its
    metadata says so; the recorded hashes stay), so it loads as a bundle of its own."""
    shutil.copytree(folder, target)
    meta = json.loads((target / METADATA_FILE).read_text())
    meta["version"] = target.name
    save_metadata(target, meta)
    return target
