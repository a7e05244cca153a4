import errno
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from bundle_edits import copy_bundle, save_metadata
from census_salary import artifacts as artifacts_module
from census_salary import files as files_module
from census_salary.artifacts import (
    SavedBundle,
    append_run,
    artifacts_lock,
    kept_versions,
    read_runs,
    run_history,
    save_bundle,
    tracked_by_git,
)
from census_salary.bundle import (
    IMPORTANCE_FILE,
    METADATA_FILE,
    MODEL_FILE,
    POINTER,
    TREES_FILE,
    current_bundle_dir,
    load_bundle,
    load_bundle_dir,
    read_metadata,
    sha256_bytes,
)
from census_salary.config import Settings, load_settings
from census_salary.drift import PROFILE_FILE
from census_salary.errors import ModelError
from census_salary.metadata import RunRecord
from census_salary.model_card import CardInputs, render_model_card
from census_salary.train import train, use_version
from live_server import census_executable

NEWER = "20500101T000000Z-cccccccc"  # after the session's model, before any copy in 2099


def _save_another(settings: Settings, version: str, keep: int = 5) -> SavedBundle:
    """Save the current bundle's files again as `version`, as training does."""
    folder = current_bundle_dir(settings.artifacts_dir)
    metadata = read_metadata(folder).model_copy(update={"version": version})
    reports = {
        name: (folder / name).read_bytes()
        for name in ("evaluation.json", "slices.json", "slice_output.txt", PROFILE_FILE)
    }
    model, trees = (folder / MODEL_FILE).read_bytes(), (folder / TREES_FILE).read_bytes()
    with artifacts_lock(settings.artifacts_dir):
        return save_bundle(settings.artifacts_dir, model, trees, metadata, reports, keep=keep)


def _listing(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder): a snapshot to compare."""
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.ENOSPC, "No space left on device"),
        (errno.EACCES, "Permission denied"),
        (errno.EROFS, "Read-only file system"),
    ],
)
def test_a_failed_bundle_write_is_one_line_and_changes_nothing(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch, code: int, says: str
) -> None:
    artifacts = project_copy.artifacts_dir
    before = _listing(artifacts)

    def fail_halfway(path: Path, data: bytes) -> None:
        path.write_bytes(data[: len(data) // 2])
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(artifacts_module, "_write_file", fail_halfway)
    refused = rf"^Cannot write to {re.escape(str(artifacts))}: {says}\. Nothing was changed"
    with pytest.raises(ModelError, match=refused) as e:
        _save_another(project_copy, NEWER)
    assert "\n" not in str(e.value)
    assert _listing(artifacts) == before  # no staging folder, no run line, same LATEST
    load_bundle(artifacts)


def test_a_failed_switch_takes_back_the_new_bundle_and_its_run(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = project_copy.artifacts_dir
    before = _listing(artifacts)

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(artifacts_module, "replace_file", disk_full)
    with pytest.raises(ModelError, match="No space left on device"):
        _save_another(project_copy, NEWER)
    assert _listing(artifacts) == before
    load_bundle(artifacts)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_read_only_artifacts_folder_is_one_line(quick_copy: Settings) -> None:
    artifacts = quick_copy.artifacts_dir
    before = _listing(artifacts)
    artifacts.chmod(0o555)
    try:
        with pytest.raises(ModelError, match=r"Cannot write to .*: Permission denied"):
            train(quick_copy)
    finally:
        artifacts.chmod(0o755)
    assert _listing(artifacts) == before
    load_bundle(artifacts)


def test_a_new_bundle_becomes_current_and_the_old_one_stays(quick_copy: Settings) -> None:
    artifacts = quick_copy.artifacts_dir
    old = current_bundle_dir(artifacts)
    old_files = _listing(old)
    result = train(quick_copy)
    assert (artifacts / POINTER).read_text().strip() == result.metadata.version
    assert result.bundle_dir != old
    assert _listing(old) == old_files
    assert result.removed == ()
    assert not [p for p in artifacts.iterdir() if p.name.startswith(".")]


def test_each_training_run_is_recorded(quick_copy: Settings) -> None:
    train(quick_copy)
    runs = read_runs(quick_copy.artifacts_dir)
    assert len(runs) == 2
    assert runs[-1].metrics.roc_auc is not None
    assert runs[-1].metrics.roc_auc > 0.8
    assert runs[-1].version == current_bundle_dir(quick_copy.artifacts_dir).name


def test_a_run_history_line_that_is_not_a_run_is_skipped(
    project_copy: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with (project_copy.artifacts_dir / "runs.jsonl").open("a") as handle:
        handle.write('{"version": "x"}\nnot json\n')
    assert len(read_runs(project_copy.artifacts_dir)) == 1
    assert "line 2" in caplog.text
    assert "line 3" in caplog.text


def test_a_run_history_line_with_a_threshold_no_run_has_is_skipped(
    project_copy: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    runs = project_copy.artifacts_dir / "runs.jsonl"
    record = json.loads(runs.read_text().splitlines()[-1])
    with runs.open("a") as handle:
        handle.write(json.dumps({**record, "threshold": float("nan")}) + "\n")
    assert len(read_runs(project_copy.artifacts_dir)) == 1
    assert "line 2" in caplog.text


@pytest.mark.parametrize("version", ["../evil", "[red]x[/red]", "20261127T120301Z-3f2a9c1b\n"])
def test_a_run_history_line_with_a_version_no_bundle_has_is_skipped(
    project_copy: Settings, caplog: pytest.LogCaptureFixture, version: str
) -> None:
    runs = project_copy.artifacts_dir / "runs.jsonl"
    record = json.loads(runs.read_text().splitlines()[-1])
    with runs.open("a") as handle:
        handle.write(json.dumps({**record, "version": version}) + "\n")
    assert [run.version for run in read_runs(project_copy.artifacts_dir)] == [record["version"]]
    assert "line 2" in caplog.text


def test_a_run_history_line_that_is_not_utf8_is_skipped_and_training_goes_on(
    project_copy: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with (project_copy.artifacts_dir / "runs.jsonl").open("ab") as handle:
        handle.write(b'{"version": "\xff"}\n')
    _save_another(project_copy, NEWER)
    assert [run.version for run in read_runs(project_copy.artifacts_dir)][-1] == NEWER
    assert "line 2" in caplog.text


@pytest.mark.slow
def test_sigkill_during_training_leaves_a_loadable_bundle(project_copy: Settings) -> None:
    """Kill `census train` at moments spread over its run: a bundle always loads, and it
    is the previous one or a complete new one."""
    census = census_executable()
    command = [str(census), "--config", str(project_copy.source), "train"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    full_run = time.perf_counter() - started
    for fraction in (0.5, 0.65, 0.75, 0.85, 0.9, 0.95, 0.98):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full_run * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        load_bundle(project_copy.artifacts_dir)  # raises if the current bundle is broken
    train(project_copy)  # a later run cleans up what the killed ones left
    leftovers = [p.name for p in project_copy.artifacts_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _with_keep(settings: Settings, keep: int) -> Settings:
    """`settings` after `[artifacts] keep = <keep>` is added to its census.toml."""
    with settings.source.open("a") as handle:
        handle.write(f"\n[artifacts]\nkeep = {keep}\n")
    return load_settings(settings.source, environ={})


def _copy_bundle(settings: Settings, version: str) -> Path:
    """A copy of the current bundle as another version (its files load the same)."""
    return copy_bundle(current_bundle_dir(settings.artifacts_dir), settings.artifacts_dir / version)


def _record_run(settings: Settings, version: str) -> None:
    """Add the run of the kept bundle `version` to runs.jsonl, as if it had become current."""
    metadata = read_metadata(settings.artifacts_dir / version)
    append_run(settings.artifacts_dir, RunRecord.of(metadata))


def test_train_keeps_the_newest_bundles_and_removes_older_ones(quick_copy: Settings) -> None:
    settings = _with_keep(quick_copy, 3)
    trained_before = current_bundle_dir(settings.artifacts_dir).name
    old = [f"2020010{i}T000000Z-0000000{i}" for i in range(1, 5)]
    for version in old:
        _copy_bundle(settings, version)
    result = train(settings)
    assert kept_versions(settings.artifacts_dir) == [
        result.metadata.version,
        trained_before,
        old[3],
    ]
    assert result.removed == (old[2], old[1], old[0])


def test_the_keep_rule_never_removes_the_current_bundle(project_copy: Settings) -> None:
    later = ["20990101T000000Z-aaaaaaaa", "20990102T000000Z-bbbbbbbb"]
    for version in later:
        _copy_bundle(project_copy, version)  # dated after the one saved next
        _record_run(project_copy, version)
    _save_another(project_copy, NEWER, keep=1)
    assert kept_versions(project_copy.artifacts_dir) == [later[1], NEWER]
    assert load_bundle(project_copy.artifacts_dir).version == NEWER


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_keep_rule_never_removes_a_bundle_git_tracks(project_copy: Settings) -> None:
    root, artifacts = project_copy.root, project_copy.artifacts_dir
    committed = current_bundle_dir(artifacts).name
    untracked = _copy_bundle(project_copy, "20200101T000000Z-00000000").name
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "add", f"artifacts/{committed}"], cwd=root, check=True)
    assert tracked_by_git(artifacts) == {committed}
    saved = _save_another(project_copy, NEWER, keep=1)
    assert kept_versions(artifacts) == [NEWER, committed]
    assert saved.removed == (untracked,)


def test_outside_a_repository_nothing_is_tracked(tmp_path: Path) -> None:
    (tmp_path / "20200101T000000Z-00000000").mkdir()
    assert tracked_by_git(tmp_path) == frozenset()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_repository_without_git_to_ask_is_not_known_and_elsewhere_nothing_is_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository copied into an image without git: its committed bundles are not known,
    so none may be removed; outside a repository nothing is tracked, git or not."""
    repository, plain = tmp_path / "repository", tmp_path / "plain"
    for folder in (repository, plain):
        (folder / "20200101T000000Z-00000000").mkdir(parents=True)
        (folder / "20200101T000000Z-00000000" / METADATA_FILE).write_text("{}")
    subprocess.run(["git", "init", "-q", str(repository)], check=True)
    subprocess.run(["git", "add", "."], cwd=repository, check=True)
    assert tracked_by_git(repository) == {"20200101T000000Z-00000000"}
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git to be found
    assert tracked_by_git(repository) is None
    assert tracked_by_git(plain) == frozenset()


def test_saving_cleans_leftovers_and_leaves_other_folders(project_copy: Settings) -> None:
    artifacts = project_copy.artifacts_dir
    (artifacts / ".staging-abc").mkdir()
    (artifacts / ".staging-abc" / MODEL_FILE).write_bytes(b"half")
    (artifacts / ".removing-20200101T000000Z-00000000").mkdir()
    (artifacts / ".LATEST.x.tmp").write_text("half")
    (artifacts / "notes").mkdir()
    _save_another(project_copy, NEWER, keep=1)
    names = {path.name for path in artifacts.iterdir()}
    assert not [name for name in names if name.startswith(".")]
    assert "notes" in names


def _hold(path: Path, held: threading.Event, release: threading.Event) -> None:
    with artifacts_lock(path):
        held.set()
        release.wait(30)


def test_a_second_lock_holder_waits_for_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first_held, second_held, release, never = (threading.Event() for _ in range(4))
    first = threading.Thread(target=_hold, args=(tmp_path, first_held, release))
    first.start()
    assert first_held.wait(10)
    with caplog.at_level(logging.INFO, logger="census_salary.artifacts"):
        second = threading.Thread(target=_hold, args=(tmp_path, second_held, never))
        second.start()
        assert not second_held.wait(0.5)  # blocked while the first holds the lock
        release.set()
        assert second_held.wait(10)
    never.set()
    first.join(10)
    second.join(10)
    assert "waiting for another census train or use" in caplog.text
    assert not (tmp_path / ".lock").exists()


@pytest.mark.slow  # starts a process
def test_a_killed_lock_holder_lets_go(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from census_salary.artifacts import artifacts_lock\n"
        "with artifacts_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    held, release = threading.Event(), threading.Event()
    waiter = threading.Thread(target=_hold, args=(tmp_path, held, release))
    waiter.start()
    assert not held.wait(0.5)
    holder.kill()  # SIGKILL: no Python clean-up runs, the system releases the flock
    holder.wait()
    assert held.wait(10)
    release.set()
    waiter.join(10)


def _logged_at(log: str, words: str) -> str:
    """The time stamp of the first log line with `words` (they sort as times do)."""
    return next(line[:23] for line in log.splitlines() if words in line)


@pytest.mark.slow
def test_two_trainings_at_once_run_one_after_the_other(
    project_copy: Settings, tmp_path: Path
) -> None:
    """Both wait while the test holds the lock; released, they train one at a time."""
    artifacts = project_copy.artifacts_dir
    command = [str(census_executable()), "-v", "--config", str(project_copy.source), "train"]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with artifacts_lock(artifacts):
        processes = []
        for log in logs:
            with log.open("w") as stderr:
                processes.append(
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
                )
            deadline = time.monotonic() + 60
            while "waiting for another census" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=300) == 0, log.read_text()
    spans = sorted(
        (_logged_at(text, "INFO census_salary.data: read"), _logged_at(text, "trained "))
        for text in (log.read_text() for log in logs)
    )
    assert spans[0][1] <= spans[1][0], spans  # the second began after the first ended
    runs = [run.version for run in read_runs(artifacts)]
    assert len(runs) == 3
    assert current_bundle_dir(artifacts).name == runs[-1]
    for version in runs:
        load_bundle_dir(artifacts / version)
    assert not [path for path in artifacts.iterdir() if path.name.startswith(".")]


def test_use_makes_an_older_kept_bundle_current(project_copy: Settings) -> None:
    artifacts = project_copy.artifacts_dir
    old = current_bundle_dir(artifacts)
    _save_another(project_copy, NEWER)
    switch = use_version(project_copy, old.name[:16])
    assert (switch.version, switch.bundle.version, switch.previous) == (old.name, old.name, NEWER)
    assert (artifacts / POINTER).read_text() == f"{old.name}\n"
    assert load_bundle(artifacts).version == old.name
    card = render_model_card(CardInputs.of(old, project_copy.model_card_path))
    assert project_copy.model_card_path.read_text(encoding="utf-8") == card


def test_use_refuses_an_unknown_version(project_copy: Settings) -> None:
    with pytest.raises(ModelError, match=r"No kept model version 'nope'.*`census runs`"):
        use_version(project_copy, "nope")


def test_use_refuses_a_prefix_of_two_versions(project_copy: Settings) -> None:
    _copy_bundle(project_copy, "20200101T000000Z-aaaaaaaa")
    _copy_bundle(project_copy, "20200101T000000Z-bbbbbbbb")
    with pytest.raises(ModelError, match=r"'20200101' is the start of 2 kept versions"):
        use_version(project_copy, "20200101")


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _break_self_test(folder: Path) -> None:
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta["self_test"]["probability"] += 0.01
    save_metadata(folder, meta)


def _outside_the_allow_list(folder: Path) -> None:
    sio.dump(Pipeline([("encode", FunctionTransformer(os.system))]), folder / MODEL_FILE)
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta["model_sha256"] = sha256_bytes((folder / MODEL_FILE).read_bytes())
    save_metadata(folder, meta)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda folder: _flip_a_byte(folder / MODEL_FILE), r"model\.skops does not match"),
        (lambda folder: _flip_a_byte(folder / TREES_FILE), r"trees\.npz does not match"),
        (_break_self_test, "scores its stored example"),
        (_outside_the_allow_list, "types this version does not allow"),
        (lambda folder: (folder / "slices.json").write_text("{}"), "not a slice report"),
        (
            lambda folder: (folder / IMPORTANCE_FILE).write_text("{\n"),
            r"importance\.json is not a permutation importance report",
        ),
    ],
)
def test_use_refuses_a_broken_bundle(
    project_copy: Settings, damage: Callable[[Path], None], says: str
) -> None:
    artifacts = project_copy.artifacts_dir
    pointer = (artifacts / POINTER).read_bytes()
    card = project_copy.model_card_path.read_bytes()
    damage(_copy_bundle(project_copy, "20200101T000000Z-aaaaaaaa"))
    with pytest.raises(
        ModelError, match=rf"^20200101T000000Z-aaaaaaaa was not made current: .*{says}"
    ):
        use_version(project_copy, "20200101")
    assert (artifacts / POINTER).read_bytes() == pointer
    assert project_copy.model_card_path.read_bytes() == card


def test_use_that_cannot_switch_changes_nothing(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = project_copy.artifacts_dir
    _copy_bundle(project_copy, "20200101T000000Z-aaaaaaaa")
    pointer = (artifacts / POINTER).read_bytes()

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(artifacts_module, "replace_file", read_only)
    with pytest.raises(ModelError, match=r"Read-only file system.*then run `census use` again"):
        use_version(project_copy, "20200101")
    assert (artifacts / POINTER).read_bytes() == pointer


def test_run_history_marks_the_current_and_the_kept_bundles(project_copy: Settings) -> None:
    artifacts = project_copy.artifacts_dir
    old = current_bundle_dir(artifacts)
    _save_another(project_copy, NEWER)
    shutil.rmtree(old)
    history = [(s.run.version, s.kept, s.current) for s in run_history(artifacts)]
    assert history == [(old.name, False, False), (NEWER, True, True)]


@pytest.mark.parametrize(
    "damage",
    [
        lambda pointer: pointer.write_bytes(b"\xff\xfe not a version\n"),
        lambda pointer: (pointer.unlink(), pointer.mkdir()),
    ],
    ids=["not-utf8", "empty-folder"],
)
def test_use_repairs_a_latest_that_cannot_be_read(
    project_copy: Settings, damage: Callable[[Path], object]
) -> None:
    artifacts = project_copy.artifacts_dir
    old = current_bundle_dir(artifacts).name
    damage(artifacts / POINTER)
    switch = use_version(project_copy, old)
    assert (switch.version, switch.previous) == (old, None)
    assert load_bundle(artifacts).version == old


def test_run_history_with_a_latest_that_cannot_be_read_marks_none_current(
    project_copy: Settings,
) -> None:
    artifacts = project_copy.artifacts_dir
    (artifacts / POINTER).unlink()
    (artifacts / POINTER).mkdir()
    assert [(s.kept, s.current) for s in run_history(artifacts)] == [(True, False)]


def _failing_after_the_switch(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """The folder sync that follows the rename of LATEST fails with `error`."""
    real = files_module.fsync_dir

    def sync(folder: Path) -> None:
        if folder == artifacts and (artifacts / POINTER).read_text().strip() == NEWER:
            raise error
        real(folder)

    monkeypatch.setattr(files_module, "fsync_dir", sync)


def test_a_failed_folder_sync_after_the_switch_keeps_the_new_bundle(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    artifacts = project_copy.artifacts_dir
    _failing_after_the_switch(artifacts, monkeypatch, OSError(errno.EIO, os.strerror(errno.EIO)))
    saved = _save_another(project_copy, NEWER)
    assert saved.folder == artifacts / NEWER
    assert load_bundle(artifacts).version == NEWER
    assert read_runs(artifacts)[-1].version == NEWER
    assert "could not be synced to disk (Input/output error)" in caplog.text


def test_an_interrupt_right_after_the_switch_keeps_the_new_bundle(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = project_copy.artifacts_dir
    _failing_after_the_switch(artifacts, monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _save_another(project_copy, NEWER)
    assert load_bundle(artifacts).version == NEWER


def test_a_run_is_recorded_once_its_bundle_is_current(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    current_when_recorded = []
    real = artifacts_module.append_run

    def append(folder: Path, record: RunRecord) -> None:
        current_when_recorded.append(current_bundle_dir(folder).name)
        real(folder, record)

    monkeypatch.setattr(artifacts_module, "append_run", append)
    _save_another(project_copy, NEWER)
    assert current_when_recorded == [NEWER]


def test_a_current_bundle_whose_run_was_not_recorded_is_listed_and_recorded_later(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = project_copy.artifacts_dir

    def disk_full(folder: Path, record: RunRecord) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(artifacts_module, "append_run", disk_full)
        _save_another(project_copy, NEWER)  # as if killed between the switch and the record
    assert [run.version for run in read_runs(artifacts)][-1] != NEWER
    assert [(s.run.version, s.current) for s in run_history(artifacts)][-1] == (NEWER, True)
    _save_another(project_copy, "20500102T000000Z-dddddddd")
    assert [run.version for run in read_runs(artifacts)][-2:] == [
        NEWER,
        "20500102T000000Z-dddddddd",
    ]


def test_a_run_history_that_cannot_be_written_stops_the_next_save_naming_it(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = project_copy.artifacts_dir
    runs = artifacts / "runs.jsonl"

    def refused(folder: Path, record: RunRecord) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(runs))

    monkeypatch.setattr(artifacts_module, "append_run", refused)
    _save_another(project_copy, NEWER)  # current, its run not recorded: a warning
    with pytest.raises(ModelError, match=rf"Cannot write to {re.escape(str(runs))}: "):
        _save_another(project_copy, "20500102T000000Z-dddddddd")
    assert current_bundle_dir(artifacts).name == NEWER
    assert not (artifacts / "20500102T000000Z-dddddddd").exists()


def test_a_bundle_that_never_became_current_is_removed_before_older_current_ones(
    project_copy: Settings,
) -> None:
    artifacts = project_copy.artifacts_dir
    committed = current_bundle_dir(artifacts).name
    left_by_a_killed_run = _copy_bundle(project_copy, "20400101T000000Z-dddddddd").name
    saved = _save_another(project_copy, NEWER, keep=2)
    assert saved.removed == (left_by_a_killed_run,)
    assert kept_versions(artifacts) == [NEWER, committed]
    assert [s.run.version for s in run_history(artifacts)] == [committed, NEWER]


def _git_that_cannot_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = subprocess.CompletedProcess(
        args=["git"],
        returncode=128,
        stdout=b"",
        stderr=b"fatal: detected dubious ownership in repository at '/x'\n",
    )
    monkeypatch.setattr(artifacts_module.subprocess, "run", lambda *a, **k: refused)


def test_git_that_cannot_answer_in_a_repository_says_nothing_is_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "artifacts").mkdir()
    _git_that_cannot_answer(monkeypatch)
    assert tracked_by_git(tmp_path / "artifacts") is None
    assert "dubious ownership" in caplog.text
    assert "safe.directory" in caplog.text


def test_the_keep_rule_removes_nothing_when_git_cannot_answer(
    project_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = project_copy.artifacts_dir
    (project_copy.root / ".git").mkdir()
    old = current_bundle_dir(artifacts).name
    _git_that_cannot_answer(monkeypatch)
    saved = _save_another(project_copy, NEWER, keep=1)
    assert saved.removed == ()
    assert kept_versions(artifacts) == [NEWER, old]
