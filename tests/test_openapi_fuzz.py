"""Schemathesis against a real `census serve`: no 5xx, every answer as `/openapi.json` says.

The schema is read from the running server, so what is tested is what is published.
Schemathesis sends the schema's examples, then requests built to reach every bound of
every field (its coverage phase), then generated valid and invalid ones (fuzzing), and
runs all its checks on each response: not a 5xx, a documented status code, content type
and headers, a body that matches its documented schema, invalid input refused, valid
input accepted, undocumented methods refused with 405, and the key demanded where the
schema says (the server runs with an API key).

Its command line, not its pytest plugin: the plugin's `from_fixture` (needed to test a
server started by a fixture) reads a private attribute that pytest 9 removed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from census_salary.config import Settings
from live_server import LiveServer, live_server

pytestmark = pytest.mark.slow

# Cases per operation and phase; with the coverage phase's own cases this takes ~20 s.
MAX_EXAMPLES = 200
SEED = 20261128  # the same cases every run: CI stays reproducible
TIMEOUT = 300
API_KEY = "fuzzing-key"
# Schemathesis's own list of refusals of invalid input, plus 413: more rows than the
# schema's `maxItems` is invalid, and the server answers it with 413, as it documents.
CONFIG = """
[cache]
enabled = false

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]
"""


@pytest.fixture(scope="module")
def fuzzed_server(
    small_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server of its own, so its log holds only what the fuzzing did; with an API key,
    so the documented 401 and security schemes are checked too (`ignored_auth`)."""
    log = tmp_path_factory.mktemp("fuzzed-server") / "serve.log"
    with live_server(small_settings.source, log, env={"CENSUS_SERVE__API_KEY": API_KEY}) as running:
        yield running


def run_schemathesis(server: LiveServer, folder: Path) -> subprocess.CompletedProcess[str]:
    (folder / "schemathesis.toml").write_text(CONFIG, encoding="utf-8")
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(folder / "schemathesis.toml"), "--no-color"),
        *("run", f"{server.url}/openapi.json", "--checks", "all"),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)),
        *("--generation-database", "none", "--header", f"X-API-Key: {API_KEY}"),
        *("--workers", "1", "--request-timeout", "30"),
        *("--suppress-health-check", "all", "--output-truncate", "true"),
    ]
    # Run in `folder`, so nothing it might write lands in the project.
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=TIMEOUT)


def test_every_operation_answers_as_documented(fuzzed_server: LiveServer, tmp_path: Path) -> None:
    result = run_schemathesis(fuzzed_server, tmp_path)
    report = result.stdout[-20000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "Tested: " in result.stdout, report  # it did test, not only load the schema
    log = fuzzed_server.log()
    # A 500 that a check missed, or an error on the way out, leaves a traceback here.
    assert "Traceback" not in log, log[-5000:]
    assert fuzzed_server.process.poll() is None, log[-5000:]
