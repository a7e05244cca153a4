"""Scoring streams of rows and writing them out (census_salary.predict)."""

from __future__ import annotations

import array
import csv
import dataclasses
import errno
import fcntl
import io
import itertools
import json
import math
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest

import census_salary.predict
from census_salary.bundle import Bundle
from census_salary.config import Settings
from census_salary.contract import COLUMNS, EXAMPLE_ROW, Columns, check_columns, check_records
from census_salary.errors import InputError
from census_salary.explain import explain
from census_salary.predict import UnknownValues, _KnownValues, _read_ahead, score_rows
from census_salary.rows import RowChunk, read_rows
from census_salary.writers import _float_text, write_predictions
from live_server import census_executable, server_environment

HEADER = ",".join(EXAMPLE_ROW)
LINE = ",".join(str(v) for v in EXAMPLE_ROW.values())
LINE_JSON, OLD_JSON = json.dumps(EXAMPLE_ROW), json.dumps({**EXAMPLE_ROW, "age": "old"})


def csv_chunks(text: str, chunk_size: int = 1000) -> Iterator[RowChunk]:
    _, chunks = read_rows(io.StringIO(text), "csv", chunk_size)
    return chunks


def json_chunks(rows: list[dict], chunk_size: int = 1000) -> Iterator[RowChunk]:
    _, chunks = read_rows(io.StringIO(json.dumps(rows)), "json", chunk_size)
    return chunks


def written(bundle: Bundle, chunks: Iterator[RowChunk], fmt: str) -> str:
    out = io.BytesIO()
    write_predictions(score_rows(bundle, chunks).chunks, fmt, out)  # type: ignore[arg-type]
    return out.getvalue().decode()


def test_probabilities_are_spelled_as_repr_spells_them() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate(
        [rng.random(2000), rng.random(2000) * 1e-3, [0.0, 1.0, 1e-4, 9.99e-5, 5e-324, 0.5]]
    )
    assert _float_text(p).to_pylist() == [repr(x) for x in p.tolist()]


def test_negative_floats_are_spelled_as_repr_spells_them() -> None:
    p = -np.random.default_rng(1).random(2000) * 10.0 ** np.arange(-6, 14, 0.01)
    assert _float_text(p).to_pylist() == [repr(x) for x in p.tolist()]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_explained_rows_carry_each_contribution_to_the_last_bit(
    small_bundle: Bundle, fmt: str
) -> None:
    rows = [EXAMPLE_ROW, {**EXAMPLE_ROW, "age": 61, "occupation": "Astronaut"}]
    out = io.BytesIO()
    stream = score_rows(small_bundle, json_chunks(rows), explain=True)
    write_predictions(stream.chunks, fmt, out)  # type: ignore[arg-type]
    text = out.getvalue().decode()
    if fmt == "csv":
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        records = [json.loads(line) for line in text.splitlines()]
    expected = explain(small_bundle, check_records(rows).columns)
    for i, record in enumerate(records):
        got = [float(record[f"contribution_{name}"]) for name in COLUMNS]
        assert got == expected.values[i].tolist()
        assert float(record["base_value"]) == expected.base_value
        p = float(record["probability"])
        log_odds = expected.base_value + sum(got)
        assert log_odds == pytest.approx(math.log(p / (1 - p)), abs=1e-9)


def test_explaining_refuses_an_input_that_has_its_columns(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "contribution_age": 1}]
    with pytest.raises(InputError, match="contribution_age"):
        list(score_rows(small_bundle, json_chunks(rows), explain=True).chunks)


@pytest.mark.parametrize(
    "value", ["plain", "a,b", 'say "hi"', "two\nlines", "", " lead", "é/ü"], ids=repr
)
def test_csv_output_is_what_pandas_writes(small_bundle: Bundle, value: str) -> None:
    """CSV rows are written by pyarrow, or by the csv module where a value needs quotes."""
    quoted = '"' + value.replace('"', '""') + '"'
    text = f"id,{HEADER}\n{quoted},{LINE}\nx,{LINE}\n"
    (frame,) = [c.to_frame() for c in score_rows(small_bundle, csv_chunks(text)).chunks]
    expected = frame.to_csv(index=False, lineterminator="\n")
    assert written(small_bundle, csv_chunks(text), "csv") == expected


def test_json_rows_go_out_as_given_with_their_predictions(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "id": 1.5, "tags": ["a"]}, {**EXAMPLE_ROW, "id": None}]
    out = [json.loads(line) for line in written(small_bundle, json_chunks(rows), "jsonl").split()]
    assert [(r["id"], r.get("tags")) for r in out] == [(1.5, ["a"]), (None, None)]
    assert all(r["prediction"] in (">50K", "<=50K") for r in out)


def test_json_output_gives_the_probabilities_to_the_last_bit(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "age": age} for age in range(17, 90)]
    expected = small_bundle.probabilities(check_columns(json_chunk_columns(rows)).columns)
    out = json.loads(written(small_bundle, json_chunks(rows), "json"))
    assert [r["probability"] for r in out] == expected.tolist()


def json_chunk_columns(rows: list[dict]) -> dict:
    (chunk,) = list(json_chunks(rows))
    return dict(chunk.columns)


def test_json_rows_lacking_a_field_others_have_get_null(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "note": "x"}, EXAMPLE_ROW]
    out = [json.loads(line) for line in written(small_bundle, json_chunks(rows), "jsonl").split()]
    assert [r["note"] for r in out] == ["x", None]


def test_a_json_integer_beyond_64_bits_passes_through(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "id": 10**30}]
    (out,) = json.loads(written(small_bundle, json_chunks(rows), "json"))
    assert out["id"] == 10**30


def test_rows_after_which_the_input_paused_are_scored_before_more_is_read(
    small_bundle: Bundle,
) -> None:
    asked_for_more: list[bool] = []

    def chunks() -> Iterator[RowChunk]:
        (chunk,) = csv_chunks(f"{HEADER}\n{LINE}\n")
        yield dataclasses.replace(chunk, paused=True)
        asked_for_more.append(True)
        yield from csv_chunks(f"{HEADER}\n{LINE}\n{LINE}\n")

    scored = score_rows(small_bundle, chunks()).chunks
    assert len(next(scored)) == 1
    assert not asked_for_more
    assert len(next(scored)) == 2


def test_known_values_give_what_check_columns_gives() -> None:
    lines = [LINE.replace("39", age, 1) for age in ("20", " 30", "20", "40.0")]
    known = _KnownValues()
    for chunk in csv_chunks("\n".join([HEADER, *lines, *lines[:2]]) + "\n", chunk_size=3):
        got = known.check(chunk.distinct)
        expected = check_columns(chunk.columns)
        assert got is not None
        for name, values in expected.columns.items():
            assert got.columns[name].dtype == values.dtype, name
            assert got.columns[name].tolist() == values.tolist(), name


def test_known_values_leave_a_refused_value_to_check_columns() -> None:
    (chunk,) = csv_chunks(f"{HEADER}\n{LINE}\n{LINE.replace('39', 'old', 1)}\n")
    assert _KnownValues().check(chunk.distinct) is None


def test_scoring_in_threads_gives_what_scoring_in_turn_gives(
    small_bundle: Bundle, census_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = census_csv.read_text(encoding="utf-8")

    def probabilities() -> np.ndarray:
        chunks = score_rows(small_bundle, csv_chunks(text, chunk_size=5000)).chunks
        return np.concatenate([chunk.probabilities for chunk in chunks])

    monkeypatch.setattr(census_salary.predict, "SCORING_ROWS", 777)
    in_threads = probabilities()
    monkeypatch.setattr(census_salary.predict, "SCORING_THREADS", 0)
    np.testing.assert_array_equal(in_threads, probabilities())


def test_a_stream_dropped_unfinished_does_not_wait_for_its_scoring_threads(
    small_bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever drops it closes it (the garbage collector too, even while a thread starts,
    where joining threads deadlocked in CI): a piece still scoring is not waited for."""
    release, calls = threading.Event(), itertools.count()
    score = Bundle.probabilities

    def slow_after_the_first(bundle: Bundle, columns: Columns, threads: int = 1) -> np.ndarray:
        if next(calls):
            release.wait(30)
        return score(bundle, columns, threads)

    monkeypatch.setattr(Bundle, "probabilities", slow_after_the_first)
    chunks = score_rows(small_bundle, json_chunks([EXAMPLE_ROW] * 6, chunk_size=2)).chunks
    assert len(next(chunks)) == 2  # the second chunk is scoring, and holds on
    closing = threading.Thread(target=chunks.close)
    closing.start()
    closing.join(5)
    release.set()
    assert not closing.is_alive()


def test_rows_before_a_bad_chunk_come_out_before_its_error(small_bundle: Bundle) -> None:
    rows = [EXAMPLE_ROW] * 4 + [{**EXAMPLE_ROW, "age": "old"}]
    chunks = score_rows(small_bundle, json_chunks(rows, chunk_size=2)).chunks
    assert len(next(chunks)) == 2
    assert len(next(chunks)) == 2
    with pytest.raises(InputError, match="row 5, field 'age'"):
        next(chunks)


def test_skipped_rows_keep_the_columns_of_the_chunk(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "id": 1, "age": -1}]
    stream = score_rows(small_bundle, json_chunks(rows), skip_bad=True)
    out = io.BytesIO()
    write_predictions(stream.chunks, "csv", out)
    assert out.getvalue().decode().startswith(",".join(["age", "workclass"]))
    assert [p.row for p in stream.problems] == [1]


@pytest.mark.parametrize(
    ("fmt", "text", "named"),
    [
        ("json", f"[5, {LINE_JSON}, {OLD_JSON}]", ["row 1", "row 3"]),
        ("jsonl", f"5\n\n{LINE_JSON}\n{OLD_JSON}\n", ["line 1", "line 4"]),
    ],
)
def test_a_bad_value_after_a_row_refused_while_reading_keeps_its_number(
    small_bundle: Bundle, fmt: str, text: str, named: list[str]
) -> None:
    _, chunks = read_rows(io.StringIO(text), fmt, 1000)  # type: ignore[arg-type]
    stream = score_rows(small_bundle, chunks, skip_bad=True)
    assert sum(len(chunk) for chunk in stream.chunks) == 1
    assert [str(problem).split(":")[0].split(",")[0] for problem in stream.problems] == named


def test_the_stream_counts_the_values_the_model_never_saw(small_bundle: Bundle) -> None:
    rows = [{**EXAMPLE_ROW, "race": "Martian"}] * 3 + [EXAMPLE_ROW]
    _, chunks = read_rows(io.StringIO(json.dumps(rows)), "json", 2)
    stream = score_rows(small_bundle, chunks)
    assert sum(len(chunk) for chunk in stream.chunks) == 4
    assert (stream.unknown.rows, stream.unknown.values) == ({"race": 3}, {"race": {"Martian": 3}})


def test_unknown_values_keep_the_first_values_and_count_every_row() -> None:
    unknown = UnknownValues()
    for i in range(UnknownValues.KEPT + 5):
        unknown.add({"race": {f"v{i}": 2}})
    unknown.add({"race": {"v0": 1}})
    assert unknown.rows == {"race": 2 * (UnknownValues.KEPT + 5) + 1}
    assert len(unknown.values["race"]) == UnknownValues.KEPT
    assert unknown.values["race"]["v0"] == 3


def test_read_ahead_gives_the_items_in_order() -> None:
    assert list(_read_ahead(iter(range(50)), 2)) == list(range(50))


def test_read_ahead_raises_a_failure_in_its_turn() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise InputError("broken")

    got = _read_ahead(items(), 2)
    assert [next(got), next(got)] == [1, 2]
    with pytest.raises(InputError, match="broken"):
        next(got)


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize(
    ("fmt", "text", "loaded"),
    [
        ("json", json.dumps([EXAMPLE_ROW]), []),
        ("csv", f"{HEADER}\n{LINE}\n", ["pyarrow"]),
        ("quoted csv", f'"id",{HEADER}\n"1",{LINE}\n', ["pandas", "pyarrow"]),
    ],
)
def test_predict_imports_only_what_the_input_needs(
    small_settings: Settings, fmt: str, text: str, loaded: list[str]
) -> None:
    """pandas and pyarrow take a third of a second each to import: JSON needs neither,
    plain CSV only pyarrow, and only CSV that pyarrow cannot read alike needs pandas;
    only Parquet needs pyarrow.parquet. The cluster engines (`--engine`) are never
    imported without it."""
    script = (
        "import sys\n"
        "from census_salary.cli import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    modules = ('pandas', 'pyarrow', 'pyarrow.parquet', 'sklearn', 'pyspark', 'dask')\n"
        "    print(sorted(m for m in modules if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "--config", str(small_settings.source), "predict"],
        input=text,
        capture_output=True,
        text=True,
        env=server_environment(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == str(loaded), done.stderr


class FullDisk(io.RawIOBase):
    """A device that takes nothing: every write fails as on a full disk."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_standard_output_that_refuses_the_rows_is_an_input_error_naming_the_reason(
    small_bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(f"{HEADER}\n{LINE}\n")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(FullDisk())))
    with pytest.raises(InputError, match=r"^Cannot write the output: No space left on device"):
        census_salary.predict.predict_file(small_bundle, source, None, output_format=fmt)


class GoneReader(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def test_a_reader_gone_away_is_left_to_the_cli_to_end_quietly(
    small_bundle: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(f"{HEADER}\n{LINE}\n")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(GoneReader())))
    with pytest.raises(BrokenPipeError):
        census_salary.predict.predict_file(small_bundle, source, None)


def unread_bytes(pipe: IO[bytes]) -> int:
    waiting = array.array("i", [0])
    fcntl.ioctl(pipe.fileno(), termios.FIONREAD, waiting)
    return waiting[0]


@pytest.mark.slow  # starts a process
def test_census_predict_writes_each_row_of_a_slow_pipe_as_it_comes(
    small_settings: Settings,
) -> None:
    census = census_executable()
    with subprocess.Popen(
        [str(census), "--config", str(small_settings.source), "predict"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_environment(),
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(f"{HEADER}\n".encode())
        lines = []
        for _ in range(3):  # a row now and then, the pipe open all along
            process.stdin.write(f"{LINE}\n".encode())
            process.stdin.flush()
            lines.append(_line_within(process.stdout, seconds=30))
        process.stdin.close()
        assert process.wait(timeout=30) == 0, process.stderr.read().decode()  # type: ignore[union-attr]
    assert lines[0].startswith(f"{HEADER},prediction,probability")
    assert all(line.startswith(f"{LINE},") for line in lines[1:])


def _line_within(out: IO[bytes], seconds: float) -> str:
    """The next line the process writes, or the test fails after `seconds` without one."""
    deadline, line = time.monotonic() + seconds, b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no line within {seconds} s; got {line!r}"
        byte = os.read(out.fileno(), 1)
        assert byte, "the output ended"
        line += byte
    return line.decode()


@pytest.mark.slow  # starts a process
def test_ctrl_c_while_reading_a_pipe_ends_with_130_and_no_fatal_error(
    small_settings: Settings, tmp_path: Path
) -> None:
    census = census_executable()
    output = tmp_path / "out.csv"
    with subprocess.Popen(  # stdin stays open: the reading thread waits on the pipe
        [str(census), "--config", str(small_settings.source), "predict", "-o", str(output)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_environment(),
    ) as process:
        assert process.stdin is not None
        process.stdin.write(f"{HEADER}\n".encode() + f"{LINE}\n".encode() * 20_000)
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while unread_bytes(process.stdin) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # all read: the reading thread waits for more
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err.decode()
    assert b"Fatal Python error" not in err
    assert not output.exists()
