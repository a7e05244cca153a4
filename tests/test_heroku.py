"""Heroku: requirements.txt and the Procfile, and a build and boot the way the buildpack does."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from packaging.requirements import Requirement

from census_salary.contract import EXAMPLE_ROW
from live_server import free_port, wait_for_ready

ROOT = Path(__file__).resolve().parents[1]
EXIT_TIMEOUT = 30.0


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def requirement_lines() -> list[str]:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in requirement_lines()[:-1]:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
        assert match, f"not an exact `name==version` pin: {line!r}"
        pins[canonical_name(match.group(1))] = match.group(2)
    return pins


def web_command() -> str:
    processes = [
        re.match(r"^([A-Za-z0-9_-]+):\s*(.*)$", line)
        for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(processes), "every Procfile line must be `<type>: <command>`"
    web = [match.group(2) for match in processes if match and match.group(1) == "web"]
    assert len(web) == 1, f"expected exactly one web process, got {web}"
    return web[0]


# --- fast checks of the files ----------------------------------------------------------


def test_requirements_pin_every_runtime_dependency() -> None:
    pins = pinned_versions()
    for dependency in map(Requirement, project_table()["dependencies"]):
        name = canonical_name(dependency.name)
        assert name in pins, f"{name} is a runtime dependency but is not pinned in requirements.txt"
        assert dependency.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not satisfy {dependency}; run scripts/requirements.py"
        )


def test_requirements_leave_out_dev_only_packages() -> None:
    project = project_table()
    runtime = {canonical_name(Requirement(r).name) for r in project["dependencies"]}
    dev = {canonical_name(Requirement(r).name) for r in project["optional-dependencies"]["dev"]}
    leaked = (dev - runtime) & set(pinned_versions())
    assert not leaked, f"dev-only packages in requirements.txt: {sorted(leaked)}"


def test_requirements_install_the_project_last() -> None:
    assert requirement_lines()[-1] == "."


def test_procfile_serves_on_herokus_port_and_all_interfaces() -> None:
    words = shlex.split(web_command())
    assert words[:2] == ["census", "serve"], words
    assert "$PORT" in words or "--port=$PORT" in words, f"the web process must use $PORT: {words}"
    assert "0.0.0.0" in words or "--host=0.0.0.0" in words, (
        f"the web process must listen on 0.0.0.0, not census.toml's 127.0.0.1: {words}"
    )


# --- a build and boot like Heroku's ------------------------------------------------------


def project_files() -> list[Path]:
    """What a push would ship: tracked files plus new ones that are not ignored."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    return [Path(name) for name in listed.stdout.split("\0") if (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def slug(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project copied as a push would ship it, with `pip install -r requirements.txt` in
    a fresh virtual environment (the buildpack's build step)."""
    app = tmp_path_factory.mktemp("heroku") / "app"
    for name in project_files():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, app / name)
    subprocess.run([sys.executable, "-m", "venv", app / ".venv"], check=True)
    pip = [app / ".venv" / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, "install", "-r", "requirements.txt"],
        cwd=app,
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return app


def dyno_environment(app: Path, port: int, web_concurrency: str) -> dict[str, str]:
    """This environment without census settings or another venv, plus what a dyno sets."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CENSUS_") and key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    }
    bin_dir = app / ".venv" / "bin"
    environ["PATH"] = os.pathsep.join([str(bin_dir), environ.get("PATH", "")])
    environ["PORT"] = str(port)
    environ["WEB_CONCURRENCY"] = web_concurrency
    return environ


@pytest.fixture
def dyno(
    slug: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """The Procfile's web command started as Heroku starts it (the parameter is
    WEB_CONCURRENCY, which the buildpack sets from the dyno size); killed if a test fails."""
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", "-c", web_command()],
            cwd=slug,
            env=dyno_environment(slug, port, request.param),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, signalled as a whole
        )
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("dyno", ["1", "2"], indirect=True, ids=["1-worker", "2-workers"])
def test_a_fresh_build_serves_predictions_and_stops_on_sigterm(
    dyno: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, base_url, log = dyno
    wait_for_ready(process, base_url, log, "the web process")

    response = httpx.post(f"{base_url}/predict", json={"inputs": [EXAMPLE_ROW]}, timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["predictions"] in ([">50K"], ["<=50K"]), response.text
    # Heroku stops a dyno by sending SIGTERM to every process in it.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        returncode = process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_TIMEOUT:.0f} s after SIGTERM:\n{log.read_text()}")
    assert returncode == 0, log.read_text()
