"""Helper processes: calls run beside this process, or here when no helper takes them."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from census_salary.config import load_settings
from census_salary.helpers import Helpers, training_helper_count
from conftest import SMALL_CONFIG
from live_server import process_running


def _pid() -> int:
    return os.getpid()


def _started(marker: Path, seconds: float = 0.0) -> tuple[int, list[int]]:
    """Writes its process id to `marker`, waits `seconds`; its process and OpenMP threads."""
    marker.write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid(), _openmp_threads()


def _until_started(marker: Path) -> int:
    """Waits for a call to `_started` (a helper takes a few seconds to start); its process."""
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline, "the helper never started the call"
        time.sleep(0.05)
    return int(marker.read_text())


def _fail() -> None:
    raise ValueError("bad input in a helper")


def _openmp_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"]


def test_without_helpers_a_call_runs_here_when_its_result_is_asked() -> None:
    calls: list[int] = []
    with Helpers(0) as helpers:
        pending = helpers.run(calls.append, 7)
        assert calls == []
        pending.result()
    assert calls == [7]


def test_without_helpers_this_process_keeps_its_threads() -> None:
    before = _openmp_threads()
    with Helpers(0) as helpers, helpers.sharing_cores():
        assert _openmp_threads() == before


@pytest.mark.parametrize(
    ("processes", "objective", "helpers"),
    [(1, "f1", 0), (2, "f1", 1), (8, "f1", 3), (8, "fixed", 1)],
)
def test_training_has_no_more_helpers_than_work_for_them(
    tmp_path: Path, processes: int, objective: str, helpers: int
) -> None:
    config = SMALL_CONFIG.replace("processes = 1", f"processes = {processes}")
    (tmp_path / "census.toml").write_text(
        config.replace("cv = 3", f'cv = 3\nobjective = "{objective}"')
    )
    settings = load_settings(tmp_path / "census.toml", environ={})
    assert training_helper_count(settings) == helpers


@pytest.mark.slow
def test_a_helper_runs_a_call_in_another_process(tmp_path: Path) -> None:
    with Helpers(1) as helpers:
        pending = helpers.run(_started, tmp_path / "started")
        _until_started(tmp_path / "started")
        assert pending.result()[0] != os.getpid()


@pytest.mark.slow
def test_a_call_no_helper_has_started_runs_here(tmp_path: Path) -> None:
    with Helpers(1) as helpers:
        busy = helpers.run(_started, tmp_path / "started", 3.0)
        # At most two calls wait in the helper's queue; the last of these is not taken.
        behind = [helpers.run(_pid) for _ in range(3)]
        _until_started(tmp_path / "started")
        assert behind[-1].result() == os.getpid()
        assert busy.result()[0] != os.getpid()
        assert {pending.result() for pending in behind[:-1]} <= {busy.result()[0], os.getpid()}


@pytest.mark.slow
def test_an_error_in_a_helper_is_raised_here(tmp_path: Path) -> None:
    with Helpers(1) as helpers:
        helpers.run(_started, tmp_path / "started")
        _until_started(tmp_path / "started")
        with pytest.raises(ValueError, match="bad input in a helper"):
            helpers.run(_fail).result()


@pytest.mark.slow
def test_the_work_of_a_helper_that_died_is_done_here_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Helpers(1) as helpers:
        pending = helpers.run(_started, tmp_path / "started", 3.0)
        os.kill(_until_started(tmp_path / "started"), signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="census_salary.helpers"):
            assert pending.result()[0] == os.getpid()
    assert "a helper process stopped before it finished _started" in caplog.text


@pytest.mark.slow
def test_helpers_and_this_process_share_the_cores_one_thread_each(tmp_path: Path) -> None:
    import sklearn.ensemble  # noqa: F401  (loads OpenMP here)

    assert max(_openmp_threads()) > 1 or os.cpu_count() == 1
    with Helpers(1, preload="sklearn.ensemble") as helpers:
        pending = helpers.run(_started, tmp_path / "started")
        _until_started(tmp_path / "started")
        assert pending.result()[1] == [1]
        before = _openmp_threads()
        with helpers.sharing_cores():
            assert set(_openmp_threads()) == {1}
        assert _openmp_threads() == before


@pytest.mark.slow
def test_a_script_using_helpers_needs_no_main_guard(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "import os, time\n"
        "from census_salary.helpers import Helpers\n"
        "print('the script ran', flush=True)\n"
        "with Helpers(1) as helpers:\n"
        "    pending = helpers.run(os.getpid)\n"
        "    time.sleep(5)\n"
        "    print('helper' if pending.result() != os.getpid() else 'here', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("the script ran") == 1, done.stdout  # not again in the helper
    assert done.stdout.splitlines()[-1] == "helper", done.stdout


@pytest.mark.slow  # starts processes
def test_a_helper_ends_when_the_process_it_helps_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "import os, sys, time\n"
        "from census_salary.helpers import Helpers\n"
        "with Helpers(1) as helpers:\n"
        "    print(helpers.run(os.getpid).result(), flush=True)\n"
        "    time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        helper = int(process.stdout.readline())
        process.kill()  # no time to end its helpers
    deadline = time.monotonic() + 30
    while process_running(helper):
        assert time.monotonic() < deadline, f"helper {helper} outlived its parent"
        time.sleep(0.1)
