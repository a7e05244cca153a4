"""Spark (`pip install census-salary[spark]`): `mapInPandas` over a DataFrame of the
input's files, one partition per file, each scored by `partition.run_tasks` on an
executor (which needs census-salary installed, and the files and output folder at the
same paths: a shared file system)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd

from census_salary.errors import InputError
from census_salary.partition import SPARK_PROBLEM_SCHEMA, Job, run_tasks


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
    try:
        spark = active if active is not None and master is None else session(master)
    except Exception as exc:  # a JVM that cannot start: Java missing, a bad master URL
        raise InputError(
            f"Spark could not start ({_first_line(exc)}); it needs Java 17 or newer."
        ) from None
    try:
        files = spark.sparkContext.parallelize(
            list(tasks.itertuples(index=False, name=None)), numSlices=max(len(tasks), 1)
        )
        frame = spark.createDataFrame(files, "file string, part string")
        return frame.mapInPandas(
            functools.partial(_run_batches, job), SPARK_PROBLEM_SCHEMA
        ).toPandas()
    except Exception as exc:  # a failed task or executor: our message, not the JVM's trace
        raise InputError(f"Spark could not score the input: {_first_line(exc)}") from None
    finally:
        if spark is not active:
            spark.stop()


def session(master: str | None = None) -> Any:
    """A Spark session on `master` (default `local[*]`; pyspark's SparkSession)."""
    from pyspark.sql import SparkSession

    if (master or "local").startswith("local"):
        # Local executors run this Python, which has census-salary (pyspark reads only
        # the variable, whose default is whatever `python3` is on the PATH).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("census predict").master(master or "local[*]")
    return builder.getOrCreate()


def _run_batches(job: Job, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for tasks in batches:
        yield run_tasks(job, tasks)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
