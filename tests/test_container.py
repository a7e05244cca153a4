"""The container image: the Dockerfile built with buildah on a Debian base made by
debootstrap (no Docker daemon needed), then run as Docker would run it.

Everything lives in a buildah storage folder of its own, removed at the end: no image,
container or process is left behind, and nothing is cached from one run to the next.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from census_salary.contract import EXAMPLE_ROW
from live_server import free_port, wait_for_ready

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# What the official python:3.11-slim is made of: Debian bookworm with its Python 3.11, from
# the mirror this machine's apt sources use.
DEBIAN_RELEASE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
# The build trusts what this machine trusts (here, a proxy in front of the package index).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_IMAGE = "localhost/census-test-base"
IMAGE = "localhost/census-test"
INSTALL_HINT = "apt-get install buildah debootstrap debian-archive-keyring (.ci/run does)"
BUILD_TIMEOUT = 1200.0
EXIT_TIMEOUT = 30.0


def as_root(command: list[str]) -> list[str]:
    """debootstrap and buildah's overlay storage need root: sudo when not root (CI's way)."""
    return command if os.geteuid() == 0 else ["sudo", "-n", *command]


def run(command: list[str], timeout: float = 120.0) -> str:
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout.strip()


def executable(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is missing: {INSTALL_HINT}; this test never skips.")
    return found


@dataclass
class Buildah:
    """buildah with a storage folder of its own."""

    executable: str
    storage: Path

    def command(self, *args: str) -> list[str]:
        return as_root(
            [
                self.executable,
                "--root",
                str(self.storage / "root"),
                "--runroot",
                str(self.storage / "run"),
                "--storage-driver",
                "overlay",
                *args,
            ]
        )

    def __call__(self, *args: str, timeout: float = 120.0) -> str:
        return run(self.command(*args), timeout)


@pytest.fixture(scope="module")
def buildah() -> Iterator[Buildah]:
    tool = Buildah(executable("buildah"), Path(tempfile.mkdtemp(prefix="census-buildah-")))
    try:
        yield tool
    finally:
        for args in (("rm", "--all"), ("rmi", "--all", "--force")):
            subprocess.run(tool.command(*args), capture_output=True, check=False)
        subprocess.run(as_root(["rm", "-rf", str(tool.storage)]), capture_output=True, check=False)


def build_base(buildah: Buildah) -> str:
    """A Debian image with Python 3.11 like the official slim one, bootstrapped into place."""
    debootstrap = executable("debootstrap")
    if not DEBIAN_KEYRING.is_file():
        pytest.fail(f"{DEBIAN_KEYRING} is missing: {INSTALL_HINT}.")
    container = buildah("from", "scratch")
    rootfs = buildah("mount", container)
    run(
        as_root(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                f"--keyring={DEBIAN_KEYRING}",
                DEBIAN_RELEASE,
                rootfs,
                DEBIAN_MIRROR,
            ]
        ),
        timeout=BUILD_TIMEOUT,
    )
    # As the official image does: no package lists or downloaded packages.
    for cache in ("var/lib/apt/lists", "var/cache/apt"):
        run(as_root(["find", f"{rootfs}/{cache}", "-type", "f", "-delete"]))
    buildah("umount", container)
    path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    buildah("config", "--env", path, "--env", "LANG=C.UTF-8", "--cmd", "python3", container)
    buildah("commit", "--quiet", "--rm", container, BASE_IMAGE)
    return BASE_IMAGE


@pytest.fixture(scope="module")
def image(buildah: Buildah) -> str:
    base = build_base(buildah)
    volumes = []
    if HOST_CA_BUNDLE.is_file():
        volumes = ["--volume", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
    buildah(
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",  # the OCI format has no HEALTHCHECK
        "--quiet",
        "--build-arg",
        f"BASE={base}",
        *volumes,
        "--tag",
        IMAGE,
        str(ROOT),
        timeout=BUILD_TIMEOUT,
    )
    return IMAGE


@pytest.fixture(scope="module")
def config(buildah: Buildah, image: str) -> dict[str, Any]:
    """The image's Docker configuration: entrypoint, command, user, healthcheck, labels."""
    return json.loads(buildah("inspect", "--type", "image", image))["Docker"]["config"]


@pytest.fixture(scope="module")
def container(buildah: Buildah, image: str) -> str:
    return buildah("from", "--quiet", image)


def in_container(
    buildah: Buildah, container: str, command: list[str], env: dict[str, str], user: str = ""
) -> list[str]:
    """`buildah run` of a command as Docker runs it: the image's user, folder and environment."""
    options = [f"--env={name}={value}" for name, value in env.items()]
    if user:
        options.append(f"--user={user}")
    return buildah.command("run", "--isolation", "chroot", *options, container, "--", *command)


@contextmanager
def serving(
    buildah: Buildah, container: str, config: dict[str, Any], log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The image's own command (entrypoint and cmd) with PORT set, until the block ends."""
    port = free_port()
    command = in_container(
        buildah, container, [*config["Entrypoint"], *config["Cmd"]], {"PORT": str(port)}
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
    try:
        wait_for_ready(process, f"http://127.0.0.1:{port}", log, "the container")
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            kill_group = ["kill", "-s", "KILL", "--", f"-{process.pid}"]
            subprocess.run(as_root(kill_group), capture_output=True, check=False)
            process.wait()


def server_pid(runner: subprocess.Popen[bytes]) -> int:
    """The server's process under `buildah run` (as PID 1 would be under Docker)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
            continue
        parents[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), argv[0])
    family = {runner.pid}
    while grown := {pid for pid, (parent, _) in parents.items() if parent in family} - family:
        family |= grown
    found = [pid for pid in family - {runner.pid} if not parents[pid][1].startswith(b"buildah")]
    assert len(found) == 1, f"expected one server process under buildah, got {found}"
    return found[0]


def test_the_image_serves_on_port_and_stops_cleanly_on_sigterm(
    buildah: Buildah, container: str, config: dict[str, Any], tmp_path: Path
) -> None:
    log = tmp_path / "container.log"
    with serving(buildah, container, config, log) as (process, base_url):
        response = httpx.post(f"{base_url}/predict", json={"inputs": [EXAMPLE_ROW]}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] in ([">50K"], ["<=50K"]), response.text
        # `docker stop` sends SIGTERM to the container's first process: the server itself.
        run(as_root(["kill", "-TERM", str(server_pid(process))]))
        try:
            returncode = process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_TIMEOUT:.0f} s after SIGTERM:\n{log.read_text()}")
    assert returncode == 0, log.read_text()


def test_the_server_runs_as_the_images_unprivileged_user(
    buildah: Buildah, container: str, config: dict[str, Any], tmp_path: Path
) -> None:
    with serving(buildah, container, config, tmp_path / "container.log") as (process, _):
        status = Path(f"/proc/{server_pid(process)}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert config["User"].split(":")[0] == uid != "0", (config["User"], status)


def test_the_user_owns_no_file(buildah: Buildah, container: str, config: dict[str, Any]) -> None:
    user = config["User"].split(":")[0]
    find = ["find", "/", "-xdev", "(", "-user", user, "-o", "-group", user, ")", "-print"]
    owned = run(in_container(buildah, container, find, {}, user="0:0"))
    assert owned == "", f"files the server's user owns (and could change):\n{owned}"


def test_the_healthcheck_passes_only_while_ready(
    buildah: Buildah, container: str, config: dict[str, Any], tmp_path: Path
) -> None:
    kind, *check = config["Healthcheck"]["Test"]
    assert kind == "CMD", config["Healthcheck"]
    idle = subprocess.run(
        in_container(buildah, container, check, {"PORT": str(free_port())}),
        capture_output=True,
        timeout=EXIT_TIMEOUT,
        check=False,
    )
    assert idle.returncode != 0, "the healthcheck passed with no server running"
    with serving(buildah, container, config, tmp_path / "container.log") as (_, base_url):
        port = base_url.rsplit(":", 1)[1]
        healthy = subprocess.run(
            in_container(buildah, container, check, {"PORT": port}),
            capture_output=True,
            text=True,
            timeout=EXIT_TIMEOUT,
            check=False,
        )
    assert healthy.returncode == 0, healthy.stderr


def test_every_module_imports_in_the_image(buildah: Buildah, container: str) -> None:
    """What the image leaves out (pip, the packages' test suites) is nothing the library uses."""
    script = (
        "import importlib, pkgutil, census_salary\n"
        "for module in pkgutil.walk_packages(census_salary.__path__, 'census_salary.'):\n"
        "    if not module.name.endswith('__main__'):\n"
        "        importlib.import_module(module.name)\n"
    )
    run(in_container(buildah, container, ["python", "-c", script], {}), timeout=EXIT_TIMEOUT * 4)


def test_the_labels_name_the_projects_version(config: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    assert config["Labels"]["org.opencontainers.image.version"] == project["version"], config
