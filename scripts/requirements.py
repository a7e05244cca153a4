"""Write requirements.txt: the pinned runtime environment Heroku's Python buildpack installs.

The buildpack reads requirements.txt, not pyproject.toml. This script resolves
pyproject.toml's [project].dependencies the way a fresh `pip install` would today
(`pip install --dry-run --ignore-installed --report`, so nothing already installed here
counts and nothing is installed), pins every package it would install with `==`, and ends
with `.` so the project itself is installed on top.

Environment markers are evaluated for the interpreter that runs pip, so run it with the
Python of .python-version, on Linux like Heroku's dynos:

    python scripts/requirements.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PYTHON_VERSION = ROOT / ".python-version"
OUTPUT = ROOT / "requirements.txt"

HEADER = """\
# Runtime dependencies of pyproject.toml, pinned for Python {python} on Linux. Heroku's
# Python buildpack installs this file (it does not read pyproject.toml). Do not edit it by
# hand: after changing [project].dependencies, regenerate it with
#     python scripts/requirements.py
# (run with Python {python} on Linux) and commit both files.
"""


def canonical_name(name: str) -> str:
    """The PEP 503 form of a distribution name: lowercase, runs of -_. as one hyphen."""
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_dependencies(pyproject: Path) -> list[str]:
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]


def resolve(requirements: list[str]) -> dict[str, str]:
    """{name: version} of every package a fresh install of `requirements` would get now."""
    command = [
        *(sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"),
        *("--quiet", "--disable-pip-version-check", "--report", "-"),
        *requirements,
    ]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(completed.stdout)
    return {
        canonical_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report["install"]
    }


def render(pins: dict[str, str], python: str) -> str:
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    return HEADER.format(python=python) + "\n".join([*lines, "."]) + "\n"


def main() -> None:
    python = PYTHON_VERSION.read_text(encoding="utf-8").strip()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != python or not sys.platform.startswith("linux"):
        sys.exit(
            f"Run this with Python {python} on Linux (the deploy target), not Python "
            f"{running} on {sys.platform}: pip resolves environment markers for its own "
            "interpreter."
        )
    try:
        pins = resolve(runtime_dependencies(PYPROJECT))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"pip could not resolve the dependencies:\n{exc.stderr}")
    OUTPUT.write_text(render(pins, python), encoding="utf-8")
    sys.stdout.write(f"Wrote {OUTPUT.name}: {len(pins)} pinned packages and the project.\n")


if __name__ == "__main__":
    main()
