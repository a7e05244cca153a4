"""Docs that cannot rot: every command, exit code and setting is in the README, and the
README's examples run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from census_salary.cli import app
from census_salary.config import Settings
from census_salary.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_is_in_the_readme() -> None:
    for name in commands():
        assert f"census {name}" in README, f"`census {name}` is not documented in README.md"


def test_every_command_has_help_text() -> None:
    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help, f"census {name} has no help text"


def test_every_exit_code_is_in_the_readme() -> None:
    for code in ExitCode:
        assert re.search(rf"^\| {code.value} \| ", README, re.MULTILINE), (
            f"exit code {code.value} is undocumented"
        )


def test_every_setting_section_is_in_the_readme() -> None:
    for section in Settings.model_fields:
        if section != "source":
            assert f"`[{section}]`" in README, f"[{section}] is not documented in README.md"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"The test command.*?```bash\n(.+?)\n```", README, re.DOTALL)
    assert block is not None
    assert ci.rstrip().splitlines()[-1] == block.group(1).strip()


def readme_examples() -> list[str]:
    block = re.search(r"These examples run as they are.*?```bash\n(.+?)```", README, re.DOTALL)
    assert block is not None, "the README lost its examples block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture
def workdir(tmp_path: Path, census_csv: Path) -> Path:
    """A fresh copy of the project for each example (train makes a new bundle)."""
    folder = tmp_path
    for name in ("census.toml", "ModelCard.md"):
        shutil.copy(ROOT / name, folder / name)
    for name in ("examples", "artifacts"):
        shutil.copytree(ROOT / name, folder / name)
    (folder / "data").mkdir()
    shutil.copy(census_csv, folder / "data" / "census.csv")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("line", readme_examples())
def test_readme_example_runs(line: str, workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-c", line],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"{line}\n{done.stderr}"


def test_quick_start_predicts_offline() -> None:
    block = re.search(r"## Set up and run\n\n```bash\n(.+?)```", README, re.DOTALL)
    assert block is not None
    main_job = block.group(1).strip().splitlines()[-1]
    assert main_job == "census predict < examples/rows.json"
