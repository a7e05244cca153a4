"""Spark in local mode and Dask's LocalCluster score files as `census predict` does.

Slow: each engine starts once for the module (a JVM; worker processes)."""

import dataclasses
import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from census_salary.bundle import TREES_FILE, Bundle, current_bundle_dir
from census_salary.config import Settings
from census_salary.errors import InputError, ModelError
from census_salary.partition import Job, Runner, predict_files, score_partition
from census_salary.predict import predict_file

pytestmark = pytest.mark.slow

ROWS, FILES = 200_000, 4


@pytest.fixture(scope="module", params=["spark", "dask"])
def engine(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The engine's module, its local cluster of 2 workers shared by the module's tests."""
    pytest.importorskip(
        "pyspark" if request.param == "spark" else "distributed",
        reason='the engines are extras: pip install -e ".[dev,spark,dask]"',
    )
    if request.param == "spark":
        from census_salary.engines import spark

        session = spark.session("local[2]")
        yield spark
        session.stop()
    else:
        from distributed import Client, LocalCluster

        from census_salary.engines import dask

        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
            Client(cluster),
        ):
            yield dask


@pytest.fixture
def runner(engine: ModuleType) -> Runner:
    return engine.run


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory, census_csv: Path) -> Path:
    """200,000 rows of the published file (spaces, `?` and all) in 4 CSV files, an `id`
    column first; the last file has a quoted field, which census predict reads through
    pandas instead of pyarrow."""
    folder = tmp_path_factory.mktemp("big")
    header, *lines = census_csv.read_text(encoding="utf-8").splitlines()
    rows = itertools.islice(itertools.cycle(line for line in lines if line.strip()), ROWS)
    numbered = [f"r{i},{line}" for i, line in enumerate(rows)]
    size = ROWS // FILES
    for n in range(FILES):
        part = numbered[n * size : (n + 1) * size]
        if n == FILES - 1:
            part[10] = part[10].replace("United-States", '"United-States"')
        (folder / f"rows-{n}.csv").write_text(
            "\n".join([f"id,{header}", *part]) + "\n", encoding="utf-8"
        )
    return folder


def _bundle_dir(settings: Settings) -> Path:
    return current_bundle_dir(settings.artifacts_dir)


def test_engine_output_equals_census_predict_to_the_bit(
    runner: Runner,
    big_input: Path,
    small_settings: Settings,
    small_bundle: Bundle,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    problems = predict_files(
        runner, _bundle_dir(small_settings), str(big_input / "*.csv"), out
    ).problems
    assert problems == []
    parts = sorted(out.iterdir())
    assert len(parts) == FILES
    for n, part in enumerate(parts):
        predict_file(small_bundle, big_input / f"rows-{n}.csv", tmp_path / "one.csv")
        expected = pd.read_csv(tmp_path / "one.csv", dtype=str, keep_default_na=False)
        got = pd.read_parquet(part)
        assert list(got.columns) == list(expected.columns)
        assert len(got) == ROWS // FILES
        bits = expected.pop("probability").astype(np.float64).to_numpy().view(np.uint64)
        assert np.array_equal(got.pop("probability").to_numpy().view(np.uint64), bits)
        assert got.to_numpy().tolist() == expected.to_numpy().tolist()  # labels, kept text


def _small_input(folder: Path, big_input: Path, bad: dict[int, int]) -> list[Path]:
    """Two files of 1,000 rows; in file n, row bad[n] has an age of -1."""
    folder.mkdir()
    paths = []
    for n in range(2):
        header, *lines = (big_input / f"rows-{n}.csv").read_text().splitlines()[:1001]
        if n in bad:
            row = lines[bad[n] - 1].split(",")
            row[1] = "-1"
            lines[bad[n] - 1] = ",".join(row)
        paths.append(folder / f"rows-{n}.csv")
        paths[-1].write_text("\n".join([header, *lines]) + "\n")
    return paths


def test_spark_scores_without_warning_of_its_pandas_support(
    engine: ModuleType, big_input: Path, small_settings: Settings, tmp_path: Path
) -> None:
    """pyspark warns at each call into pandas that it does not fully support pandas 3; the
    test above is why census predict --engine spark need not say so."""
    if not engine.__name__.endswith("spark"):
        pytest.skip("a warning of pyspark's")
    paths = _small_input(tmp_path / "in", big_input, {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_files(engine.run, _bundle_dir(small_settings), str(paths[0]), tmp_path / "out")
    assert not [w for w in caught if "support pandas" in str(w.message)], caught


def test_a_bad_row_is_reported_with_its_file_and_row(
    runner: Runner, big_input: Path, small_settings: Settings, tmp_path: Path
) -> None:
    paths = _small_input(tmp_path / "in", big_input, {1: 613})
    with pytest.raises(InputError, match=rf"in {paths[1].resolve()}: row 613, field 'age'"):
        predict_files(runner, _bundle_dir(small_settings), str(tmp_path / "in"), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_skip_drops_exactly_the_bad_rows(
    runner: Runner, big_input: Path, small_settings: Settings, tmp_path: Path
) -> None:
    paths = _small_input(tmp_path / "in", big_input, {0: 1, 1: 1000})
    problems = predict_files(
        runner,
        _bundle_dir(small_settings),
        str(tmp_path / "in"),
        tmp_path / "out",
        skip_bad=True,
        output_format="csv",
    ).problems
    assert [(Path(p.file), p.problem.row, p.problem.field) for p in problems] == [
        (paths[0].resolve(), 1, "age"),
        (paths[1].resolve(), 1000, "age"),
    ]
    ids = [
        pd.read_csv(part, dtype=str)["id"].tolist() for part in sorted((tmp_path / "out").iterdir())
    ]
    assert ids == [[f"r{i}" for i in range(1, 1000)], [f"r{i}" for i in range(50_000, 50_999)]]


def test_a_tampered_bundle_is_refused_on_the_executor(
    runner: Runner, big_input: Path, small_settings: Settings, tmp_path: Path
) -> None:
    """The driver's copy passes its checks; the bytes the executors get do not."""

    def tampered(job: Job, tasks: pd.DataFrame) -> pd.DataFrame:
        trees = bytearray(job.bundle[TREES_FILE])
        trees[len(trees) // 2] ^= 0xFF
        return runner(
            dataclasses.replace(job, bundle={**job.bundle, TREES_FILE: bytes(trees)}), tasks
        )

    _small_input(tmp_path / "in", big_input, {})
    with pytest.raises(ModelError, match=r"trees\.npz does not match the SHA-256"):
        predict_files(tampered, _bundle_dir(small_settings), str(tmp_path / "in"), tmp_path / "o")


def test_a_dataframe_scores_on_the_engine_as_in_process(
    engine: ModuleType, big_input: Path, small_settings: Settings, small_bundle: Bundle
) -> None:
    """`score_dataframe` over the engine's own DataFrame, in 3 partitions; skip mode
    leaves out exactly the bad row."""
    frame = pd.read_csv(big_input / "rows-0.csv", dtype=str, keep_default_na=False, nrows=3000)
    frame.loc[1234, " hours-per-week"] = " 200"
    expected, problems = score_partition(small_bundle, frame, skip_bad=True)
    assert [p.row for p in problems] == [1235]
    if engine.__name__.endswith("spark"):
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        scored = engine.score_dataframe(
            spark.createDataFrame(frame).repartition(3), _bundle_dir(small_settings), skip_bad=True
        ).toPandas()
    else:
        import dask.dataframe as dd

        scored = engine.score_dataframe(
            dd.from_pandas(frame, npartitions=3), _bundle_dir(small_settings), skip_bad=True
        ).compute()
    got = scored.set_index("id").loc[expected["id"]]
    assert len(scored) == len(expected) == 2999
    bits = expected["probability"].to_numpy().view(np.uint64)
    assert np.array_equal(got["probability"].to_numpy().view(np.uint64), bits)
    assert got["prediction"].tolist() == expected["prediction"].tolist()
