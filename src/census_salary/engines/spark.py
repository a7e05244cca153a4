"""Spark (`pip install census-salary[spark]`): `mapInPandas` over a DataFrame of the
input's files, one partition per file, each scored by `partition.run_tasks` on an
executor (which needs census-salary installed, and the files and output folder at the
same paths: a shared file system)."""

from __future__ import annotations

import functools
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from census_salary.bundle import ScorerChoice, bundle_files, load_bundle_files
from census_salary.errors import InputError
from census_salary.partition import SPARK_PROBLEM_SCHEMA, Job, run_tasks, score_partition
from census_salary.writers import PREDICTION, PROBABILITY

# pyspark 4 warns at each call into its pandas code that it "does not yet fully support
# pandas >= 3.0.0". Our tasks hand it frames of strings and numbers only, and the slow tests
# check every probability Spark gives against census predict's, to the bit: the warning
# would only alarm whoever runs `census predict --engine spark`.
_PANDAS_VERSION_WARNING = "PySpark does not yet fully support pandas"


@contextmanager
def _without_pandas_version_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _PANDAS_VERSION_WARNING, FutureWarning)
        yield


def run(job: Job, tasks: pd.DataFrame, master: str | None = None) -> pd.DataFrame:
    """Score the tasks' files on Spark; the problems they gave back. `master` is the
    cluster's (default: the active session's, else `local[*]`)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "--engine spark needs pyspark: pip install 'census-salary[spark]'."
        ) from None
    active = SparkSession.getActiveSession()
    with _without_pandas_version_warning():
        try:
            spark = active if active is not None and master is None else session(master)
        except Exception as exc:  # a JVM that cannot start, a master it cannot reach
            raise InputError(_could_not_start(master, exc)) from None
        try:
            files = spark.sparkContext.parallelize(
                list(tasks.itertuples(index=False, name=None)), numSlices=max(len(tasks), 1)
            )
            frame = spark.createDataFrame(files, "file string, part string")
            return frame.mapInPandas(
                functools.partial(_run_batches, job), SPARK_PROBLEM_SCHEMA
            ).toPandas()
        except Exception as exc:  # a failed task or executor: our message, not the JVM's
            raise InputError(f"Spark could not score the input: {_first_line(exc)}") from None
        finally:
            if spark is not active:
                spark.stop()


def session(master: str | None = None) -> Any:
    """A Spark session on `master` (default `local[*]`; pyspark's SparkSession)."""
    from pyspark.sql import SparkSession

    local = (master or "local").startswith("local")
    if local:
        # Local executors run this Python, which has census-salary (pyspark reads only
        # the variable, whose default is whatever `python3` is on the PATH).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName("census predict")
        .master(master or "local[*]")
        # Spark's progress bar on a terminal, nothing when piped (as census predict's own)
        .config("spark.ui.showConsoleProgress", str(sys.stderr.isatty()).lower())
    )
    if local:  # nothing of a local job listens beyond this machine: no web UI at all
        for key in ("spark.driver.host", "spark.driver.bindAddress"):
            builder = builder.config(key, "127.0.0.1")
        builder = builder.config("spark.ui.enabled", "false")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")  # our message says what failed, once
    return spark


def _could_not_start(master: str | None, exc: BaseException) -> str:
    """Why no session: on a cluster's master, most likely that it cannot be reached; on
    this machine, most likely Java."""
    if master is not None and not master.startswith("local"):
        return (
            f"Spark could not start a session on {master} ({_first_line(exc)}): check that "
            "the master runs and this machine reaches it (its log above says more)."
        )
    return f"Spark could not start ({_first_line(exc)}); it needs Java 17 or newer."


def _run_batches(job: Job, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for tasks in batches:
        yield run_tasks(job, tasks)


def _first_line(exc: BaseException) -> str:
    """What went wrong, in a line: the last error a Python worker's traceback names, else
    the message's first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)]
    return (errors or lines or [type(exc).__name__])[-1 if errors else 0][:300]


def score_dataframe(
    frame: Any,
    bundle_dir: Path,
    *,
    scorer: ScorerChoice = "trees",
    threshold: float | None = None,
    skip_bad: bool = False,
) -> Any:
    """A Spark DataFrame's rows with `prediction` and `probability` added, scored on the
    executors by `partition.score_partition` (`mapInPandas`; lazy, as Spark is). A bad row
    fails the action with our InputError (rows numbered within their partition) unless
    `skip_bad`, which leaves it out; `census predict --engine spark` lists them."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    shipped = bundle_files(bundle_dir, scorer)
    load_bundle_files(shipped, str(bundle_dir), scorer)  # fail here, before the cluster
    schema = StructType(
        [
            *frame.schema.fields,
            StructField(PREDICTION, StringType()),
            StructField(PROBABILITY, DoubleType()),
        ]
    )
    score = functools.partial(_score_frames, shipped, str(bundle_dir), scorer, threshold, skip_bad)
    with _without_pandas_version_warning():
        return frame.mapInPandas(score, schema)


def _score_frames(
    shipped: dict[str, bytes],
    source: str,
    scorer: ScorerChoice,
    threshold: float | None,
    skip_bad: bool,
    frames: Iterator[pd.DataFrame],
) -> Iterator[pd.DataFrame]:
    from pyspark import TaskContext

    bundle = load_bundle_files(shipped, source, scorer)  # checked on the executor
    context = TaskContext.get()
    where = f"partition {context.partitionId()}" if context else "a partition"
    first_row = 1
    for frame in frames:
        scored, _ = score_partition(
            bundle, frame, threshold=threshold, skip_bad=skip_bad, source=where, first_row=first_row
        )
        first_row += len(frame)
        yield scored
